"""featx bench: feature sets x heads on identical folds, ranked, compared; the same numbers as featx fit."""

import csv
import json

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, assert_usage_error, featx

from featx.api import bench as run_bench
from featx.api import fit as run_fit


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """'deep' (strong signal, kind cnn) and 'rad' (weak signal, kind radiomics, one sample fewer), 30 subjects x 2."""
    rng = np.random.default_rng(0)
    n = 60
    y = np.repeat(np.arange(30) % 2, 2)
    subj = np.repeat([f"p{i:02d}" for i in range(30)], 2)
    labels = np.array(["no", "yes"])[y]
    path = tmp_path_factory.mktemp("bench") / "b.h5"
    deep = rng.normal(size=(n, 8))
    deep[:, :2] += 2.0 * y[:, None]
    rad = rng.normal(size=(n, 5))
    rad[:, 0] += 0.4 * y
    make_store(path, "deep", deep, labels, subjects=subj)
    make_store(
        path,
        "rad",
        rad[:-1],
        labels[:-1],
        subjects=subj[:-1],
        kind="radiomics",
        feature_names=[f"r{i}" for i in range(5)],
    )
    return path


def test_bench_ranks_cells_on_identical_folds_and_compares_deep_with_radiomics(two_sets, tmp_path):
    res = run_bench(two_sets, ["deep", "rad"], ["logreg", "lda", "knn"], cv=5, out=tmp_path / "b", bootstrap=100)
    cells = res.cells
    assert len(cells) == 6 and [c.rank for c in cells] == list(range(1, 7))
    aucs = [c.cv.pooled.auc for c in cells]
    assert aucs == sorted(aucs, reverse=True) and cells[0].feature_set == "deep"
    assert res.n_dev == 59  # the sample missing from 'rad' is left out of every cell
    assert all(len(c.fold_auc) == 5 for c in cells)
    whys = [c.why for c in res.comparisons]
    assert whys[0].startswith("rank 1 vs rank 2") and any("best deep vs best radiomics" in w for w in whys)
    assert res.comparisons[0].a == cells[0].title and res.comparisons[0].b == cells[1].title
    dr = next(c for c in res.comparisons if "best deep vs best radiomics" in c.why)
    assert dr.a.startswith("deep + ") and dr.b.startswith("rad + ")
    assert dr.delong.diff > 0.2 and dr.delong.p < 0.01 and dr.corrected_t.p < 0.05
    with open(tmp_path / "b" / "bench.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 7)]
    with open(tmp_path / "b" / "oof_predictions.csv") as fh:
        oof = list(csv.DictReader(fh))
    assert len(oof) == 59 and "rad+lda:p_yes" in oof[0] and "deep+knn:p_yes" in oof[0]
    page = (tmp_path / "b" / "report.html").read_text()
    assert "Pairwise comparisons" in page and "rad + " in page and "data:image/png;base64," in page


def test_a_bench_cell_equals_featx_fit_on_the_same_folds(two_sets, tmp_path):
    res = run_bench(two_sets, ["deep", "rad"], ["lda"], cv=4, repeats=2, seed=7, out=tmp_path / "b", bootstrap=0)
    fit = run_fit(two_sets, "rad", head="lda", folds=tmp_path / "b" / "folds.json", bootstrap=0)
    cell = next(c for c in res.cells if c.feature_set == "rad")
    assert fit.cv.pooled.auc == pytest.approx(cell.cv.pooled.auc, abs=1e-12)
    assert fit.cv.fold_values("auc") == pytest.approx(cell.fold_auc)


def test_bench_cli_and_report_rerender(two_sets, tmp_path):
    proc = featx(
        "bench",
        "-s",
        two_sets,
        "-f",
        "deep,rad",
        "--heads",
        "logreg,lda",
        "--cv",
        "3",
        "--bootstrap",
        "0",
        "--out",
        tmp_path / "b",
    )
    assert proc.returncode == 0, proc.stderr
    assert "rank 1 vs rank 2: deep + " in proc.stdout and "report:" in proc.stdout
    (tmp_path / "b" / "report.html").unlink()
    proc = featx("report", tmp_path / "b" / "results.json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "report.html").stat().st_size > 1000
    assert json.loads((tmp_path / "b" / "results.json").read_text())["type"] == "bench"


def test_bench_refuses_unknown_heads_and_sets(two_sets):
    assert_usage_error(
        featx("bench", "-s", two_sets, "-f", "deep", "--heads", "logreg,svm_rbf"), "'--heads'", "Did you mean 'svm-rbf'"
    )
    assert_one_line_error(featx("bench", "-s", two_sets, "-f", "deep,nope"), "nope")


def test_fit_and_bench_refuse_a_label_seen_only_in_the_test_split(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b"] * 20)
    labels[-1] = "c"  # only in the test split: no model can learn it
    store = tmp_path / "s.h5"
    make_store(store, "deep", rng.normal(size=(40, 4)), labels, splits=["train"] * 36 + ["test"] * 4)
    for argv in (("fit", "-s", store, "-f", "deep"), ("bench", "-s", store, "-f", "deep", "--heads", "logreg")):
        assert_one_line_error(featx(*argv, "--cv", "3"), "Test labels ['c'] never occur outside the test split")


def test_bench_api_takes_comma_separated_lists(two_sets):
    res = run_bench(two_sets, "deep,rad", "logreg,lda", cv=3, bootstrap=0)
    assert sorted((c.feature_set, c.head) for c in res.cells) == [
        ("deep", "lda"),
        ("deep", "logreg"),
        ("rad", "lda"),
        ("rad", "logreg"),
    ]


def _ranked(*cells):
    from types import SimpleNamespace

    return [
        SimpleNamespace(cell=SimpleNamespace(feature_set=f, head=h, kind=k, title=f"{f} + {h}")) for f, h, k in cells
    ]


def test_comparisons_answer_the_study_question_when_a_combined_set_ranks_first():
    from featx.evaluate.statistics.comparisons import pairs_to_compare

    cells = _ranked(
        ("lite0+radiomics.default", "rf", "combined"),
        ("lite0+radiomics.default", "logreg", "combined"),
        ("lite0", "logreg", "cnn"),
        ("radiomics.default", "rf", "radiomics"),
        ("lite0", "rf", "cnn"),
    )
    pairs = {why: (a.cell.title, b.cell.title) for a, b, why in pairs_to_compare(cells)}
    assert pairs == {
        "rank 1 vs rank 2": ("lite0+radiomics.default + rf", "lite0+radiomics.default + logreg"),
        "best deep vs best radiomics": ("lite0 + logreg", "radiomics.default + rf"),
        "best lite0+radiomics.default vs best of its part lite0": ("lite0+radiomics.default + rf", "lite0 + logreg"),
        "best lite0+radiomics.default vs best of its part radiomics.default": (
            "lite0+radiomics.default + rf",
            "radiomics.default + rf",
        ),
    }


def test_a_pair_asked_for_twice_is_compared_once_under_both_labels():
    from featx.evaluate.statistics.comparisons import pairs_to_compare

    cells = _ranked(("deep", "logreg", "cnn"), ("rad", "logreg", "radiomics"), ("deep", "knn", "cnn"))
    pairs = [(a.cell.title, b.cell.title, why) for a, b, why in pairs_to_compare(cells)]
    assert pairs == [("deep + logreg", "rad + logreg", "rank 1 vs rank 2; best deep vs best radiomics")]
