"""Time-to-event targets (``--target survival --time COL --event COL``): featx's metrics equal scikit-survival's and
lifelines' own on their bundled data, the risk-group cut-off never sees the rows it splits, and on a stand-in of real
images with a planted hazard, censoring and two images per patient, fit, bench, the report, a saved model and
predict work end to end."""

import csv
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, assert_usage_error, featx

pytest.importorskip("sksurv", reason="featx[survival] (scikit-survival) is part of the test extra")

from sksurv.column import encode_categorical  # noqa: E402
from sksurv.datasets import load_gbsg2, load_whas500  # noqa: E402

from featx.errors import ConfigError  # noqa: E402
from featx.evaluate.config import BenchConfig, FitConfig  # noqa: E402
from featx.evaluate.heads.registry import build_head  # noqa: E402
from featx.evaluate.protocol.cv import cross_validate  # noqa: E402
from featx.evaluate.protocol.folds import make_folds  # noqa: E402
from featx.evaluate.protocol.task import Task  # noqa: E402
from featx.evaluate.runs.bench import run_bench  # noqa: E402
from featx.evaluate.runs.fit import run_fit  # noqa: E402
from featx.evaluate.statistics.resampling import Resampling  # noqa: E402
from featx.evaluate.statistics.survival import paired_c_bootstrap, survival_bootstrap, survival_metrics  # noqa: E402
from featx.store.open import open_store


def _data(loader):
    X, y = loader()
    names = y.dtype.names
    return encode_categorical(X).to_numpy(float), y[names[0]].astype(bool), y[names[1]].astype(float)


@pytest.mark.parametrize("loader", [load_whas500, load_gbsg2], ids=["whas500", "gbsg2"])
def test_the_metrics_equal_scikit_survivals_and_lifelines(loader):
    """A Cox model fitted on 70% of the rows predicts the rest: featx's C-indices, time-dependent AUC and integrated
    Brier score equal scikit-survival's functions called on the model's own survival functions, and Harrell's C
    equals lifelines' (an independent implementation)."""
    from lifelines.utils import concordance_index
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )
    from sksurv.util import Surv

    X, event, time = _data(loader)
    n = len(time)
    train, test = np.arange(n) < int(0.7 * n), np.arange(n) >= int(0.7 * n)
    task = Task.survival(event, time)
    happened = time[train & event]
    times = tuple(float(t) for t in np.percentile(happened, np.linspace(10, 80, 8)))
    horizons = tuple(float(t) for t in np.percentile(happened, (25, 50, 75)))
    head = build_head("coxph", target="survival")[0].set_params(times=times)
    head.fit(X[train], task.y[train])
    pred = head.predict_outputs(X[test])
    ours = survival_metrics(replace(task.rows(test), times=times, horizons=horizons, reference=task.y[train]), pred)

    y_train, y_test = Surv.from_arrays(event[train], time[train]), Surv.from_arrays(event[test], time[test])
    risk = head.predict(X[test])
    assert ours["harrell_c"] == pytest.approx(concordance_index_censored(event[test], time[test], risk)[0])
    assert ours["harrell_c"] == pytest.approx(concordance_index(time[test], -risk, event[test]), abs=1e-9)
    tau = time[train][event[train]].max()
    assert ours["uno_c"] == pytest.approx(concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0])
    inside = [h for h in horizons if time[test].min() <= h < time[test].max()]
    aucs, mean = cumulative_dynamic_auc(y_train, y_test, risk, inside)
    assert ours["td_auc_mean"] == pytest.approx(mean) and list(ours["td_auc"].values()) == pytest.approx(list(aucs))
    grid = [t for t in times if time[test].min() <= t < time[test].max()]
    surv = np.array([fn(grid) for fn in head.predict_survival_function(X[test])])
    assert ours["ibs"] == pytest.approx(integrated_brier_score(y_train, y_test, surv, grid))
    assert 0.6 < ours["harrell_c"] < 0.9 and 0 < ours["ibs"] < 0.25


def test_the_bootstrap_resamples_patients_and_the_paired_test_sees_a_better_risk():
    X, event, time = _data(load_whas500)
    task = Task.survival(event, time, groups=np.arange(len(time)))
    head = build_head("coxph", target="survival")[0].fit(X, task.y)
    good = np.column_stack([head.predict(X), np.zeros(len(X))])
    noisy = good + np.random.default_rng(0).normal(scale=2.0 * good[:, 0].std(), size=good.shape) * [1, 0]
    boot = survival_bootstrap(replace(task, horizons=(365.0,), reference=task.y), good, Resampling(100, 0))
    c = survival_metrics(replace(task, reference=task.y), good)["harrell_c"]
    assert boot["unit"] == "sample" and boot["ci"]["harrell_c"][0] < c < boot["ci"]["harrell_c"][1]
    res, why = paired_c_bootstrap(task, good, noisy, Resampling(200, 0))
    assert why == "" and res.metric == "harrell_c" and res.diff > 0 and res.lo > 0 and res.p < 0.05


