#!/usr/bin/env bash
# Recipe 4: fine-tuning vs feature extraction. VGG, ResNet, DenseNet and Inception-v3, each as frozen features +
# heads and fine-tuned, on identical folds, in one 'featx bench' table.
# Usage:  MANIFEST=data/manifest.csv OUT=ft-vs-fe bash docs/recipes/finetune_vs_features.sh
set -euo pipefail
MANIFEST=${MANIFEST:?set MANIFEST to a manifest CSV or a folder of class sub-folders}
OUT=${OUT:-ft-vs-fe}
BACKBONES=${BACKBONES:-"vgg16 resnet50 densenet121 inception_v3"}
HEADS=${HEADS:-"logreg,svm-rbf,rf,xgb"}
CV=${CV:-5}
EPOCHS=${EPOCHS:-20}
FREEZE=${FREEZE:-0}                   # 0: full fine-tuning
INPUT_SIZE=${INPUT_SIZE:-}            # empty: each backbone's own (224, 299 for Inception-v3)
WEIGHTS=${WEIGHTS:-imagenet}
SEED=${SEED:-0}
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}                # extraction runtime: auto (ONNX Runtime), onnx or torch

# 1. Frozen features of every backbone into one store.
for b in $BACKBONES; do
  featx extract -m "$MANIFEST" -b "$b" --name "$b" -s "$OUT/features.h5" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
done

# 2. Plan the folds once (grouped by subject when the manifest has subjects): every row below uses them.
first=${BACKBONES%% *}
featx fit -s "$OUT/features.h5" -f "$first" --head logreg --cv "$CV" --seed "$SEED" --bootstrap 0 --out "$OUT/folds"

# 3. Each backbone fine-tuned on those folds.
finetuned=()
for b in $BACKBONES; do
  featx finetune -m "$MANIFEST" -b "$b" --weights "$WEIGHTS" --freeze "$FREEZE" --folds "$OUT/folds/folds.json" \
    --epochs "$EPOCHS" ${INPUT_SIZE:+--input-size "$INPUT_SIZE"} --bootstrap "$BOOTSTRAP" --gradcam 0 \
    --out "$OUT/finetuned-$b"
  finetuned+=(--finetuned "$OUT/finetuned-$b")
done

# 4. One table: every backbone x head on the frozen features, plus every fine-tuned row, on identical folds;
#    the best fine-tuned row is compared with the best frozen one (DeLong, corrected resampled t-test).
featx bench -s "$OUT/features.h5" -f "${BACKBONES// /,}" --heads "$HEADS" --folds "$OUT/folds/folds.json" \
  --bootstrap "$BOOTSTRAP" "${finetuned[@]}" --out "$OUT/bench"
featx compare "$OUT/bench" --out "$OUT/summary"
