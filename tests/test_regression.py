"""Continuous targets (``--target regression --value COL``): the metrics are scikit-learn's and SciPy's, their
intervals resample subjects, the paired test is a bootstrap of the MAE difference, and fit, bench, the report and a
saved model work end to end on a planted outcome."""

import csv
import json

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, assert_usage_error, featx

from featx.errors import ConfigError
from featx.evaluate.config import BenchConfig, FitConfig
from featx.evaluate.models.saved import load_model
from featx.evaluate.protocol.task import Task
from featx.evaluate.runs.bench import run_bench
from featx.evaluate.runs.fit import run_fit
from featx.evaluate.statistics.regression import paired_mae_bootstrap, regression_bootstrap, regression_metrics
from featx.evaluate.statistics.resampling import Resampling
from featx.results.io import load_results
from featx.store.open import open_store


def test_regression_metrics_are_scikit_learns_and_scipys():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, 80)
    pred = y + rng.normal(2, 5, 80)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(r2_score(y, pred))
    assert m["pearson"] == pytest.approx(pearsonr(y, pred).statistic)
    assert m["spearman"] == pytest.approx(spearmanr(y, pred).statistic)
    d = pred - y  # Bland-Altman: the bias and its 95% limits of agreement
    assert m["bias"] == pytest.approx(d.mean()) and m["loa"][1] - m["loa"][0] == pytest.approx(2 * 1.96 * d.std(ddof=1))
    flat = regression_metrics(y, np.full(80, 50.0))  # a constant prediction has no correlation: said so, never NaN
    assert "pearson" not in flat and "constant" in flat["not_computable"]["pearson"] and flat["mae"] > 0


def test_the_bootstrap_resamples_subjects_not_rows():
    """Five identical rows per subject carry one subject's information: the interval is that of one row each."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=60)
    pred = y + rng.normal(scale=0.8, size=60)
    boot = Resampling(300, seed=3)
    one = regression_bootstrap(Task.regression(y), pred, boot)
    five = regression_bootstrap(
        Task.regression(np.repeat(y, 5), groups=np.repeat(np.arange(60), 5)), np.repeat(pred, 5), boot
    )
    assert five["unit"] == "subject" and one["unit"] == "sample"
    for key in ("mae", "rmse", "r2", "pearson", "spearman"):
        np.testing.assert_allclose(one["ci"][key], five["ci"][key], err_msg=key)
    rows = regression_bootstrap(Task.regression(np.repeat(y, 5)), np.repeat(pred, 5), boot)
    width = lambda b: b["ci"]["mae"][1] - b["ci"]["mae"][0]  # noqa: E731
    assert width(rows) < 0.6 * width(five)  # resampling rows would claim more certainty than 60 subjects give


def test_paired_mae_bootstrap():
    rng = np.random.default_rng(2)
    y = rng.normal(size=100)
    good, bad = y + rng.normal(scale=0.3, size=100), y + rng.normal(scale=1.0, size=100)
    task = Task.regression(y)
    res, why = paired_mae_bootstrap(task, good, bad, Resampling(500, 0))
    assert why == "" and res.metric == "mae" and res.hi < 0 and res.p < 0.01
    assert res.diff == pytest.approx(np.abs(good - y).mean() - np.abs(bad - y).mean())
    same, _ = paired_mae_bootstrap(task, good, good.copy(), Resampling(200, 0))
    assert same.diff == 0 and same.p == 1.0
    assert paired_mae_bootstrap(task, good, bad, Resampling(5, 0))[0] is None  # too few resamples: says why


@pytest.fixture(scope="module")
def aged(tmp_path_factory):
    """60 subjects x 2 images; deep features carry the subject's age, radiomics hardly; a test split of 10."""
    d = tmp_path_factory.mktemp("aged")
    rng = np.random.default_rng(0)
    n = 120
    subjects = [f"p{i // 2:03d}" for i in range(n)]
    age = {s: round(40 + 30 * rng.random(), 1) for s in sorted(set(subjects))}
    v = np.array([age[s] for s in subjects])
    X = rng.normal(size=(n, 16))
    X[:, :3] += (v[:, None] - 55) / 8
    R = rng.normal(size=(n, 5))
    R[:, 0] += (v - 55) / 40
    splits = ["test" if s >= "p050" else "train" for s in subjects]
    values = {"age": [str(a) for a in v]}
    values["age"][0] = ""  # no value: left out, said so
    store = d / "s.h5"
    make_store(store, "deep", X, [""] * n, subjects=subjects, splits=splits, outcomes=values)
    make_store(store, "rad", R, [""] * n, subjects=subjects, splits=splits, kind="radiomics", outcomes=values,
               feature_names=[f"original_f{i}" for i in range(5)])  # fmt: skip
    return store, v


