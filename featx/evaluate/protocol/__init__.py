"""How rows become folds and fits: the Task, folds, splits, combined sets, fusion units, CV, checkpoints, parallel runs."""
