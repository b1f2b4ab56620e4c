import numpy as np
from sklearn.metrics import roc_auc_score

from featx.metrics import auc_ci, classification_metrics, delong_auc, per_fold


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
    assert set(m["recall_per_class"]) == {"a", "b", "c"}


def test_per_fold_mean_sd():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    pf = per_fold(y, proba, np.array([0, 0, 1, 1]), ["a", "b"])
    assert pf["accuracy"]["values"] == [1.0, 0.0] and pf["accuracy"]["mean"] == 0.5
