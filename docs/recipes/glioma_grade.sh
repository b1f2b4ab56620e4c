#!/usr/bin/env bash
# Recipe 5: glioma grade (II/III/IV) from CT/MR volumes with masks (NRRD image + segmentation per patient):
# Inception-v3 bottleneck features vs pyradiomics features, 10 repeated random splits by patient.
# Usage:  VOLUMES=gliomas/volumes.csv OUT=grade-study bash docs/recipes/glioma_grade.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VOLUMES=${VOLUMES:?set VOLUMES to the volume-level CSV (path,mask,label,subject)}
OUT=${OUT:-grade-study}
MIN_AREA=${MIN_AREA:-30%}             # keep a patient's slices whose lesion area is >= 30% of its largest
REPEATS=${REPEATS:-10}
HEADS=${HEADS:-logreg,svm-rbf,rf}       # linear head, SVM, random forest
TEST_SIZE=${TEST_SIZE:-0.3}
WEIGHTS=${WEIGHTS:-imagenet}
SEED=${SEED:-0}
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}                # extraction runtime: auto (ONNX Runtime), onnx or torch
PARAMS=${PARAMS:-$HERE/glioma_grade_radiomics.yaml}

featx manifest build --volumes "$VOLUMES" --slices "min-area:$MIN_AREA" --out "$OUT/slices.csv"
featx manifest check "$OUT/slices.csv" --cv 2 --labels II,III,IV   # a 70/30 split by patient

# Inception-v3: each slice resized to 299 x 299 with bicubic interpolation (not the weights' own 342 bilinear
# + centre crop), 2048-d bottleneck (the global average pool).
featx extract -m "$OUT/slices.csv" -b inception_v3 --name inception_v3 --interpolation bicubic --resize-to-input -s "$OUT/features.h5" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
# pyradiomics on the same slices and masks: first-order, shape, GLCM, GLRLM, GLSZM.
featx radiomics -m "$OUT/slices.csv" -s "$OUT/features.h5" --params "$PARAMS" --name radiomics

# 10 random 70/30 splits by patient, the same for every row; mean and variance over the splits.
SPLITS=(--split fixed --test-size "$TEST_SIZE" --repeats "$REPEATS" --seed "$SEED" --bootstrap "$BOOTSTRAP")
# Linear head (logistic regression), SVM and random forest on both feature sets; the best deep row is compared
# with the best radiomics row (DeLong, corrected resampled t-test over the splits).
featx bench -s "$OUT/features.h5" -f inception_v3,radiomics --heads "$HEADS" "${SPLITS[@]}" --out "$OUT/bench"
featx compare "$OUT/bench" --out "$OUT/summary"
