"""Helpers of `wvb bench`, each run as its own process (python -m)."""
