import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from featx.evaluate.protocol.folds import Folds
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.metrics import auc_ci, classification_metrics, delong_auc
from featx.evaluate.statistics.resampling import Resampling
from featx.evaluate.statistics.scoring import evaluate


def _delong_bruteforce(y, s):
    """DeLong et al. (1988) written directly from the definition, O(m*n)."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return auc, np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg)


def test_delong_matches_definition_and_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(y * 0.8 + rng.standard_normal(300), 1)  # rounding creates ties
    auc, var = delong_auc(y, s)
    ref_auc, ref_var = _delong_bruteforce(y, s)
    assert np.isclose(auc, roc_auc_score(y, s)) and np.isclose(auc, ref_auc)
    assert np.isclose(var, ref_var, rtol=1e-10)
    a, lo, hi = auc_ci(y, s)
    assert np.isclose(hi - lo, 2 * 1.959963984540054 * np.sqrt(var))


def test_binary_metrics_from_known_confusion():
    # 4 positives (class "m"), 6 negatives: TP=3, FN=1, TN=5, FP=1
    classes = ["b", "m"]
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p_m = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.3, 0.2, 0.4])
    m = classification_metrics(y, np.c_[1 - p_m, p_m], classes, positive="m")
    assert m["confusion_matrix"] == [[5, 1], [1, 3]]
    assert (m["sensitivity"], m["specificity"], m["precision"]) == (0.75, 5 / 6, 0.75)
    assert np.isclose(m["f1"], 0.75) and m["accuracy"] == 0.8 and m["positive"] == "m"
    assert np.isclose(m["auc"], roc_auc_score(y, p_m))
    # choosing the other positive class swaps sensitivity and specificity, AUC unchanged
    m2 = classification_metrics(y, np.c_[1 - p_m, p_m], classes, positive="b")
    assert (m2["sensitivity"], m2["specificity"]) == (m["specificity"], m["sensitivity"])
    assert np.isclose(m2["auc"], m["auc"])


def test_multiclass_macro_auc():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    proba = rng.dirichlet([1, 1, 1], 60)
    proba[np.arange(60), y] += 0.5
    proba /= proba.sum(1, keepdims=True)
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert np.isclose(m["auc"], roc_auc_score(y, proba, multi_class="ovr"))
    assert set(m["per_class"]) == {"a", "b", "c"} and sum(v["support"] for v in m["per_class"].values()) == m["n"]


def test_per_fold_mean_sd():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    folds = Folds(np.array([[0, 0, 1, 1]]), 2, 0, "x", False)
    ev = evaluate(Task("classification", y, ("a", "b"), folds=folds), proba[None], Resampling(0))
    acc = ev.per_fold["accuracy"]
    assert acc.values == (1.0, 0.0) and acc.mean == 0.5 and ev.per_repeat is None


def _asah():
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "data" / "delong_asah.json").read_text())


def test_delong_matches_published_proc_example():
    """pROC's worked example on aSAH: AUCs 0.7314 / 0.8237, CI 0.6301-0.8326, Z = -2.209, p = 0.02718."""
    from featx.evaluate.statistics.metrics import delong_paired

    d = _asah()
    y, pub = np.array(d["outcome_poor"]), d["published"]
    auc, lo, hi = auc_ci(y, d["s100b"])
    assert round(auc, 4) == pub["auc_s100b"] and [round(lo, 4), round(hi, 4)] == pub["ci_s100b"]
    t = delong_paired(y, d["s100b"], d["wfns"])
    assert round(t["auc_b"], 4) == pub["auc_wfns"]
    assert round(t["z"], 3) == pub["z"] and round(t["p"], 5) == pub["p"]
    swapped = delong_paired(y, d["wfns"], d["s100b"])
    assert np.isclose(swapped["z"], -t["z"]) and np.isclose(swapped["p"], t["p"])


