"""run_fit's protocol on synthetic stores: seeds, repeats, fixed splits, subjects, fusion, tuning, saved models."""

import csv
import json

import numpy as np
import pytest
from conftest import make_store

from featx.api import bench as run_bench
from featx.api import fit as run_fit
from featx.errors import ConfigError, FitError
from featx.store.open import open_store


def _cohort(n_subjects=40, per=3, d=6, seed=0, signal=2.5):
    """``per`` images per subject; the label is the subject's; feature 0 carries the signal."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_subjects) % 2, per)
    subj = np.repeat([f"p{i:03d}" for i in range(n_subjects)], per)
    X = rng.normal(size=(len(y), d)) + np.repeat(rng.normal(size=(n_subjects, d)), per, axis=0)  # subject effect
    X[:, 0] += signal * y
    return X, np.array(["benign", "malignant"])[y], subj


@pytest.fixture
def grouped_store(tmp_path):
    X, labels, subj = _cohort()
    return make_store(tmp_path / "g.h5", "deep", X, labels, subjects=subj)


def _oof(out):
    with open(out / "oof_predictions.csv") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_numbers_other_seed_other_folds_and_saved_folds_reused(grouped_store, tmp_path):
    a = run_fit(grouped_store, "deep", head="logreg", cv=5, seed=3, out=tmp_path / "a", bootstrap=50)
    b = run_fit(grouped_store, "deep", head="logreg", cv=5, seed=3, out=tmp_path / "b", bootstrap=50)
    c = run_fit(grouped_store, "deep", head="logreg", cv=5, seed=4, bootstrap=0)
    assert a.folds == b.folds and a.cv.pooled == b.cv.pooled
    assert a.protocol.seed == 3 and a.protocol.grouped_by_subject
    assert a.folds["fold_of"] != c.folds["fold_of"]
    d = run_fit(grouped_store, "deep", head="logreg", cv=5, seed=4, folds=tmp_path / "a" / "folds.json", bootstrap=50)
    assert d.folds["fold_of"] == a.folds["fold_of"] and d.cv.pooled.auc == a.cv.pooled.auc
    assert d.protocol.folds_from.endswith("folds.json")


def test_repeats_test_every_sample_once_per_repeat_and_subjects_never_split(grouped_store, tmp_path):
    res = run_fit(grouped_store, "deep", cv=4, repeats=3, out=tmp_path / "r", bootstrap=0)
    rows = _oof(tmp_path / "r")
    assert len(rows) == 3 * 120 and len(res.cv.per_repeat) == 3
    assert len(res.cv.fold_values("auc")) == 12
    for r in range(3):
        mine = [x for x in rows if x["repeat"] == str(r)]
        assert sorted(x["id"] for x in mine) == sorted(res.folds["fold_of"])
        fold_of_subject = {}
        for x in mine:
            assert fold_of_subject.setdefault(x["subject"], x["fold"]) == x["fold"]
    assert len({tuple(v) for v in res.folds["fold_of"].values()}) > 4  # repeats re-shuffle


def test_subject_level_metrics_average_a_subjects_images(grouped_store):
    res = run_fit(grouped_store, "deep", cv=5, bootstrap=100)
    subj = res.cv.subject
    assert subj.n_subjects == 40 and subj.mixed_label_subjects == 0
    assert res.cv.pooled.ci_unit == "subject" and sum(map(sum, subj.confusion_matrix)) == 40
    assert res.cv.pooled.auc > 0.75 and "auc" in subj.ci


def test_fixed_split_draws_subjects_and_scores_only_the_test_side(grouped_store, tmp_path):
    res = run_fit(grouped_store, "deep", split="fixed", test_size=0.3, out=tmp_path / "f", bootstrap=0)
    rows = _oof(tmp_path / "f")
    subjects = {x["subject"] for x in rows}
    assert len(subjects) == 12 and len(rows) == 36  # 30% of 40 subjects, all 3 images of each
    fold_of = res.folds["fold_of"]
    assert sum(v == [0] for v in fold_of.values()) == 36 and sum(v == [-1] for v in fold_of.values()) == 84
    assert "fixed train/test split (30% of subjects drawn as test" in res.protocol.folds
    with pytest.raises(ConfigError, match="test_size: draws a fixed train/test split; use it with split fixed"):
        run_fit(grouped_store, "deep", test_size=0.3)


def test_manifest_split_that_puts_a_subject_on_both_sides_is_refused(tmp_path):
    X, labels, subj = _cohort()
    splits = np.where(np.arange(120) < 30, "test", "train")
    splits[30] = "test"  # p010's images 0 is test, 1 and 2 train... (subject p010 = rows 30-32)
    store = make_store(tmp_path / "s.h5", "deep", X, labels, subjects=subj, splits=splits)
    with pytest.raises(FitError, match=r"Subject 'p010' has rows in the 'test' split and outside it"):
        run_fit(store, "deep", cv=5)
    with pytest.raises(FitError, match=r"Subject 'p010' would be in (train and fold 0|fold 0 and train)"):
        run_fit(store, "deep", split="fixed")


def test_tune_runs_nested_cv_and_records_the_choice_per_fold(grouped_store):
    res = run_fit(grouped_store, "deep", head="logreg", cv=4, tune=True, bootstrap=0, inner_k=3)
    best = res.cv.best_params
    assert len(best) == 4 and all(b["clf__C"] in res.head.tuned["grid"]["clf__C"] for b in best)


def _multi_sequence(tmp_path, seqs=("T1", "T2"), test_subjects=0):
    rng = np.random.default_rng(1)
    rows = []
    for s in range(40):
        y = s % 2
        for q_i, q in enumerate(seqs):
            for k in range(2):
                x = rng.normal(size=4)
                x[q_i] += 1.2 * y  # each sequence carries its own part of the signal
                rows.append((f"p{s:02d}_{q}_{k}", f"p{s:02d}", q, "ab"[y], x))
    ids, subj, seq, lab, X = zip(*rows)
    splits = ["test" if int(s_[1:]) < test_subjects else "train" for s_ in subj]
    return make_store(
        tmp_path / "m.h5",
        "deep",
        np.array(X),
        list(lab),
        subjects=list(subj),
        sequences=list(seq),
        ids=list(ids),
        splits=splits,
    )


@pytest.mark.parametrize("how", ["vote", "mean"])
def test_fusion_of_sequence_models_reports_each_and_the_fused_one(tmp_path, how):
    store = _multi_sequence(tmp_path)
    res = run_fit(store, "deep", cv=5, fuse=how, out=tmp_path / how, bootstrap=50)
    assert set(res.sequences) == {"T1", "T2"} and all(v.n == 80 for v in res.sequences.values())
    assert res.cv.level == f"subject ({how} of 2 sequence models)" and res.cv.n_tested == 40
    per_seq = [v.cv.subject.auc for v in res.sequences.values()]
    assert res.cv.pooled.auc > min(per_seq)  # two half-signals fused beat the weaker one
    page = (tmp_path / how / "report.html").read_text()
    assert "Per-sequence models and the fused one" in page and f"fused ({how})" in page


def test_concat_fusion_fits_one_row_per_subject(tmp_path):
    store = _multi_sequence(tmp_path)
    res = run_fit(store, "deep", cv=5, fuse="concat", bootstrap=0)
    assert res.n_dev == 40 and res.n_features == 8 and res.cv.level == "subject (concatenated sequences)"


def test_fusion_needs_sequences(grouped_store):
    with pytest.raises(FitError, match="--fuse needs a 'sequence' column"):
        run_fit(grouped_store, "deep", fuse="mean")


def test_saved_model_reproduces_the_test_predictions(tmp_path):
    from featx.evaluate.models.saved import load_model

    X, labels, subj = _cohort()
    splits = np.where(np.arange(120) >= 90, "test", "train")
    store = make_store(
        tmp_path / "s.h5",
        "rad",
        X,
        labels,
        subjects=subj,
        splits=splits,
        kind="radiomics",
        feature_names=[f"x{i}" for i in range(6)],
    )
    res = run_fit(store, "rad", head="svm-rbf", cv=5, out=tmp_path / "o", save=tmp_path / "m", bootstrap=0)
    assert (
        res.saved_model.endswith("m.skops") and json.loads((tmp_path / "o" / "results.json").read_text())["saved_model"]
    )
    model = load_model(res.saved_model)
    assert model.meta["feature_names"] == [f"x{i}" for i in range(6)] and model.meta["classes"] == [
        "benign",
        "malignant",
    ]
    with open_store(store) as st:
        fs = st.load("rad")
    test = fs.subset(fs.splits == "test")
    perm = [5, 4, 3, 2, 1, 0]  # columns are selected by name, not position
    shuffled = type(test)(
        test.name,
        test.X[:, perm],
        test.ids,
        test.labels,
        test.subjects,
        test.splits,
        test.sequences,
        test.provenance,
        [f"x{i}" for i in perm],
    )
    pred = model.predict(shuffled)
    with open(tmp_path / "o" / "test_predictions.csv") as fh:
        want = {r["id"]: float(r["p_malignant"]) for r in csv.DictReader(fh)}
    got = dict(zip(pred.ids, pred.proba[:, 1]))
    assert set(got) == set(want) and max(abs(got[k] - want[k]) for k in want) < 2e-6
    assert len(pred.subject) == 10  # 3 images per subject -> per-subject mean too


def test_model_with_an_untrusted_type_is_refused(tmp_path):
    from fractions import Fraction

    import skops.io as sio

    from featx.errors import FeatxError
    from featx.evaluate.models.saved import load_model

    sio.dump({"meta_json": "{}", "models": {"x": Fraction(1, 3)}}, tmp_path / "evil.skops")
    with pytest.raises(FeatxError, match=r"contains types featx does not load \(fractions.Fraction\)"):
        load_model(tmp_path / "evil.skops")


def test_cli_fit_options_and_refusals(tmp_path):
    from helpers import assert_one_line_error, assert_usage_error, featx

    X, labels, subj = _cohort()
    splits = np.where(np.arange(120) < 30, "test", "train")
    store = make_store(tmp_path / "s.h5", "deep", X, labels, subjects=subj, splits=splits)
    proc = featx(
        "fit",
        "-s",
        store,
        "-f",
        "deep",
        "--head",
        "lda",
        "--cv",
        "4",
        "--repeats",
        "2",
        "--pca",
        "3",
        "--bootstrap",
        "200",
        "--positive",
        "malignant",
        "--out",
        tmp_path / "o",
        "--save",
        tmp_path / "m.skops",
    )
    assert proc.returncode == 0, proc.stderr
    assert "4-fold StratifiedGroupKFold x 2 repeats, grouped by subject, seed 0" in proc.stdout
    assert "subject level (30 subjects)" in proc.stdout and f"model: {tmp_path / 'm.skops'}" in proc.stdout
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["head"]["pca"] == 3 and res["protocol"]["n_boot"] == 200 and res["n_test"] == 30
    splits[31] = "test"  # subject p010 now has rows on both sides
    leaky = make_store(tmp_path / "l.h5", "deep", X, labels, subjects=subj, splits=splits)
    assert_one_line_error(featx("fit", "-s", leaky, "-f", "deep"), "Subject 'p010' has rows in the 'test' split")
    assert_usage_error(
        featx("fit", "-s", store, "-f", "deep", "--fuse", "avg"),
        "'--fuse'",
        "unknown value 'avg'",
        "vote, mean, concat",
    )
    assert_one_line_error(
        featx("fit", "-s", store, "-f", "deep", "--split", "fixed", "--test-size", "0.3"), "already marks 'test' rows"
    )
    assert_one_line_error(
        featx("fit", "-s", store, "-f", "deep", "--folds", tmp_path / "nope.json"), "Cannot read folds from"
    )


def test_fusion_refuses_a_subject_with_two_labels(tmp_path):
    store = _multi_sequence(tmp_path)

    with open_store(store) as st:
        fs = st.load("deep")
    labels = fs.labels.copy()
    labels[0] = "b" if labels[0] == "a" else "a"  # p00's first image relabelled
    bad = make_store(
        tmp_path / "bad.h5",
        "deep",
        fs.X,
        list(labels),
        subjects=list(fs.subjects),
        sequences=list(fs.sequences),
        ids=list(fs.ids),
    )
    with pytest.raises(FitError, match=r"subject\(s\) p00 have rows with different labels"):
        run_fit(bad, "deep", fuse="vote")


def test_pca_larger_than_a_training_set_allows_is_refused_before_fitting(grouped_store):
    with pytest.raises(
        FitError,
        match=r"--pca 7: the smallest training set has 96 samples x 6 features, so PCA can "
        r"give at most 6 components",
    ):
        run_fit(grouped_store, "deep", cv=5, pca=7)
    with pytest.raises(FitError, match=r"--pca 80: the smallest training set has 76 samples"):  # 96 - 96/5 (inner)
        run_bench(grouped_store, ["deep"], ["logreg"], cv=5, pca=80, tune=True)


def test_saved_fused_model_reproduces_the_fused_test_predictions(tmp_path):
    from featx.evaluate.models.saved import load_model

    store = _multi_sequence(tmp_path, test_subjects=10)
    res = run_fit(store, "deep", cv=5, fuse="mean", out=tmp_path / "o", save=tmp_path / "m.skops", bootstrap=0)
    assert res.n_test == 40 and json.loads((tmp_path / "o" / "results.json").read_text())["saved_model"]
    with open_store(store) as st:
        fs = st.load("deep")
    pred = load_model(res.saved_model).predict(fs.subset(fs.splits == "test"))
    with open(tmp_path / "o" / "test_predictions_fused.csv") as fh:
        want = {r["subject"]: float(r["p_b"]) for r in csv.DictReader(fh)}
    got = dict(zip(pred.subject, pred.subject_proba[:, 1]))
    assert set(got) == set(want) == {f"p{i:02d}" for i in range(10)}
    assert max(abs(got[k] - want[k]) for k in want) < 2e-6
