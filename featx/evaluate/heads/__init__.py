"""Heads: the registry (:mod:`.registry`), featx's own estimators, bags of slices, operating points."""