def test_delong_paired_matches_bruteforce_covariance():
    from featx.evaluate.statistics.metrics import delong_paired

    rng = np.random.default_rng(3)
    y = (rng.random(120) < 0.4).astype(int)
    a = y + rng.standard_normal(120)
    b = 0.5 * a + rng.standard_normal(120)
    pos, neg = y == 1, y == 0

    def comps(s):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        return psi.mean(), psi.mean(1), psi.mean(0)

    (ta, xa, ya), (tb, xb, yb) = comps(a), comps(b)
    var = (np.var(xa - xb, ddof=1) / pos.sum()) + (np.var(ya - yb, ddof=1) / neg.sum())
    t = delong_paired(y, a, b)
    assert np.isclose(t["diff"], ta - tb) and np.isclose(t["z"], (ta - tb) / np.sqrt(var))


def test_corrected_ttest_formula_and_plain_limit():
    from scipy.stats import ttest_1samp

    from featx.evaluate.statistics.metrics import corrected_ttest

    d = np.array([0.02, 0.05, -0.01, 0.03, 0.04, 0.00, 0.06, 0.02, 0.01, 0.03])
    r = corrected_ttest(d, n_train=90, n_test=10)
    se = np.sqrt((1 / 10 + 10 / 90) * d.var(ddof=1))
    assert np.isclose(r["t"], d.mean() / se) and r["df"] == 9
    plain = ttest_1samp(d, 0.0)
    assert np.isclose(corrected_ttest(d, n_train=1e12, n_test=0)["p"], plain.pvalue)  # no overlap: plain t-test
    assert r["p"] > plain.pvalue  # the correction is more conservative


def test_bootstrap_by_subject_equals_bootstrap_of_one_row_per_subject():
    """Five identical slices per patient carry one patient's information: resampling subjects says so."""
    from featx.evaluate.statistics.resampling import bootstrap

    rng = np.random.default_rng(0)
    y = (rng.random(80) < 0.5).astype(int)
    p1 = np.clip(0.5 + 0.3 * (2 * y - 1) + 0.3 * rng.standard_normal(80), 0, 1)
    proba = np.c_[1 - p1, p1]
    boot = Resampling(300, seed=1)
    one = bootstrap(Task("classification", y, ("a", "b")), proba, boot)
    five = bootstrap(
        Task("classification", np.repeat(y, 5), ("a", "b"), groups=np.repeat(np.arange(80), 5)),
        np.repeat(proba, 5, axis=0),
        boot,
    )
    assert five["unit"] == "subject" and one["unit"] == "sample"
    for key in ("auc", "accuracy", "sensitivity", "f1"):
        assert np.allclose(one["ci"][key], five["ci"][key]), key
    assert np.allclose(one["roc"]["lo"], five["roc"]["lo"])
    naive = bootstrap(Task("classification", np.repeat(y, 5), ("a", "b")), np.repeat(proba, 5, axis=0), boot)
    width = lambda b: b["ci"]["auc"][1] - b["ci"]["auc"][0]  # noqa: E731
    assert width(naive) < 0.6 * width(five)  # resampling slices would claim more certainty than 80 patients give


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap as scipy_bootstrap

    from featx.evaluate.statistics.resampling import bootstrap

    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.4).astype(int)
    p1 = np.clip(0.4 + 0.25 * (2 * y - 1) + 0.3 * rng.standard_normal(200), 0, 1)
    ours = bootstrap(Task("classification", y, ("n", "p")), np.c_[1 - p1, p1], Resampling(4000, 0))["ci"]["accuracy"]
    correct = ((p1 > 0.5) == (y == 1)).astype(float)
    ref = scipy_bootstrap((correct,), np.mean, n_resamples=4000, method="percentile", rng=0).confidence_interval
    assert np.allclose(ours, [ref.low, ref.high], atol=0.01)


def test_bootstrap_multiclass_and_reproducible():
    from featx.evaluate.statistics.resampling import bootstrap

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    proba = rng.dirichlet([1, 1, 1], 60)
    proba[np.arange(60), y] += 0.6
    proba /= proba.sum(1, keepdims=True)
    task = Task("classification", y, ("x", "y", "z"))
    a = bootstrap(task, proba, Resampling(100, seed=2))
    assert a == bootstrap(task, proba, Resampling(100, seed=2)) and "roc" not in a
    lo, hi = a["ci"]["auc"]
    assert lo < classification_metrics(y, proba, ["x", "y", "z"])["auc"] < hi


