"""Embedded demo data (BreastMNIST, CC BY 4.0: see README.md here)."""
