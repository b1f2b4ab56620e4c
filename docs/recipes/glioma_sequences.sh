#!/usr/bin/env bash
# Recipe 2: glioma LGG vs HGG from multi-sequence MRI (T1, T2, FLAIR volumes per patient, with tumour masks).
# Usage:  VOLUMES=brats/volumes.csv OUT=glioma-study bash docs/recipes/glioma_sequences.sh
# VOLUMES: one row per volume: path,mask,label,subject,sequence (or a folder of volumes + masks, see the README).
set -euo pipefail
VOLUMES=${VOLUMES:?set VOLUMES to the volume-level CSV (path,mask,label,subject,sequence)}
OUT=${OUT:-glioma-study}
SLICES=${SLICES:-20}                  # the slices around the largest tumour slice
CV=${CV:-5}
HEADS=${HEADS:-"logreg svm-linear rf"}
EPOCHS=${EPOCHS:-30}
INPUT_SIZE=${INPUT_SIZE:-224}
WEIGHTS=${WEIGHTS:-imagenet}
SEED=${SEED:-0}
POSITIVE=${POSITIVE:-HGG}               # sensitivity = high-grade gliomas found
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}                # extraction runtime: auto (ONNX Runtime), onnx or torch
FOLDS=(--cv "$CV" --seed "$SEED" --positive "$POSITIVE" --bootstrap "$BOOTSTRAP")

featx manifest build --volumes "$VOLUMES" --slices "around-max:$SLICES" --out "$OUT/slices.csv"
featx manifest check "$OUT/slices.csv" --cv "$CV"
featx extract -m "$OUT/slices.csv" -b googlenet --name googlenet -s "$OUT/features.h5" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"

# Frozen GoogLeNet features + heads: one model per sequence, majority vote of the three per patient,
# folds grouped by patient (every sequence model sees the same patients in the same folds).
for head in $HEADS; do
  featx fit -s "$OUT/features.h5" -f googlenet --head "$head" --fuse vote "${FOLDS[@]}" --out "$OUT/frozen-$head"
done

# Fine-tuned GoogLeNet with the study's 1024-128-2 head (dropout 0.5), one per sequence, voted per patient,
# on the same folds.
featx finetune -m "$OUT/slices.csv" -b googlenet --weights "$WEIGHTS" --head mlp --hidden 128 --dropout 0.5 \
  --fuse vote "${FOLDS[@]}" --epochs "$EPOCHS" --input-size "$INPUT_SIZE" --out "$OUT/finetuned"

# The leak made visible: the same model scored on a slice-level random split (slices of one patient on both sides).
first=${HEADS%% *}
featx fit -s "$OUT/features.h5" -f googlenet --head "$first" --fuse vote "${FOLDS[@]}" --split-by image \
  --out "$OUT/leaky-slice-split-$first"

featx compare "$OUT" --out "$OUT/summary"
