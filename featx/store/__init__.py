"""The feature store: :func:`~featx.store.open.open_store` reads it and :func:`~featx.store.open.store_writer`
writes it (several writers at once, each commit costing what it writes); ``featx store`` tools; and
:class:`~featx.store.feature_set.FeatureSet`, the in-memory matrix the heads take.

Layouts: a small index and immutable shard files (:mod:`.sharded`, :mod:`.shards`), and the single file that
compaction writes and earlier featx made (:mod:`.store`). The store knows nothing of backbones or radiomics:
provenance is an opaque dict.
"""
