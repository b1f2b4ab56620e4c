#!/usr/bin/env bash
# Recipe 5: glioma grade (II/III/IV) from MR/CT volumes with masks (NRRD image + segmentation per patient), asked
# per lesion: a 3D encoder on lesion crops, a 2D network on the lesion's slices pooled per lesion, 2.5D planes,
# 3D radiomics and their fusion, all on the same lesion rows and the same 10 random splits by patient.
# Usage:  VOLUMES=gliomas/volumes.csv OUT=grade-study bash docs/recipes/glioma_grade.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VOLUMES=${VOLUMES:?set VOLUMES to the volume-level CSV (path,mask,label,subject)}
OUT=${OUT:-grade-study}
MIN_AREA=${MIN_AREA:-30%}               # a lesion's slices: lesion area >= 30% of its largest
ENCODER3D=${ENCODER3D:-medicalnet:resnet18}   # 3D encoder (MR and CT): see 'featx backbones'
BACKBONE2D=${BACKBONE2D:-inception_v3}  # 2D network for the slices and the 2.5D planes
REPEATS=${REPEATS:-10}
HEADS=${HEADS:-logreg,svm-rbf,rf}
TEST_SIZE=${TEST_SIZE:-0.3}
WEIGHTS=${WEIGHTS:-imagenet}            # the sources' own pretrained weights (random: tests only)
SEED=${SEED:-0}
BOOTSTRAP=${BOOTSTRAP:-1000}
MODELS=${MODELS:-models_onnx}
RUNTIME=${RUNTIME:-auto}
PARAMS=${PARAMS:-$HERE/glioma_grade_radiomics_3d.yaml}
S="$OUT/features.h5"

# One row per lesion (each mask value of each volume), and the lesion's slices for the 2D network.
featx manifest build --volumes "$VOLUMES" --unit lesion --out "$OUT/lesions.csv"
featx manifest build --volumes "$VOLUMES" --slices "min-area:$MIN_AREA" --out "$OUT/slices.csv"
featx manifest check "$OUT/lesions.csv" --cv 2 --labels II,III,IV   # a 70/30 split by patient

# 3D encoder: a cube around each lesion's centroid, resampled and normalised by the encoder's own recipe.
featx extract -m "$OUT/lesions.csv" -b "$ENCODER3D" --name encoder3d -s "$S" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
# 2D network on the lesion's slices (299 x 299 bicubic), then the slices' mean per lesion: the lesion's rows.
featx extract -m "$OUT/slices.csv" -b "$BACKBONE2D" --name slices2d --interpolation bicubic --resize-to-input -s "$S" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
featx pool -s "$S" --from slices2d --by lesion --lesions "$OUT/lesions.csv" --how mean --name pooled2d
# 2.5D: the axial, coronal and sagittal planes through the lesion centre (64 mm square) as one RGB image.
featx extract -m "$OUT/lesions.csv" -b "$BACKBONE2D" --planes orthogonal --plane-mm 64 --interpolation bicubic --resize-to-input --name planes2.5d -s "$S" --weights "$WEIGHTS" --models-dir "$MODELS" --runtime "$RUNTIME"
# 3D radiomics of each lesion (resampled to 1 mm).
featx radiomics -m "$OUT/lesions.csv" -s "$S" --params "$PARAMS" --mode 3d --name radiomics

# Every feature set, and the 3D encoder fused with radiomics, on the same 10 random 70/30 splits by patient.
SPLITS=(--split fixed --test-size "$TEST_SIZE" --repeats "$REPEATS" --seed "$SEED" --bootstrap "$BOOTSTRAP")
featx bench -s "$S" -f encoder3d,pooled2d,planes2.5d,radiomics,encoder3d+radiomics --heads "$HEADS" "${SPLITS[@]}" --out "$OUT/bench"
featx compare "$OUT/bench" --out "$OUT/summary"
