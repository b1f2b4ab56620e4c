"""Multiple-instance learning: heads that predict a bag (a subject, a lesion) from its instances (slices)."""
