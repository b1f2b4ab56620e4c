"""Label efficiency (bench --train-sizes): subjects drawn whole inside each training fold, every size scored on the
same outer folds, the 'all' size equal to the bench's own cell, paired tests per size, results that round-trip."""

import csv

import numpy as np
import pytest
from conftest import make_store

from featx import api
from featx.errors import ConfigError
from featx.evaluate.config import BenchConfig
from featx.evaluate.protocol.task import Task
from featx.evaluate.runs.learning import subsample
from featx.store.writer import store_writer


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """60 subjects x 2 images; a deep set with a clear signal, a radiomics set with a weak one."""
    rng = np.random.default_rng(0)
    n = 120
    subjects = [f"p{i // 2:03d}" for i in range(n)]
    labels = np.array(["yes" if (i // 2) % 2 else "no" for i in range(n)])
    deep = rng.normal(size=(n, 16))
    deep[labels == "yes", :3] += 1.0
    rad = rng.normal(size=(n, 6))
    rad[labels == "yes", 0] += 0.5
    store = make_store(tmp_path_factory.mktemp("lc") / "f.h5", "deep", deep, list(labels), subjects=subjects)
    with store_writer(store) as w, w.transaction() as st:
        st.create_feature_set("rad", 6, {"kind": "radiomics"}, "id", kind="radiomics")
        st.write("rad", list(range(n)), rad.astype(np.float32))
    return store


def test_subsampling_keeps_subjects_whole_and_draws_per_class():
    y = np.array([0, 0, 1, 1] * 10)
    groups = np.array([f"s{i // 2}" for i in range(40)])  # each subject: 2 rows of one class
    train = np.arange(40)
    rng = np.random.default_rng(0)
    task = Task("classification", y, ("a", "b"), groups=groups)
    sub = subsample(task, train, "3", rng)
    kept = set(groups[sub])
    assert len(kept) == 6 and len(sub) == 12  # 3 subjects per class, both rows of each
    assert sorted(np.bincount(y[sub])) == [6, 6]
    assert len(set(groups[subsample(task, train, "0.5", rng)])) == 10  # half of each class's 10 subjects
    assert (subsample(task, train, "all", rng) == train).all()
    assert len(set(groups[subsample(task, train, "50", rng)])) == 20  # more than there are: all of them
    again = subsample(task, train, "3", np.random.default_rng(0))
    assert (again == sub).all()  # a seed reproduces the draw


def test_every_size_is_scored_on_the_bench_folds_and_all_equals_the_bench_cell(two_sets, tmp_path):
    res = api.bench(
        two_sets, ["deep", "rad"], ["logreg", "simpleshot"], cv=5, bootstrap=200, train_sizes="2,8,all", draws=3,
        out=tmp_path / "b", progress=False,
    )  # fmt: skip
    pts = {(p["features"], p["head"], p["size"]): p for p in res.learning["points"]}
    assert len(pts) == 12 and res.learning["unit"] == "subjects per class"
    for c in res.cells:  # the 'all' size is the bench's own cross-validation: same folds, same model
        assert pts[(c.feature_set, c.head, "all")]["auc"] == pytest.approx(c.cv.pooled.auc, abs=1e-4)
    assert pts[("deep", "logreg", "2")]["train_subjects"] == 4.0 and pts[("deep", "logreg", "2")]["draws"] == 3
    assert pts[("deep", "logreg", "2")]["auc"] < pts[("deep", "logreg", "all")]["auc"]  # more labels help here
    tests = {t["size"]: t for t in res.learning["tests"]}
    assert set(tests) == {"2", "8", "all"} and tests["all"]["unit"] == "subject"
    assert tests["all"]["deep"].startswith("deep + ") and tests["all"]["p"] < 0.05 and tests["all"]["ci"][0] > 0
    rows = list(csv.DictReader(open(tmp_path / "b" / "learning.csv")))
    assert len(rows) == 12 and (tmp_path / "b" / "learning.png").stat().st_size > 10_000
    assert api.load_results(tmp_path / "b" / "results.json").learning == res.learning


def test_train_sizes_refuse_what_they_cannot_mean():
    with pytest.raises(ConfigError, match="'0' is not a training size"):
        BenchConfig(store="s.h5", features=("a",), train_sizes=("4", "0"))
    with pytest.raises(ConfigError, match="lists a size twice"):
        BenchConfig(store="s.h5", features=("a",), train_sizes=("4", "4"))
    with pytest.raises(ConfigError, match="use --split cv"):
        BenchConfig(store="s.h5", features=("a",), train_sizes=("4",), split="fixed", test_size=0.3)
    assert BenchConfig(store="s.h5", features=("a",), train_sizes=("4", "0.25", "all")).draws == 5


def test_a_pca_the_smallest_training_size_cannot_give_is_refused_before_any_fit(two_sets, tmp_path):
    from featx.errors import FitError

    with pytest.raises(FitError, match=r"--pca 10: the smallest training set \(--train-sizes 2\) has 8 samples"):
        api.bench(two_sets, ["deep"], ["logreg"], cv=5, pca=10, train_sizes="2,all", out=tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()  # nothing fitted, nothing written
