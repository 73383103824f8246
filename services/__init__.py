"""Shoal: find and fix problems in machine-learning datasets."""
