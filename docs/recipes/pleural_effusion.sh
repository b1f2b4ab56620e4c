#!/usr/bin/env bash
# Recipe 3: pleural effusion on chest X-rays (binary; greyscale -> 3 channels at 224; ResNet-50; 10-fold CV).
# Usage:  XRAYS=cxr/ OUT=effusion-study bash docs/recipes/pleural_effusion.sh
# XRAYS: a folder of class sub-folders (effusion/, normal/), or a manifest CSV (path,label[,subject]).
set -euo pipefail
XRAYS=${XRAYS:?set XRAYS to a folder with effusion/ and normal/ sub-folders, or a manifest CSV}
OUT=${OUT:-effusion-study}
POSITIVE=${POSITIVE:-effusion}
CV=${CV:-10}
EPOCHS=${EPOCHS:-20}
INPUT_SIZE=${INPUT_SIZE:-224}
WEIGHTS=${WEIGHTS:-imagenet}
SEED=${SEED:-0}
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}                # extraction runtime: auto (ONNX Runtime), onnx or torch
FOLDS=(--cv "$CV" --seed "$SEED" --positive "$POSITIVE" --bootstrap "$BOOTSTRAP")
start=$(date +%s)

if [ -d "$XRAYS" ]; then
  featx manifest build --folder "$XRAYS" --out "$OUT/manifest.csv"
  MANIFEST="$OUT/manifest.csv"
else
  MANIFEST="$XRAYS"
fi
featx manifest check "$MANIFEST" --cv "$CV"

# Frozen ResNet-50 features (greyscale is replicated to 3 channels, resized to 224) + logistic regression.
featx extract -m "$MANIFEST" -b resnet50 --name resnet50 -s "$OUT/features.h5" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
featx fit -s "$OUT/features.h5" -f resnet50 --head logreg "${FOLDS[@]}" --out "$OUT/frozen-resnet50-logreg"

# Fine-tuned ResNet-50 on the same 10 folds; Grad-CAM overlays of right and wrong held-out images.
featx finetune -m "$MANIFEST" -b resnet50 --weights "$WEIGHTS" "${FOLDS[@]}" --epochs "$EPOCHS" \
  --input-size "$INPUT_SIZE" --gradcam 8 --out "$OUT/finetuned-resnet50"

featx compare "$OUT" --out "$OUT/summary"
echo "wall time of the whole run: $(( $(date +%s) - start )) s" | tee "$OUT/summary/wall_time.txt"
