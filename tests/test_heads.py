"""Every registered head honours the scikit-learn estimator contract."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimators_pickle, estimator_checks_generator

from featx.errors import ConfigError
from featx.evaluate.heads.registry import build_head, get_head, list_heads

SPECS = [(h.target, h.name) for h in list_heads()]
NAMES = [name for target, name in SPECS if target == "classification"]
#: only to keep the ~55 checks fast: the random forest is the same code with fewer trees
FAST = {"rf": {"clf__n_estimators": 20}, "abmil": {"epochs": 40}}
#: scikit-learn's own SVC fails this check (libsvm needs writable arrays after a read-only memmap load);
#: test_svc_pickle_failure_is_upstream proves it is upstream, so a fix there shows up here
SVC_PICKLE = {"check_estimators_pickle": "sklearn.svm.SVC itself fails it (read-only memmap into libsvm)"}


def _label(target: str, name: str) -> str:
    return name if target == "classification" else f"{target}:{name}"


def _heads():
    """Every head scikit-learn's checks apply to: classifiers and regressors (a survival head's target is a
    structured (event, time) array the checks cannot make: test_survival_heads_honour_the_contract)."""
    for target, name in SPECS:
        if target == "survival":
            continue
        est, _ = build_head(name, seed=0, target=target)
        yield _label(target, name), est.set_params(**FAST.get(name, {}))


def test_the_heads_of_each_target_are_registered():
    assert set(NAMES) == {"logreg", "svm-linear", "svm-rbf", "rf", "xgb", "knn", "mlp", "lda", "abmil", "simpleshot"}
    assert {name for target, name in SPECS if target == "regression"} == {"ridge", "svr", "rf", "xgb"}
    assert {name for target, name in SPECS if target == "survival"} == {"coxnet", "coxph", "rsf", "gbs"}


@pytest.mark.parametrize("name", ["coxnet", "coxph", "rsf", "gbs"])
def test_survival_heads_honour_the_contract(name):
    """What scikit-learn's checks ask of an estimator, on a survival target: nothing done in __init__, parameters
    never changed by fit, clones refit to the same predictions, a seed reproduces them, fitted attributes end in _."""
    pytest.importorskip("sksurv")
    from sklearn.base import clone

    from featx.evaluate.protocol.task import Task

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    time = rng.exponential(np.exp(-X[:, 0]))
    task = Task.survival(rng.random(80) < 0.7, time)
    est = build_head(name, seed=0, target="survival")[0].set_params(times=(0.2, 0.5), **FAST.get(name, {}))
    before = repr(est.get_params(deep=True))
    fitted = est.fit(X, task.y)
    assert repr(est.get_params(deep=True)) == before and not any(k.endswith("_") for k in vars(clone(est)))
    again = clone(est).fit(X, task.y)
    np.testing.assert_allclose(fitted.predict(X), again.predict(X))
    out = fitted.predict_outputs(X)
    assert out.shape == (80, 4) and (0 <= out[:, 2:]).all() and (out[:, 2:] <= 1).all()
    assert (out[:, 3] <= out[:, 2] + 1e-12).all()  # a survival curve never rises
    assert fitted.score(X, task.y) > 0.6 and fitted.cutoff_ == pytest.approx(np.median(fitted.predict(X)))


def test_a_head_of_another_target_is_refused_with_the_heads_of_this_one():
    with pytest.raises(
        ConfigError, match="'logreg' is not a regression head; --target regression takes rf, ridge, svr, xgb"
    ):
        get_head("logreg", "regression")


def _contract_checks():
    """scikit-learn's estimator checks for every head (those ``parametrize_with_checks`` runs), minus the
    array-API check: it only runs with SCIPY_ARRAY_API=1 (skipped otherwise) and featx feeds heads NumPy arrays.
    Only SVC's read-only-memmap pickle check is expected to fail, strictly (see SVC_PICKLE)."""
    for head, est in _heads():
        for e, check in estimator_checks_generator(est, legacy=True):
            name = getattr(check, "func", check).__name__
            if name == "check_array_api_input":
                continue
            readonly = getattr(check, "keywords", {}).get("readonly_memmap", False)
            marks = ()
            if type(getattr(est, "clf", None)).__name__ == "SVC" and name == "check_estimators_pickle" and readonly:
                marks = pytest.mark.xfail(strict=True, reason=SVC_PICKLE[name])
            yield pytest.param(e, check, marks=marks, id=f"{head}-{name}" + ("-readonly" if readonly else ""))


@pytest.mark.parametrize(("estimator", "check"), list(_contract_checks()))
def test_head_contract(estimator, check):
    check(estimator)


def test_svc_pickle_failure_is_upstream():
    from sklearn.svm import SVC

    with pytest.raises(ValueError, match="read-only"):
        check_estimators_pickle("SVC", SVC(probability=True), readonly_memmap=True)


