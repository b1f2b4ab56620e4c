#!/usr/bin/env bash
# Recipe 1: liver fibrosis staging (rat MRI, stages S0-S4, four sequences per animal, 7:3 split by animal).
# Usage:  MANIFEST=liver/manifest.csv OUT=liver-study bash docs/recipes/liver_fibrosis.sh
# The manifest has one row per slice: path,label,subject,sequence (label S0..S4, subject = animal).
# Every setting below is the study's; override any of them from the environment (the CI test does, to run small).
set -euo pipefail
MANIFEST=${MANIFEST:?set MANIFEST to the slice manifest (path,label,subject,sequence)}
OUT=${OUT:-liver-study}
ARCHS=${ARCHS:-"resnet18 vgg11_bn"}    # fine-tuned backbones
LOCKS=${LOCKS:-"0 1 2 3 4 5"}          # lock N = the lowest N logical blocks frozen
EPOCHS=${EPOCHS:-80}
INPUT_SIZE=${INPUT_SIZE:-224}
WEIGHTS=${WEIGHTS:-imagenet}          # or a .pth file; 'random' only for tests
SEED=${SEED:-0}                       # the split: same seed = same animals in the 30% test side for every run
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}                # extraction runtime: auto (ONNX Runtime), onnx or torch
SPLIT=(--split fixed --test-size 0.3 --seed "$SEED" --bootstrap "$BOOTSTRAP")

featx manifest check "$MANIFEST" --cv 2 --labels S0,S1,S2,S3,S4   # a 7:3 split needs >= 2 animals per stage

# Reference row the study lacked: frozen ImageNet features + logistic regression, one model per sequence,
# on the same 7:3 split by animal (--fuse vote also scores the per-animal vote of the four sequence models).
featx extract -m "$MANIFEST" -b resnet18 --name resnet18 -s "$OUT/features.h5" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
featx fit -s "$OUT/features.h5" -f resnet18 --head logreg --fuse vote "${SPLIT[@]}" --out "$OUT/frozen-resnet18-logreg"

# Fine-tuning: one model per sequence (--sequence each), lowest 0-5 blocks frozen, flips + 12 degree rotations,
# every epoch run and scored on the test animals (no early stopping, as in the study).
for arch in $ARCHS; do
  for lock in $LOCKS; do
    featx finetune -m "$MANIFEST" -b "$arch" --weights "$WEIGHTS" --sequence each --freeze "$lock" "${SPLIT[@]}" \
      --epochs "$EPOCHS" --hflip --rotate 12 --val-fraction 0 --patience 0 --input-size "$INPUT_SIZE" \
      --gradcam 4 --out "$OUT/finetune-$arch-lock$lock"
  done
done

# One table: per sequence and lock level, best accuracy (epoch), mean accuracy after convergence, its variance,
# first epoch reaching that mean; the frozen + logreg rows on the same split.
featx compare "$OUT" --out "$OUT/summary"
