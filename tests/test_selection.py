"""Nested selection (bench --select nested) and top-K ensembles (bench --ensemble K), saved and applied by predict."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from featx import api
from featx.dataset.manifest import Manifest, Sample
from featx.errors import ConfigError, FitError
from featx.evaluate.heads.registry import build_head
from featx.evaluate.models.selection import InnerCV, Member, select
from featx.evaluate.protocol.folds import make_folds
from featx.evaluate.protocol.task import Task
from featx.store.writer import store_writer


def _noise_store(path, n_sets=6, n=80, d=20, signal=None, seed=0):
    """Sets ``noise0..`` of pure noise over n samples (``signal``: the index of one informative set)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["neg", "pos"] * (n // 2))
    man = Manifest(
        [Sample(sample_id=f"s{i:03d}", path=path.parent / f"{i}.png", label=lab) for i, lab in enumerate(labels)]
    )
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(man)
        for k in range(n_sets):
            X = rng.normal(size=(n, d))
            if k == signal:
                X[:, 0] += 1.5 * (labels == "pos")
            st.create_feature_set(f"noise{k}", d, {"kind": "cnn"}, "id", kind="cnn")
            st.write(f"noise{k}", rows, X.astype(np.float32))
    return path


def test_nested_selection_exposes_the_optimism_of_the_best_of_many_noise_cells(tmp_path):
    store = _noise_store(tmp_path / "f.h5")
    sets = [f"noise{k}" for k in range(6)]
    res = api.bench(store, sets, heads=["logreg", "knn"], cv=5, bootstrap=0, select="nested", positive="pos")
    s = res.selection
    assert s.naive_best == res.cells[0].title and s.naive_auc == res.cells[0].cv.pooled.auc
    assert s.naive_auc > 0.55  # the best of 12 noise cells looks like something
    assert s.nested.pooled.auc < 0.52  # the procedure that picked it is worth nothing
    assert s.gap == pytest.approx(s.naive_auc - s.nested.pooled.auc) and s.gap > 0.05
    assert len(s.chosen) == 5 and s.candidates == 12
    assert "Quote the nested estimate" in s.quote


def test_nested_selection_finds_the_informative_set_and_reports_its_test_score_once(tmp_path):
    store = _noise_store(tmp_path / "f.h5", n_sets=3, n=120, signal=1)
    import h5py

    with h5py.File(store, "a") as h5:  # the last 30 rows become the held-out test split
        split = np.array(["train"] * 90 + ["test"] * 30, dtype=object)
        del h5["samples/split"]
        h5["samples/split"] = split.astype("S")
    res = api.bench(store, ["noise0", "noise1", "noise2"], heads=["logreg"], cv=5, bootstrap=0, select="nested")
    s = res.selection
    assert set(s.chosen) == {"noise1 + logreg"} and s.selected == "noise1 + logreg"
    assert s.test is not None and s.test == next(c.test for c in res.cells if c.title == s.selected)
    assert "held-out test split, scored once" in s.quote


def _members(n=60, n_members=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    folds = make_folds(y.astype(str), None, k=4, seed=0)
    members = []
    for i in range(n_members):
        X = rng.normal(size=(n, 5)) + (i * 0.6) * y[:, None]
        oof = np.full((1, n, 2), np.nan)
        for _, _, train, test in folds.split():
            m = build_head("logreg")[0].fit(X[train], y[train])
            oof[0, test] = m.predict_proba(X[test])
        members.append(Member(f"m{i}", X, build_head("logreg")[0], None, oof))
    return y, folds, members


def test_the_inner_cv_never_sees_the_outer_fold_and_the_choice_ignores_its_predictions():
    y, folds, members = _members()
    task = Task("classification", y, ("a", "b"), folds=folds)
    inner = InnerCV(members, task, 3, seed=0)
    from featx.evaluate.protocol.parallel import run_tasks

    run_tasks(inner.tasks(), 1)
    for args, (r, f, _i), _rows in inner.calls:
        train_rows, test_rows = args[7], args[8]
        outer_test = np.flatnonzero(folds.fold_of[r] == f)
        assert not set(train_rows) & set(outer_test) and not set(test_rows) & set(outer_test)
    for (r, f, _i), p in inner.proba.items():
        outer_test = folds.fold_of[r] == f
        assert np.isnan(p[outer_test]).all() and not np.isnan(p[~outer_test]).any()
    first = select(inner, task, k=2)
    # the outer predictions of every member on fold 1 turned upside down: the choice and the members stay
    for m in members:
        held = folds.fold_of[0] == 0
        m.oof[0, held] = m.oof[0, held][:, ::-1]
    second = select(inner, task, k=2)
    assert first.chosen == second.chosen and first.members == second.members
    assert first.chosen[-1] == "m2"  # the informative member wins its inner CV


def test_ensemble_settings_are_checked_before_any_fitting(tmp_path):
    store = _noise_store(tmp_path / "f.h5", n_sets=2)
    with pytest.raises(FitError, match="--ensemble 5: an ensemble combines 2 to 2 cells"):
        api.bench(store, ["noise0", "noise1"], heads=["logreg"], cv=3, ensemble=5)
    with pytest.raises(FitError, match="--save-row 'nope' is no row of this bench"):
        api.bench(store, ["noise0", "noise1"], heads=["logreg"], cv=3, save=tmp_path / "m.skops", save_row="nope")
    with pytest.raises(ConfigError, match="give --save PATH too"):
        api.bench(store, ["noise0", "noise1"], heads=["logreg"], cv=3, save_row="noise0 + logreg")


@pytest.mark.slow
@pytest.mark.parametrize(
    "row, threshold", [("top-3 cells + stacking (logistic regression)", "0.5"), ("top-3 cells + soft vote", "youden")]
)
def test_a_saved_ensemble_predicts_the_test_split_as_the_bench_scored_it(
    lite0_radiomics, models_dir, tmp_path, row, threshold
):
    store, sets, test_csv = lite0_radiomics
    res = api.bench(
        store,
        sets,
        heads=["logreg", "rf"],
        cv=4,
        bootstrap=0,
        ensemble=3,
        positive="malignant",
        save=tmp_path / "m.skops",
        save_row=row,
        threshold=threshold,
    )
    cell = next(c for c in res.cells if c.title == row)
    assert cell.kind == "ensemble" and len(cell.members) == 3 and len(cell.fold_members) == 4
    meta = api.load_model(tmp_path / "m.skops").meta
    assert meta["kind"] == "ensemble" and [m["title"] for m in meta["ensemble"]["members"]] == list(cell.members)
    p = api.predict(tmp_path / "m.skops", test_csv, tmp_path / "p.csv", models_dir=models_dir)
    assert p.n_predicted == 40 and not p.failures
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    auc = roc_auc_score([r["label"] == "malignant" for r in rows], [float(r["p_malignant"]) for r in rows])
    assert auc == pytest.approx(cell.test.auc, abs=1e-4)  # six decimals in the CSV
    if threshold == "youden":  # chosen per fold on the training rows, and once on the development rows
        assert len(cell.cv.thresholds) == 4 and cell.test.threshold == meta["ensemble"]["threshold"] is not None
        assert all((r["predicted"] == "malignant") == (float(r["p_malignant"]) >= cell.test.threshold) for r in rows)
        sens = np.mean([r["predicted"] == "malignant" for r in rows if r["label"] == "malignant"])
        assert sens == pytest.approx(cell.test.sensitivity, abs=1e-9)
    else:
        assert cell.test.threshold is None and meta["ensemble"]["threshold"] is None


def test_the_report_says_which_number_to_quote_and_shows_the_ensembles(tmp_path):
    store = _noise_store(tmp_path / "f.h5", n_sets=3, n=80, signal=0)
    res = api.bench(
        store,
        ["noise0", "noise1", "noise2"],
        heads=["logreg"],
        cv=4,
        bootstrap=50,
        select="nested",
        ensemble=2,
        threshold="youden",
        positive="pos",
        out=tmp_path / "b",
    )
    html = (tmp_path / "b" / "report.html").read_text()
    assert "Model selection (nested)" in html and "Which number to quote" in html and "Ensembles" in html
    assert (tmp_path / "b" / "reliability.png").is_file() and (tmp_path / "b" / "reliability_cells.png").is_file()
    with open(tmp_path / "b" / "bench.csv") as fh:
        table = list(csv.DictReader(fh))
    assert all(float(r["cv_brier"]) > 0 and r["cv_calibration_slope"] for r in table)
    assert all(r["cv_threshold"] for r in table if r["kind"] != "ensemble")  # ensembles: the most probable class
    assert api.load_results(tmp_path / "b" / "results.json") == res  # the selection survives its JSON
    assert {c.title for c in res.cells if c.kind == "ensemble"} == {
        "top-2 cells + soft vote",
        "top-2 cells + stacking (logistic regression)",
    }
