# Run at featx commit 38c4628 (before typed results) with that version's module layout; kept as the record of how
# tests/data/results_v1/*.json were made. It does not run against later layouts.
"""Write results.json files with featx as it was before typed results (fixtures for re-rendering)."""
import json, shutil, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "/work/main/tests")
from conftest import make_store
from featx.evaluate.fit import run_fit
from featx.evaluate.bench import run_bench

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
n = 72
subjects = [f"p{i // 6:02d}" for i in range(n)]  # 12 subjects x (3 sequences x 2 slices)
sequences = [("T1", "T2", "FLAIR")[(i // 2) % 3] for i in range(n)]
lab_s = {f"p{j:02d}": ("HGG" if j % 2 else "LGG") for j in range(12)}
labels = [lab_s[s] for s in subjects]
splits = ["test" if s in ("p10", "p11") else "train" for s in subjects]
y = np.array([l == "HGG" for l in labels], float)
X = rng.normal(size=(n, 16)) + y[:, None] * 0.8
R = rng.normal(size=(n, 6)) + y[:, None] * 0.5
store = out / "work" / "f.h5"
store.parent.mkdir(parents=True, exist_ok=True)
make_store(store, "cnnfeat", X, labels, subjects=subjects, sequences=sequences, splits=splits,
           provenance={"kind": "cnn", "spec": {"name": "resnet18.random", "weights_id": "random(seed=0)", "weights_sha256": None},
                       "onnx_sha256": "ab" * 32, "runtime": "onnxruntime 1.x", "provider": "CPUExecutionProvider",
                       "preprocessing": "resize 256, crop 224"})
from featx.store.writer import store_writer
with store_writer(store) as w, w.transaction() as st:
    rows = np.arange(n)
    st.create_feature_set("radiomics.default", 6, {"kind": "radiomics", "params": {"mode": "2d", "imageType": {"Original": {}}, "featureClass": {"firstorder": []}, "setting": {"binWidth": 25}}, "params_source": "default", "versions": {"pyradiomics": "3.1.4"}, "mask": "the manifest's mask column", "intensity": "raw", "n_features": 6},
                          "id2", kind="radiomics", dtype="float64", feature_names=[f"original_firstorder_f{i}" for i in range(6)])
    st.write("radiomics.default", rows, R)
run_fit(store, "cnnfeat", head="logreg", cv=3, out=out / "work" / "fit", n_boot=100, progress=False, positive="HGG")
run_fit(store, "cnnfeat", head="logreg", cv=3, fuse="vote", out=out / "work" / "fit_vote", n_boot=100, progress=False)
run_fit(store, "cnnfeat", head="lda", cv=3, repeats=2, tune=True, out=out / "work" / "fit_tuned", n_boot=0, progress=False) if False else None
run_bench(store, ["cnnfeat", "radiomics.default"], ["logreg", "lda"], cv=3, out=out / "work" / "bench", n_boot=100, progress=False)
run_bench(store, ["cnnfeat", "radiomics.default"], ["logreg"], split="fixed", repeats=3, out=out / "work" / "bench_fixed", n_boot=0, progress=False)
# fine-tuning on real BreastMNIST images, small
from featx.demo.demo import write_demo_images
from featx.dataset.manifest import Manifest
from featx.finetune.run import run_finetune
from featx.finetune.train import TrainConfig
man = write_demo_images(out / "work" / "bm", limit_per_split=16)
run_finetune(man, "resnet18", out / "work" / "finetune", weights="random", freeze=3, train=TrainConfig(epochs=2, batch_size=16),
             cv=2, input_size=32, gradcam=2, n_boot=50, progress=False, positive="malignant")
for name in ("fit", "fit_vote", "bench", "bench_fixed", "finetune"):
    shutil.copy(out / "work" / name / "results.json", out / f"{name}.json")
    print(name, (out / f"{name}.json").stat().st_size)
