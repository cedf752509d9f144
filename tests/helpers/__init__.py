"""Helpers shared by test modules (test modules never import one another: tests/test_layout.py checks it)."""
