"""Classical heads on feature sets: heads, folds and cross-validation, metrics, fusion, ``fit``, ``bench``,
saved models. Never imports torch, ONNX Runtime, OpenVINO, pyradiomics or Ray (an import-linter
contract checks it), so ``featx fit`` starts fast."""
