"""Head registry: name -> unfitted scikit-learn estimator (+ default tuning grid).

Heads follow the scikit-learn contract (no work in ``__init__``); each factory
returns a fresh estimator, a ``Pipeline`` with scaling where the model needs it
(linear models, SVMs, k-NN, MLP, LDA; not the tree ensembles). ``build_head``
adds an optional PCA step. ``tests/test_heads.py`` runs scikit-learn's
``parametrize_with_checks`` over every registered head.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.errors import FitError


@dataclass(frozen=True)
class HeadSpec:
    """A registered head.

    Attributes
    ----------
    name : str
    description : str
    factory : Callable[[int], estimator]
        ``factory(seed)`` returns a new unfitted estimator.
    grid : dict
        Default tuning grid (``--tune``) in ``Pipeline`` parameter names.
    """

    name: str
    description: str
    factory: Callable
    grid: dict = field(default_factory=dict)


_HEADS: dict[str, HeadSpec] = {}


def register_head(name: str, description: str, grid: dict | None = None):
    """Decorator registering ``factory(seed) -> estimator`` under ``name``."""

    def deco(factory):
        if name in _HEADS:
            raise ValueError(f"head {name!r} registered twice")
        _HEADS[name] = HeadSpec(name, description, factory, grid or {})
        return factory

    return deco


def get_head(name: str) -> HeadSpec:
    """The head registered as ``name``; a FitError lists the known ones."""
    if name not in _HEADS:
        close = difflib.get_close_matches(name, list(_HEADS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FitError(f"Unknown head {name!r}.{hint} Known heads: {', '.join(sorted(_HEADS))}.")
    return _HEADS[name]


def list_heads() -> list[HeadSpec]:
    """All registered heads, sorted by name."""
    return [_HEADS[k] for k in sorted(_HEADS)]


def build_head(name: str, seed: int = 0, pca: int | None = None):
    """A fresh :class:`Head` for ``name``; with ``pca``, a PCA to ``pca`` components goes before the classifier.

    Returns
    -------
    estimator, grid : Head, dict
        The estimator and its default tuning grid.
    """
    spec = get_head(name)
    if pca is not None and pca < 1:
        raise FitError(f"--pca must be a positive number of components, got {pca}.")
    est = spec.factory(seed)
    if pca is not None:
        est.set_params(pca=pca)
    return est, dict(spec.grid)


def check_pca(pca: int | None, folds, n_features: int, inner_k: int | None = None) -> None:
    """FitError, before any fitting, when ``pca`` exceeds what the smallest training set (of ``folds``, shrunk
    by an inner ``inner_k``-fold CV when tuning) and ``n_features`` allow."""
    if pca is None:
        return
    smallest = min(len(train) for _, _, train, _ in folds.split())
    if inner_k:
        smallest -= -(-smallest // inner_k)  # the inner CV holds out one of inner_k parts
    if pca > min(smallest, n_features):
        raise FitError(f"--pca {pca}: the smallest training set has {smallest} samples x {n_features} features, so "
                       f"PCA can give at most {min(smallest, n_features)} components; choose a smaller --pca.")


class Head(ClassifierMixin, BaseEstimator):
    """Optional standardisation -> optional PCA -> classifier, as one scikit-learn estimator.

    ``fit`` builds ``pipeline_`` from clones, so the parameters are never changed by
    fitting (a bare ``Pipeline`` fits its steps in place) and tuning grids address
    the classifier as ``clf__<param>``.

    Parameters
    ----------
    clf : classifier
        Unfitted scikit-learn classifier with ``predict_proba``.
    scale : bool
        Standardise each feature (mean 0, sd 1, from the training data) first.
    pca : int, optional
        Number of principal components kept (after scaling).
    random_state : int
        Seed of the PCA.
    """

    def __init__(self, clf=None, scale=True, pca=None, random_state=0):
        self.clf = clf
        self.scale = scale
        self.pca = pca
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on features ``X`` (n, d) and labels ``y``."""
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"a classifier needs samples of at least 2 classes; only one class is present: {self.classes_[0]!r}")
        clf = clone(self.clf) if self.clf is not None else LogisticRegression()
        params = clf.get_params()
        if params.get("n_neighbors", 0) > len(X):  # k-NN on a training set smaller than k
            clf.set_params(n_neighbors=len(X))
        if params.get("early_stopping") and len(X) < 100:  # a 10% validation split of < 10 samples is noise
            clf.set_params(early_stopping=False)
        steps = [("scale", StandardScaler())] if self.scale else []
        if self.pca is not None:
            from sklearn.decomposition import PCA

            if self.pca > min(X.shape):
                raise ValueError(f"pca={self.pca} components asked for, but a training set of {X.shape[0]} samples "
                                 f"x {X.shape[1]} features has at most {min(X.shape)}; choose a smaller --pca")
            steps.append(("pca", PCA(n_components=self.pca, random_state=self.random_state)))
        with warnings.catch_warnings():
            # SVC(probability=True) is Platt scaling on libsvm's internal 5-fold CV, as published with the
            # method; scikit-learn 1.9 deprecates the flag (removal in 1.11, hence the pin below 1.11)
            warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)
            self.pipeline_ = Pipeline(steps + [("clf", clf)]).fit(X, y)
        return self

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, copy=True)  # libsvm refuses read-only buffers
        return self.pipeline_.predict_proba(X)

    def predict(self, X):
        """Most probable class (consistent with ``predict_proba``)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@register_head(
    "logreg",
    "standardise, then L2 logistic regression (C=1e-2: strong shrinkage suits 500-4000-d embeddings)",
    grid={"clf__C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
)
def _logreg(seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return Head(random_state=seed, clf=LogisticRegression(C=1e-2, max_iter=5000, random_state=seed))


@register_head(
    "svm-linear",
    "standardise, then linear SVM (C=1e-3), probabilities by Platt scaling",
    grid={"clf__C": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]},
)
def _svm_linear(seed: int = 0):
    from sklearn.svm import SVC

    return Head(random_state=seed, clf=SVC(kernel="linear", C=1e-3, probability=True, random_state=seed))


@register_head(
    "svm-rbf",
    "standardise, then RBF-kernel SVM (C=1, gamma='scale'), probabilities by Platt scaling",
    grid={"clf__C": [0.1, 1.0, 10.0, 100.0], "clf__gamma": ["scale", 1e-4, 1e-3]},
)
def _svm_rbf(seed: int = 0):
    from sklearn.svm import SVC

    return Head(random_state=seed, clf=SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=seed))


@register_head(
    "rf",
    "random forest (500 trees, sqrt features per split; no scaling needed)",
    grid={"clf__max_features": ["sqrt", 0.05, 0.2], "clf__min_samples_leaf": [1, 3, 10]},
)
def _rf(seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    return Head(RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=1), scale=False, random_state=seed)


@register_head(
    "xgb",
    "XGBoost (hist; 300 rounds, depth 4, learning rate 0.05, row/column subsampling)",
    grid={"clf__max_depth": [2, 4, 6], "clf__learning_rate": [0.03, 0.1]},
)
def _xgb(seed: int = 0):
    return Head(XGBHead(random_state=seed), scale=False, random_state=seed)


@register_head(
    "knn",
    "standardise, then k-nearest neighbours (k=15, distance-weighted)",
    grid={"clf__n_neighbors": [5, 15, 31], "clf__weights": ["uniform", "distance"]},
)
def _knn(seed: int = 0):
    from sklearn.neighbors import KNeighborsClassifier

    return Head(random_state=seed, clf=KNeighborsClassifier(n_neighbors=15, weights="distance"))


@register_head(
    "mlp",
    "standardise, then one hidden layer of 256 ReLUs (L2 1e-2, Adam, early stopping)",
    grid={"clf__alpha": [1e-4, 1e-2, 1.0], "clf__hidden_layer_sizes": [(128,), (256,)]},
)
def _mlp(seed: int = 0):
    from sklearn.neural_network import MLPClassifier

    return Head(random_state=seed, clf=MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-2, max_iter=500, early_stopping=True,
                                 n_iter_no_change=20, random_state=seed))


@register_head(
    "lda",
    "standardise, then linear discriminant analysis with Ledoit-Wolf shrinkage (suits more features than samples)",
    grid={"clf__shrinkage": ["auto", 0.1, 0.5, 0.9]},
)
def _lda(seed: int = 0):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return Head(random_state=seed, clf=LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))


class XGBHead(ClassifierMixin, BaseEstimator):
    """``xgboost.XGBClassifier`` behind the scikit-learn classifier contract.

    XGBoost wants labels 0..C-1 and changes its ``objective`` parameter during fit;
    this wrapper encodes any labels, keeps its parameters untouched and holds the
    fitted booster in ``model_``.
    """

    def __init__(self, n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8, colsample_bytree=0.5,
                 n_jobs=None, random_state=0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on features ``X`` (n, d) and labels ``y``."""
        from xgboost import XGBClassifier

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"XGBHead needs samples of at least 2 classes; got 1 class: {self.classes_[0]!r}")
        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree, tree_method="hist",
            n_jobs=self.n_jobs, random_state=self.random_state,
        ).fit(X, self._encoder.transform(y))
        return self

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.model_.predict_proba(X)

    def predict(self, X):
        """Most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