def test_the_risk_group_cut_off_never_sees_the_fold_it_splits():
    """Each fold's cut-off is the median risk of its own training rows: changing every held-out row of a fold (its
    features and its outcome) leaves that fold's cut-off as it was, and moves the others'."""
    X, event, time = _data(load_gbsg2)
    X, event, time = X[:300], event[:300], time[:300]
    folds = make_folds(np.where(event, "event", "censored"), None, k=5, seed=0)
    head = build_head("coxph", target="survival")[0].set_params(risk_cut=0.5)
    first = cross_validate(head, X, Task.survival(event, time, folds=folds)).proba[0]
    held = folds.fold_of[0] == 0
    X2, time2 = X.copy(), time.copy()
    X2[held] = np.random.default_rng(3).normal(size=X2[held].shape) * 10
    time2[held] = time2[held][::-1]
    second = cross_validate(head, X2, Task.survival(event, time2, folds=folds)).proba[0]
    assert np.array_equal(first[held, 1], second[held, 1])  # fold 1's cut-off: from the other folds' rows only
    assert not np.array_equal(first[~held, 1], second[~held, 1])  # the other folds trained on fold 1's rows
    train = ~held  # and it is the median of the risk its model gives its own training rows
    model = build_head("coxph", target="survival")[0].fit(X[train], Task.survival(event, time).y[train])
    assert first[held, 1][0] == pytest.approx(np.median(model.predict(X[train])))


@pytest.fixture(scope="module")
def standin(tmp_path_factory, models_dir, lite0):
    """The survival stand-in (80 patients x 2 real BreastMNIST images, hazard 6x for one class, censoring) with
    real EfficientNet-Lite0 features; and a copy whose outcomes are shuffled across patients."""
    from featx import api
    from featx.dataset.manifest import Manifest
    from featx.demo.standins import survival
    from featx.store.tools import compact_store
    from featx.store.writer import store_writer

    d = tmp_path_factory.mktemp("survival")
    manifest = survival(d / "data")
    store = d / "f.h5"
    api.extract(manifest, "efficientnet_lite0", store, models_dir=models_dir)
    man = Manifest.from_csv(manifest)
    subjects = sorted({s.subject for s in man})
    outcome = {s.subject: s.outcomes for s in man}
    moved = dict(zip(subjects, np.random.default_rng(7).permutation(subjects)))
    shuffled = d / "shuffled.h5"
    compact_store(store, shuffled)  # a copy, as one file
    with store_writer(shuffled) as w, w.transaction() as st:
        st.add_samples([replace(s, outcomes=outcome[moved[s.subject]]) for s in man])
    return store, shuffled, manifest


SURVIVAL = dict(target="survival", time="os_months", event="death", cv=5, bootstrap=200)