@pytest.mark.parametrize(("target", "name"), SPECS, ids=[_label(*s) for s in SPECS])
def test_grid_names_are_parameters(target, name):
    est, grid = build_head(name, target=target)
    params = est.get_params()
    assert grid or name == "simpleshot", f"{name}: no tuning grid"  # SimpleShot has nothing to tune
    assert all(k in params for k in grid), f"{name}: grid keys {list(grid)} not in the estimator"


def test_pca_step_and_string_labels():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(60)
    X = rng.standard_normal((60, 30)) + 2 * z[:, None] * (np.arange(30) < 10)  # z is the first principal component
    y = np.where(z > 0, "tumour", "normal")
    est, _ = build_head("logreg", pca=5)
    est.fit(X, y)
    assert est.pipeline_.named_steps["pca"].n_components_ == 5
    assert list(est.classes_) == ["normal", "tumour"] and (est.predict(X) == y).mean() > 0.8
    with pytest.raises(ValueError, match="smaller --pca"):
        build_head("logreg", pca=100)[0].fit(X, y)
    with pytest.raises(ConfigError, match="pca: must be a positive number of components"):
        build_head("logreg", pca=0)


def test_unknown_head_suggests():
    with pytest.raises(ConfigError, match="head: unknown value 'svm_rbf'. Did you mean 'svm-rbf'?"):
        get_head("svm_rbf")


def _few_shot_data(seed=0, n=60, d=12, classes=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    y = np.array([classes[i % len(classes)] for i in range(n)])
    X = rng.normal(size=(n, d)) + 1.5 * np.eye(len(classes), d)[[classes.index(v) for v in y]]
    return X, y


def test_knn_is_dinov2s_cosine_vote_as_scikit_learn_computes_it():
    """Temperature-weighted votes of the k most cosine-similar rows, against KNeighborsClassifier with the same
    metric and weights exp(similarity / T)."""
    from sklearn.neighbors import KNeighborsClassifier

    from featx.evaluate.heads.estimators import CosineKNNClassifier

    X, y = _few_shot_data()
    Xq = np.random.default_rng(1).normal(size=(25, X.shape[1]))
    ours = CosineKNNClassifier(n_neighbors=7, temperature=0.07).fit(X, y)
    ref = KNeighborsClassifier(7, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / 0.07))
    np.testing.assert_allclose(ours.predict_proba(Xq), ref.fit(X, y).predict_proba(Xq), rtol=1e-6, atol=1e-9)
    assert list(ours.classes_) == ["a", "b", "c"]
    np.testing.assert_allclose(ours.predict_proba(3.0 * Xq), ours.predict_proba(Xq))  # cosine: the length is moot
    hot = CosineKNNClassifier(n_neighbors=7, temperature=100.0).fit(X, y).predict_proba(Xq)  # ~ an unweighted vote
    plain = KNeighborsClassifier(7, metric="cosine", algorithm="brute").fit(X, y).predict_proba(Xq)
    np.testing.assert_allclose(hot, plain, atol=0.02)


def test_simpleshot_is_the_nearest_centroid_of_centred_normalised_features():
    from sklearn.neighbors import NearestCentroid
    from sklearn.preprocessing import normalize

    from featx.evaluate.heads.estimators import SimpleShotClassifier

    X, y = _few_shot_data(n=45)
    Xq = np.random.default_rng(2).normal(size=(30, X.shape[1])) + 0.5
    ours = SimpleShotClassifier().fit(X, y)
    mean = X.mean(0)
    ref = NearestCentroid().fit(normalize(X - mean), y)  # the centroid of the normalised rows (SimpleShot, CL2N)
    assert (ours.predict(Xq) == ref.predict(normalize(Xq - mean))).all()
    p = ours.predict_proba(Xq)
    np.testing.assert_allclose(p.sum(1), 1.0)
    sharper = SimpleShotClassifier(temperature=0.01).fit(X, y).predict_proba(Xq)
    assert (sharper.argmax(1) == p.argmax(1)).all() and sharper.max(1).mean() > p.max(1).mean()


@pytest.mark.parametrize("name", ["knn", "simpleshot", "logreg"])
def test_few_shot_heads_learn_from_two_examples_per_class(name):
    """4 training rows (2 per class) of well-separated classes: the few-shot heads rank the held-out rows well."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = np.array(["no", "yes"] * 100)
    X = np.abs(rng.normal(size=(200, 64)))  # post-ReLU-like embeddings; the class moves 8 of 64 features
    X[y == "yes", :8] += 1.5
    train = np.r_[np.flatnonzero(y == "no")[:2], np.flatnonzero(y == "yes")[:2]]
    test = np.setdiff1d(np.arange(len(y)), train)
    est, _ = build_head(name, seed=0)
    auc = roc_auc_score(y[test] == "yes", est.fit(X[train], y[train]).predict_proba(X[test])[:, 1])
    assert auc > {"knn": 0.9, "simpleshot": 0.9, "logreg": 0.75}[name], (name, auc)  # measured 0.97+, 0.99+, 0.83+
