"""fit and bench never fail after the work, never hide a single-class side, never show a NaN: paired designs,
single-class train or test sides refused or reported as not computable, finished folds kept on a failure, fixed
splits labelled as such with paired tests on the test-side predictions, multi-class comparisons bootstrapped."""

import json
import math
import re

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, featx

import featx.evaluate.protocol.cv as cv_module
from featx.api import bench as run_bench
from featx.api import fit as run_fit
from featx.errors import FitError
from featx.evaluate.protocol.checkpoint import PARTIAL
from featx.evaluate.statistics.metrics import classification_metrics
from featx.report.bench import p_value
from featx.results.io import load_results


def _store(tmp_path, labels, *, splits=None, subjects=None, sets=("f",), name="s.h5", seed=0):
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    shift = np.array([classes.index(v) for v in labels], float)[:, None]
    path = tmp_path / name
    for k, fs in enumerate(sets):
        X = rng.normal(size=(len(labels), 5)) + shift * (1.5 - 0.7 * k)
        make_store(path, fs, X, labels.tolist(), splits=splits, subjects=subjects)
    return path


def _text(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).lower()


def _finite_everywhere(obj, where="results"):
    """No NaN or inf anywhere in a results.json (null with a reason instead)."""
    if isinstance(obj, float):
        assert math.isfinite(obj), where
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{where}[{i}]")