def test_fit_finds_the_planted_hazard_and_not_a_shuffled_one(standin, tmp_path):
    store, shuffled, manifest = standin
    res = run_fit(
        FitConfig(
            store=store, features="efficientnet_lite0", **SURVIVAL, out=tmp_path / "fit", save=tmp_path / "m.skops"
        ),
        progress=False,
    )
    m = res.cv.pooled
    assert res.head.name == "coxnet" and res.config["sources"]["head"] == "default of --target survival"
    assert m.harrell_c > 0.58 and m.ci["harrell_c"][0] > 0.5 and m.uno_c > 0.55 and res.cv.subject.n_subjects == 80
    groups = m.risk_groups
    assert groups["logrank"]["p"] < 0.05 and groups["n"]["low"] + groups["n"]["high"] == 160
    assert groups["events"]["high"] / groups["n"]["high"] > groups["events"]["low"] / groups["n"]["low"]
    page = (tmp_path / "fit" / "report.html").read_text()
    assert "Risk groups" in page and "Time-dependent AUC" in page and (tmp_path / "fit" / "km.png").is_file()
    with open(tmp_path / "fit" / "oof_predictions.csv", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert {"os_months", "death", "risk", "cutoff", "risk_group"} <= set(row) and any(k.startswith("S(") for k in row)
    null_cfg = FitConfig(store=shuffled, features="efficientnet_lite0", **{**SURVIVAL, "bootstrap": 0})
    null = run_fit(null_cfg, progress=False).cv.pooled
    assert abs(null.harrell_c - 0.5) < 0.08 and null.harrell_c < m.harrell_c - 0.07

    # the saved model: featx predict computes the features again and gives the refit's risk scores
    from featx import api

    out = tmp_path / "pred.csv"
    api.predict(tmp_path / "m.skops", manifest, out, models_dir=store.parent)
    with open(out, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    model = api.load_model(tmp_path / "m.skops")
    with open_store(store) as st:
        fs = st.load("efficientnet_lite0")
    risk = dict(zip(fs.ids, next(iter(model.models.values())).predict(fs.X)))
    assert len(rows) == 160 and all(r["error"] == "" for r in rows)
    np.testing.assert_allclose(
        [float(r["predicted"]) for r in rows], [risk[r["id"]] for r in rows], rtol=1e-4, atol=1e-6
    )
    assert {r["risk_group"] for r in rows} == {"low", "high"} and "S(" in ",".join(rows[0])


def test_bench_ranks_survival_heads_by_harrells_c(standin, tmp_path):
    store, _, _ = standin
    res = run_bench(
        BenchConfig(store=store, features=("efficientnet_lite0",), heads=("coxnet", "coxph"), pca=8, **SURVIVAL,
                    out=tmp_path / "b"),
        progress=False,
    )  # fmt: skip
    cs = [c.cv.pooled.harrell_c for c in res.cells]
    assert cs == sorted(cs, reverse=True) and res.comparisons[0].bootstrap.metric == "harrell_c"
    assert res.cells[0].fold_auc == res.cells[0].cv.fold_values("harrell_c")
    assert "ΔC" in (tmp_path / "b" / "report.html").read_text()


def test_what_a_survival_target_refuses_and_why(tmp_path):
    for kw, what in (
        (dict(target="survival", time="t"), "give --time COLUMN --event COLUMN"),
        (dict(time="t", event="e"), "add --target survival"),
        (dict(target="survival", time="t", event="e", horizons=(12, -1)), "must be positive"),
        (dict(target="survival", time="t", event="e", head="logreg"), "not a survival head"),
    ):
        with pytest.raises(ConfigError, match=what):
            FitConfig(store="s.h5", features="x", **kw)
    given = FitConfig(store="s.h5", features="x", target="survival", time="t", event="e", horizons="12, 24")
    assert given.horizons == (12.0, 24.0) and given.head == "coxnet"  # --horizons as the command line gives it
    with pytest.raises(ConfigError, match="horizons: expected a number, got 'soon'"):
        FitConfig(store="s.h5", features="x", target="survival", time="t", event="e", horizons="12,soon")
    store = tmp_path / "s.h5"
    n = 40
    make_store(store, "f", np.random.default_rng(0).normal(size=(n, 3)), [""] * n,
               outcomes={"t": [str(5 + i) for i in range(n - 1)] + ["soon"], "e": ["1", "0"] * (n // 2)})  # fmt: skip
    args = ("fit", "-s", store, "-f", "f", "--target", "survival", "--time", "t", "--event", "e", "--cv", "2")
    assert_one_line_error(featx(*args), "s0039: t 'soon'")
    make_store(store, "g", np.zeros((n, 2)), [""] * n, outcomes={"t": ["5"] * n, "e": ["0"] * n})
    assert_one_line_error(featx(*args[:4], "g", *args[5:]), "no row has an event")
    assert_usage_error(featx(*args, "--head", "xgb"), "'xgb' is not a survival head", "coxnet")  # given: not replaced


def test_nested_selection_and_the_label_efficiency_curve_of_a_survival_target(tmp_path):
    """A planted hazard in two of 12 features: early fusion, nested selection quoting Harrell's C, and a curve whose
    full size is the bench's own cell (coxnet: its own inner CV grouped by subject, in the curve as in the cell)."""
    rng = np.random.default_rng(0)
    n = 120
    subjects = [f"p{i // 2:03d}" for i in range(n)]
    z = np.repeat(rng.normal(size=n // 2), 2)
    t_event, t_censor = (
        np.repeat(rng.exponential(size=n // 2), 2) * np.exp(-z),
        np.repeat(rng.uniform(0.5, 3, n // 2), 2),
    )
    outcomes = {"t": np.round(np.minimum(t_event, t_censor), 4), "e": (t_event <= t_censor).astype(int)}
    X = rng.normal(size=(n, 12)) + np.outer(z, [1.0, 0.5] + [0] * 10)
    store = tmp_path / "s.h5"
    make_store(store, "deep", X, [""] * n, subjects=subjects, outcomes=outcomes)
    make_store(store, "rad", rng.normal(size=(n, 4)), [""] * n, subjects=subjects, kind="radiomics", outcomes=outcomes)
    res = run_bench(
        BenchConfig(store=store, features=("deep", "rad", "deep+rad"), heads=("coxnet",), target="survival", time="t",
                    event="e", cv=4, bootstrap=50, select="nested", train_sizes=("6", "all"), draws=2),
        progress=False,
    )  # fmt: skip
    sel, lc = res.selection, res.learning
    assert "Harrell's C" in sel.quote and sel.nested.pooled.harrell_c > 0.6
    fused = next(c for c in res.cells if c.feature_set == "deep+rad")  # early fusion: one Cox model on both
    assert fused.n_features == 16 and fused.cv.pooled.harrell_c > 0.6
    assert any("best deep+rad vs best of its part" in c.why for c in res.comparisons)
    assert lc["metric"] == "harrell_c" and lc["tests"][0]["harrell_c_difference"] > 0
    full = next(p for p in lc["points"] if p["size"] == "all" and p["features"] == "deep")
    assert full["harrell_c"] == pytest.approx(
        next(c for c in res.cells if c.feature_set == "deep").cv.pooled.harrell_c, abs=1e-4
    )
    with pytest.raises(ConfigError, match="not for --target survival"):
        BenchConfig(store=store, features=("deep",), target="survival", time="t", event="e", ensemble=2)
