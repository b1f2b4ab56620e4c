"""Every registered head honours the scikit-learn estimator contract."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimators_pickle, estimator_checks_generator

from featx.errors import ConfigError
from featx.evaluate.heads import build_head, get_head, list_heads

NAMES = [h.name for h in list_heads()]
#: only to keep the ~55 checks fast: the random forest is the same code with fewer trees
FAST = {"rf": {"clf__n_estimators": 20}, "abmil": {"epochs": 40}}
#: scikit-learn's own SVC fails this check (libsvm needs writable arrays after a read-only memmap load);
#: test_svc_pickle_failure_is_upstream proves it is upstream, so a fix there shows up here
SVC_PICKLE = {"check_estimators_pickle": "sklearn.svm.SVC itself fails it (read-only memmap into libsvm)"}


def _heads():
    for name in NAMES:
        est, _ = build_head(name, seed=0)
        yield name, est.set_params(**FAST.get(name, {}))


def test_all_nine_heads_registered():
    assert set(NAMES) == {"logreg", "svm-linear", "svm-rbf", "rf", "xgb", "knn", "mlp", "lda", "abmil"}


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


@pytest.mark.parametrize("name", NAMES)
def test_grid_names_are_parameters(name):
    est, grid = build_head(name)
    params = est.get_params()
    assert grid and all(k in params for k in grid), f"{name}: grid keys {list(grid)} not in the estimator"


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
