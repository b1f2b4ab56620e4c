"""The HDF5 feature store (:mod:`.store`), its crash-safe single writer (:mod:`.writer`), ``featx store``
tools, and :class:`~featx.store.feature_set.FeatureSet`, the in-memory matrix the heads take.

The store knows nothing of backbones or radiomics: provenance is an opaque dict.
"""
