"""Deduplication, quality filters, splits, the leakage check and the curation report."""
