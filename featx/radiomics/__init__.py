"""pyradiomics features into the same store: the run and its worker pool, one case, the parameter sets.

pyradiomics (the ``radiomics`` package) is imported inside the functions that need it only.
"""