def test_weighted_bootstrap_rows_equal_scikit_learn_on_the_duplicated_samples():
    """A resample as weights (how often each sample was drawn) gives the metrics of the resample itself."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        brier_score_loss,
        f1_score,
        precision_score,
        roc_auc_score,
        roc_curve,
    )

    from featx.evaluate.statistics.resampling import ROC_GRID, weighted_binary

    rng = np.random.default_rng(5)
    n = 300
    t = rng.random(n) < 0.4
    score = np.round(rng.random(n) * 0.6 + 0.3 * t, 2)  # rounded: many ties
    pred = score > 0.5
    draws = rng.integers(0, n, (20, n))
    W = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(float)
    stats, curves = weighted_binary(W, t, score, pred)
    for b, d in enumerate(draws):
        tt, ss, pp = t[d], score[d], pred[d]
        want = [
            roc_auc_score(tt, ss),
            (tt == pp).mean(),
            balanced_accuracy_score(tt, pp),
            pp[tt].mean(),
            (~pp[~tt]).mean(),
            precision_score(tt, pp),
            f1_score(tt, pp),
            brier_score_loss(tt, ss),
        ]
        np.testing.assert_allclose(stats[b], want, rtol=1e-12, atol=1e-12)
        fpr, tpr, _ = roc_curve(tt, ss)
        np.testing.assert_allclose(curves[b], np.interp(ROC_GRID, fpr, tpr), atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_summary_metrics_are_scikit_learns(n_classes):
    """Derived from one confusion pass, they equal scikit-learn's own functions (absent predicted classes too)."""
    import warnings

    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 80)
    proba = rng.dirichlet(np.ones(n_classes), 80)
    proba[y == 0, 0] += 0.3
    proba /= proba.sum(axis=1, keepdims=True)
    classes = [f"c{i}" for i in range(n_classes)]
    m = classification_metrics(y, proba, classes)
    pred = proba.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
        avg = (
            dict(average="binary", pos_label=1)
            if n_classes == 2
            else dict(average="macro", labels=list(range(n_classes)))
        )
        assert m["sensitivity"] == pytest.approx(recall_score(y, pred, zero_division=0, **avg))
        assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0, **avg))
        assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0, **avg))
        if n_classes == 2:
            assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred, zero_division=0))


def test_weighted_multiclass_rows_equal_classification_metrics_on_the_duplicated_samples():
    from sklearn.metrics import roc_auc_score

    from featx.evaluate.statistics.resampling import BOOT_KEYS, weighted_multiclass

    rng = np.random.default_rng(7)
    n, classes = 90, ["a", "b", "c", "d"]
    y = rng.integers(0, 4, n)
    proba = rng.dirichlet(np.ones(4), n)
    proba[np.arange(n), y] += rng.random(n) * 0.5
    proba /= proba.sum(1, keepdims=True)
    draws = rng.integers(0, n, (30, n))
    draws[0, :] = np.flatnonzero(y != 3)[0]  # a resample with one sample only: several metrics undefined
    W = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(float)
    stats = weighted_multiclass(W, y, proba)
    for b, d in enumerate(draws):
        m = classification_metrics(y[d], proba[d], classes)
        want = [np.nan if m.get(k) is None else m[k] for k in (*BOOT_KEYS, "weighted_auc")]
        np.testing.assert_allclose(stats[b], want, rtol=1e-12, atol=1e-12, err_msg=f"resample {b}")
        if m.get("weighted_auc") is not None:  # scikit-learn's, on the resample itself
            want = roc_auc_score(y[d], proba[d], multi_class="ovr", average="weighted")
            assert stats[b, -1] == pytest.approx(want, abs=1e-12)
