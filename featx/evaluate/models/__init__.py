"""Models made of heads: nested selection and ensembles (:mod:`.selection`), saved models (:mod:`.saved`)."""
