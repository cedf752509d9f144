"""Release writers."""
