# Run at featx commit 509087a (the flat evaluate/ layout, before the Task and its sub-packages) with
# `python tests/data/results_v2/make_fixtures.py tests/data/results_v2`; kept as the record of how
# tests/data/results_v2/* were made. It does not run against later layouts.
"""Write results.json files and saved models with featx as it was before evaluate/ was split into rooms."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from conftest import make_store  # noqa: E402

from featx.evaluate.bench import run_bench  # noqa: E402
from featx.evaluate.config import BenchConfig, FitConfig  # noqa: E402
from featx.evaluate.fit import run_fit  # noqa: E402

out = Path(sys.argv[1])
work = out / "work"
rng = np.random.default_rng(0)
n = 48
subjects = [f"p{i // 2:02d}" for i in range(n)]  # 24 subjects x 2 images
lab = {f"p{j:02d}": ("malignant" if j % 2 else "benign") for j in range(24)}
labels = [lab[s] for s in subjects]
y = np.array([v == "malignant" for v in labels], float)
X = rng.normal(size=(n, 12)) + y[:, None] * 0.8
R = rng.normal(size=(n, 5)) + y[:, None] * 0.5
store = work / "f.h5"
store.parent.mkdir(parents=True, exist_ok=True)
make_store(store, "cnnfeat", X, labels, subjects=subjects)
make_store(store, "radiomics.default", R, labels, subjects=subjects, kind="radiomics",
           feature_names=[f"original_firstorder_f{i}" for i in range(5)])
run_fit(FitConfig(store=store, features="cnnfeat", head="logreg", cv=4, bootstrap=100, positive="malignant",
                  threshold="youden", out=work / "fit", save=work / "fit.skops"), progress=False)
run_fit(FitConfig(store=store, features="radiomics.default", head="knn", cv=4, bootstrap=50,
                  out=work / "fit_knn", save=work / "knn.skops"), progress=False)
run_bench(BenchConfig(store=store, features=("cnnfeat", "radiomics.default"), heads=("logreg", "simpleshot"), cv=4,
                      bootstrap=50, train_sizes=("4", "all"), draws=2, out=work / "bench", save=work / "bench.skops"),
          progress=False)
np.save(out / "X_new.npy", X[:6])
np.save(out / "R_new.npy", R[:6])
for name in ("fit", "fit_knn", "bench"):
    shutil.copy(work / name / "results.json", out / f"{name}.json")
for name in ("fit", "knn", "bench"):
    shutil.copy(work / f"{name}.skops", out / f"{name}.skops")
from featx.evaluate.saved_model import load_model  # noqa: E402

expected = {}
for name, x in (("fit", X[:6]), ("knn", R[:6])):
    m = load_model(out / f"{name}.skops")
    model = next(iter(m.models.values()))
    expected[name] = model.predict_proba(x).tolist()
(out / "expected_proba.json").write_text(json.dumps(expected))
shutil.rmtree(work)
