"""Helpers for the double-descent and benign-overfitting experiments (not experiments themselves)."""
