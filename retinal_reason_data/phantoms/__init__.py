"""Phantom (synthetic) images and collections for demos and tests: no real patient data."""