def test_fit_predicts_a_planted_age_and_shuffled_ages_are_not_predicted(aged, tmp_path):
    store, v = aged
    cfg = dict(store=store, features="deep", target="regression", value="age", head="ridge", cv=5, bootstrap=200)
    res = run_fit(FitConfig(**cfg, out=tmp_path / "fit", save=tmp_path / "m.skops"), progress=False)
    m = res.cv.pooled
    assert res.target.kind == "regression" and res.classes == () and res.n_dev == 99 and res.n_test == 20
    assert m.r2 > 0.5 and m.pearson > 0.7 and m.ci["mae"][0] < m.mae < m.ci["mae"][1] and m.ci_unit == "subject"
    assert m.mae < 0.6 * np.abs(v - v.mean()).mean()  # far better than predicting the mean age
    assert res.test.mae is not None and res.cv.subject.n_subjects == 50  # two images of one age per subject
    assert res.protocol.grouped_by_subject and set(res.cv.per_fold) == {"mae", "rmse", "r2", "pearson", "spearman"}
    with open(tmp_path / "fit" / "oof_predictions.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 99 and set(rows[0]) == {"id", "age", "subject", "sequence", "repeat", "fold", "predicted"}
    page = (tmp_path / "fit" / "report.html").read_text()
    assert "Bland-Altman" in page and (tmp_path / "fit" / "agreement.png").is_file() and f"{m.mae:.3f}" in page
    assert load_results(tmp_path / "fit" / "results.json").target.value == "age"
    # the saved model predicts what its refit predicts
    model = load_model(tmp_path / "m.skops")
    assert model.regression
    with open_store(store) as st:
        fs = st.load("deep")
    pred = model.predict(fs)
    np.testing.assert_allclose(pred.proba[:, 0], next(iter(model.models.values())).predict(fs.X), rtol=1e-5)
    assert pred.predicted()[0] == f"{pred.proba[0, 0]:.6g}"
    # ages shuffled across subjects: nothing to learn
    names, first = np.unique(fs.subjects, return_index=True)
    shuffled = dict(zip(names, np.random.default_rng(5).permutation(v[first])))
    noise = tmp_path / "noise.h5"
    make_store(
        noise, "deep", fs.X, [""] * len(fs), subjects=fs.subjects, outcomes={"age": [shuffled[s] for s in fs.subjects]}
    )
    null = run_fit(FitConfig(**{**cfg, "store": noise}), progress=False).cv.pooled
    assert null.r2 < 0.1 and null.mae > m.mae * 1.5


def test_bench_ranks_by_mae_and_compares_by_a_paired_bootstrap(aged, tmp_path):
    store, _ = aged
    res = run_bench(
        BenchConfig(store=store, features=("deep", "rad"), heads=("ridge", "rf"), target="regression", value="age",
                    cv=5, bootstrap=200, out=tmp_path / "b"),
        progress=False,
    )  # fmt: skip
    maes = [c.cv.pooled.mae for c in res.cells]
    assert maes == sorted(maes) and res.cells[0].feature_set == "deep"
    deep_vs_rad = next(c for c in res.comparisons if "best deep vs best radiomics" in c.why)
    assert deep_vs_rad.bootstrap.metric == "mae" and deep_vs_rad.bootstrap.hi < 0 and deep_vs_rad.delong is None
    assert len(res.cells[0].fold_auc) == 5 and res.cells[0].fold_auc == res.cells[0].cv.fold_values("mae")
    with open(tmp_path / "b" / "bench.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert float(table[0]["cv_mae"]) == pytest.approx(maes[0], abs=1e-4) and "cv_r2_lo" in table[0]
    page = (tmp_path / "b" / "report.html").read_text()
    assert "ΔMAE" in page and (tmp_path / "b" / "agreement.png").is_file()
    target = json.loads((tmp_path / "b" / "results.json").read_text())["target"]
    assert target["kind"] == "regression" and target["value"] == "age"


def test_what_a_regression_refuses_and_why(aged, tmp_path):
    store, _ = aged
    assert_one_line_error(
        featx("fit", "-s", store, "-f", "deep", "--target", "regression", "--value", "weight"),
        "no outcome column 'weight'",
        "it keeps: age",
    )
    assert_usage_error(
        featx("fit", "-s", store, "-f", "deep", "--target", "regression", "--value", "age", "--head", "logreg"),
        "'logreg' is not a regression head",
        "ridge",
    )
    bad = tmp_path / "bad.h5"
    make_store(bad, "deep", np.zeros((12, 2)), [""] * 12, outcomes={"age": ["41"] * 11 + ["forty"]})
    assert_one_line_error(
        featx("fit", "-s", bad, "-f", "deep", "--target", "regression", "--value", "age", "--cv", "2"), "s0011: 'forty'"
    )
    for kw, what in (
        (dict(target="regression"), "give --value COLUMN"),
        (dict(value="age"), "add --target regression"),
        (dict(target="regression", value="age", threshold="youden"), "decides classes"),
        (dict(target="regression", value="age", positive="old"), "drop --positive"),
        (dict(target="regression", value="age", fuse="vote"), "--fuse concat"),
    ):
        with pytest.raises(ConfigError, match=what):
            FitConfig(store="s.h5", features="x", **kw)
    with pytest.raises(ConfigError, match="not for --target regression"):
        BenchConfig(store="s.h5", features=("x",), target="regression", value="age", ensemble=2)


def test_a_manifests_outcome_columns_reach_the_store_and_survive_a_rewrite(tmp_path, caplog):
    from PIL import Image

    from featx.dataset.manifest import Manifest
    from featx.store.writer import store_writer

    for i in range(3):
        Image.new("L", (8, 8), i).save(tmp_path / f"im{i}.png")
    (tmp_path / "m.csv").write_text("path,Age,lable\nim0.png,61.5,x\nim1.png,,y\nim2.png,70,z\n")
    with caplog.at_level("INFO", logger="featx"):
        man = Manifest.from_csv(tmp_path / "m.csv")
    assert "unknown column 'lable'; Did you mean 'label'?" in caplog.text  # a misspelt column is still flagged
    assert man.samples[0].outcomes == (("age", "61.5"), ("lable", "x"))
    again = Manifest.from_csv(man.to_csv(tmp_path / "again.csv"))
    assert [s.outcomes for s in again] == [s.outcomes for s in man]
    with store_writer(tmp_path / "s.h5") as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set("f", 2, {"kind": "cnn"}, "id", kind="cnn")
        st.write("f", rows, np.ones((3, 2), np.float32))
    with open_store(tmp_path / "s.h5") as st:
        assert st.outcome_names() == ["age", "lable"] and list(st.load("f").outcomes["age"]) == ["61.5", "", "70"]


def test_nested_selection_and_the_label_efficiency_curve_of_a_regression(aged):
    store, _ = aged
    res = run_bench(
        BenchConfig(store=store, features=("deep", "rad"), heads=("ridge",), target="regression", value="age", cv=5,
                    bootstrap=50, select="nested", train_sizes=("4", "all"), draws=2),
        progress=False,
    )  # fmt: skip
    sel, lc = res.selection, res.learning
    assert (
        sel.nested.pooled.mae is not None and "MAE" in sel.quote and set(sel.chosen) <= {"deep + ridge", "rad + ridge"}
    )
    assert sel.gap == pytest.approx(sel.nested.pooled.mae - sel.naive_auc)  # positive: the naive figure looks better
    assert lc["metric"] == "mae" and "per stratum" in lc["unit"]
    full = {(p["features"], p["head"]): p["mae"] for p in lc["points"] if p["size"] == "all"}
    assert full[("deep", "ridge")] == pytest.approx(
        next(c for c in res.cells if c.feature_set == "deep").cv.pooled.mae, abs=1e-4
    )
    assert all(t["mae_difference"] < 0 for t in lc["tests"])  # the deep features err less at every size
