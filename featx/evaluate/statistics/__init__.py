"""Numbers with their uncertainty: metrics, bootstrap resampling, paired comparisons, scoring of predictions."""
