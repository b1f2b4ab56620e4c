"""Frozen-backbone features into the store: the run (:mod:`.run`), the decode/compute/write pipeline,
Ray, and :class:`~featx.extract.embedder.FeatxEmbedder` (a backbone as a scikit-learn transformer)."""
