"""Classical heads on feature sets, in rooms by job around a typed :class:`~featx.evaluate.protocol.task.Task`:

- :mod:`.heads`: the head registry, featx's own estimators, bags of slices, operating points (threshold, calibration);
- :mod:`.protocol`: the Task, folds, splits, combined feature sets, fusion units, cross-validation, checkpoints,
  parallel fits;
- :mod:`.statistics`: metrics, resampling (bootstrap CIs), paired comparisons, scoring of out-of-fold predictions;
- :mod:`.models`: nested selection, ensembles, saved models;
- :mod:`.runs`: ``fit``, ``bench``, label-efficiency curves, fine-tuned rows, outputs.

A room imports only the rooms listed after it (an import-linter contract). Never imports torch, ONNX Runtime,
OpenVINO, pyradiomics or Ray (another contract), so ``featx fit`` starts fast.
"""
