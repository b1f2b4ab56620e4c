"""``featx audit``: near-copies among the rows of a stored feature set, across subjects and across the split."""