def test_a_paired_design_is_fitted_and_its_subject_level_says_why_not(tmp_path):
    """Every subject has one image of each label (left/right organs): a valid design, scored per image."""
    n = 40
    store = _store(tmp_path, ["a", "b"] * (n // 2), subjects=[f"p{i // 2}" for i in range(n)])
    res = run_fit(store, "f", cv=5, out=tmp_path / "out")
    assert res.cv.pooled.auc > 0.7 and res.protocol.grouped_by_subject
    sub = res.cv.subject
    assert sub.auc is None and "paired design" in sub.not_computable["auc"] and sub.mixed_label_subjects == 20
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    _finite_everywhere(data)
    make_store(
        tmp_path / "seq.h5",
        "f",
        np.random.default_rng(1).normal(size=(n, 3)),
        ["a", "b"] * (n // 2),
        subjects=[f"p{i // 4}" for i in range(n)],
        sequences=["T1", "T1", "T2", "T2"] * (n // 4),
    )
    with pytest.raises(FitError, match="paired design .* fit it without --fuse"):
        run_fit(tmp_path / "seq.h5", "f", fuse="vote")


def test_a_single_class_training_side_is_refused_before_any_fitting(tmp_path, monkeypatch):
    splits = ["test" if i % 2 else "train" for i in range(40)]
    labels = ["a" if s == "train" else "ab"[i % 4 == 1] for i, s in enumerate(splits)]
    store = _store(tmp_path, labels, splits=splits)
    fits = []
    monkeypatch.setattr(cv_module, "fit_one", lambda *a, **k: fits.append(1))
    with pytest.raises(FitError, match=r"training side of the fixed split holds only class 'a' \(20 rows\)"):
        run_fit(store, "f", split="fixed")
    assert fits == []
    proc = featx("fit", "-s", store, "-f", "f", "--split", "fixed", "--out", tmp_path / "o")
    assert_one_line_error(proc, "holds only class 'a'", "a classifier needs two classes")
    assert not (tmp_path / "o" / "results.json").exists()


def test_a_single_class_test_side_reports_not_computable_never_nan(tmp_path, caplog):
    splits = ["test" if i % 2 else "train" for i in range(40)]
    labels = [("a" if i % 4 == 0 else "b") if s == "train" else "a" for i, s in enumerate(splits)]
    store = _store(tmp_path, labels, splits=splits)
    res = run_fit(store, "f", split="fixed", out=tmp_path / "out")
    assert "test side of the fixed split holds only class 'a' (20 rows)" in caplog.text
    pooled = res.cv.pooled
    assert pooled.auc is None and pooled.sensitivity is None and pooled.specificity is not None
    assert "none of the 20 is 'b'" in pooled.not_computable["auc"]
    assert "no b (positive) sample" in pooled.not_computable["sensitivity"]
    assert res.cv.scope == "the test side of the fixed split"
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    _finite_everywhere(data)
    assert data["cv"]["pooled"]["auc"] is None and data["cv"]["scope"] == "the test side of the fixed split"
    assert load_results(tmp_path / "out" / "results.json").cv.pooled.not_computable == pooled.not_computable
    proc = featx("fit", "-s", store, "-f", "f", "--split", "fixed", "--out", tmp_path / "o2")
    assert proc.returncode == 0 and "nan" not in proc.stdout.lower()
    assert "not computable: needs both classes" in proc.stdout and "test split (fixed)" in proc.stdout
    html = (tmp_path / "o2" / "report.html").read_text()
    assert "not computable: needs both classes" in html and not re.search(r"\bnan\b", _text(html))


def test_metrics_that_cannot_be_computed_are_none_with_a_reason():
    m = classification_metrics(np.zeros(5, int), np.tile([0.7, 0.3], (5, 1)), ["a", "b"])
    assert m["auc"] is None and m["sensitivity"] is None and m["specificity"] == 1.0
    assert set(m["not_computable"]) == {"auc", "sensitivity"}
    three = classification_metrics(np.array([0, 1, 0, 1]), np.tile([0.5, 0.3, 0.2], (4, 1)), ["a", "b", "c"])
    assert three["auc"] is None and "none of the 4 is 'c'" in three["not_computable"]["auc"]
    for v in classification_metrics(np.array([0, 1]), np.array([[0.6, 0.4], [0.2, 0.8]]), ["a", "b"]).values():
        assert not (isinstance(v, float) and math.isnan(v))


def test_a_fit_that_fails_part_way_keeps_its_folds_and_a_rerun_goes_on(tmp_path, monkeypatch):
    n = 40
    store = _store(tmp_path, ["a", "b"] * (n // 2), subjects=[f"p{i}" for i in range(n)])
    clean = run_fit(store, "f", cv=5, out=tmp_path / "clean")
    real, calls, dying = cv_module.fit_one, [], [True]

    def dies_on_the_fourth(*a, **k):
        calls.append(1)
        if len(calls) == 4 and dying and dying.pop():
            raise MemoryError("killed in fold 4")
        return real(*a, **k)

    monkeypatch.setattr(cv_module, "fit_one", dies_on_the_fourth)
    with pytest.raises(MemoryError):
        run_fit(store, "f", cv=5, out=tmp_path / "out")
    assert len(list((tmp_path / "out" / PARTIAL).rglob("r0_f*.npz"))) == 3
    calls.clear()
    again = run_fit(store, "f", cv=5, out=tmp_path / "out")
    assert len(calls) == 2  # folds 4 and 5 only
    assert again.cv.pooled.auc == clean.cv.pooled.auc and again.cv.fold_values("auc") == clean.cv.fold_values("auc")
    assert not (tmp_path / "out" / PARTIAL).exists()  # a run that completes leaves nothing behind
    calls.clear()
    run_fit(store, "f", cv=5, seed=1, out=tmp_path / "out")  # other folds: nothing reused
    assert len(calls) == 5


def test_bench_on_a_fixed_split_tests_the_test_side_and_says_so(tmp_path):
    splits = ["test" if i % 3 == 0 else "train" for i in range(60)]
    store = _store(
        tmp_path, ["a", "b"] * 30, splits=splits, sets=("deep", "other"), subjects=[f"p{i}" for i in range(60)]
    )
    res = run_bench(store, ["deep", "other"], heads=["logreg", "knn"], split="fixed", out=tmp_path / "out")
    assert all(c.cv.scope == "the test side of the fixed split" and c.cv.n_tested == 20 for c in res.cells)
    for c in res.comparisons:
        assert c.scope == "the test side of the fixed split"
        assert c.delong is not None and 0 <= c.delong.p <= 1 and math.isfinite(c.delong.z)
        assert (
            c.bootstrap is not None and 0 < c.bootstrap.p <= 1 and c.bootstrap.lo <= c.bootstrap.diff <= c.bootstrap.hi
        )
        assert c.corrected_t is None and "one split" in c.not_computable["corrected_t"]
    _finite_everywhere(json.loads((tmp_path / "out" / "results.json").read_text()))
    proc = featx(
        "bench", "-s", store, "-f", "deep,other", "--heads", "logreg", "--split", "fixed", "--out", tmp_path / "o"
    )
    assert proc.returncode == 0, proc.stderr
    assert "test split AUC" in proc.stdout and "CV AUC" not in proc.stdout and "nan" not in proc.stdout.lower()
    assert "(the test side of the fixed split): DeLong" in proc.stdout
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (tmp_path / "o" / "report.html").read_text())
    assert "test split AUC" in html and "CV AUC" not in html and not re.search(r"\bnan\b", html.lower())


def test_multi_class_bench_comparisons_use_a_paired_bootstrap(tmp_path):
    store = _store(tmp_path, ["a", "b", "c"] * 20, sets=("deep", "other"), subjects=[f"p{i}" for i in range(60)])
    res = run_bench(store, ["deep", "other"], heads=["logreg"], cv=3)
    (c,) = res.comparisons
    assert c.delong is None and "binary" in c.not_computable["delong"]
    assert c.bootstrap is not None and c.bootstrap.diff > 0 and 0 < c.bootstrap.p <= 1
    assert c.corrected_t is not None


@pytest.mark.parametrize("v", [float("nan"), float("inf"), -float("inf"), None, -0.1, 1.5])
def test_no_nan_is_ever_rendered_as_a_p_value(v):
    assert p_value(v) == "not computable"


def test_p_values_that_are_numbers_render_as_numbers():
    assert (p_value(0.5), p_value(0.0004), p_value(0.0), p_value(1.0)) == ("0.5", "<0.001", "<0.001", "1")
