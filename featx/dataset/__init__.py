"""Describing a data set: manifests (:mod:`.manifest`), volumes -> slice samples (:mod:`.ingest`), checks."""
