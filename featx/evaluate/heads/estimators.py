"""The estimators behind every head, each honouring the scikit-learn contract.

:class:`Head` is standardisation -> optional PCA -> a classifier as one estimator, built from clones
at fit time (parameters never change by fitting); :class:`XGBHead` puts XGBoost behind the same
contract. ``tests/test_heads.py`` runs scikit-learn's estimator checks over every registered head.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class Steps(BaseEstimator):
    """Optional standardisation -> optional PCA (per block of an early-fusion set) -> a model: what every head of a
    row shares (:class:`Head`, :class:`RegressionHead`, :class:`~featx.evaluate.heads.survival.SurvivalHead`).

    ``fit`` builds ``pipeline_`` from clones, so the parameters are never changed by fitting (a bare ``Pipeline``
    fits its steps in place) and tuning grids address the model as ``clf__<param>``.

    Parameters
    ----------
    clf : estimator
        The unfitted model (a classifier with ``predict_proba``, a regressor, a survival model).
    scale : bool
        Standardise each feature (mean 0, sd 1, from the training data) first.
    pca : int, optional
        Number of principal components kept (after scaling).
    random_state : int
        Seed of the PCA.
    blocks : tuple of int, optional
        Widths of the column blocks of an early-fusion feature set (``A+B``), in order: each block is
        standardised, reduced to ``min(pca, its width)`` components, and weighted to unit total variance
        (:class:`BlockWeight`) on its own; tree heads (no scaling) only get the per-block PCA.
    """

    def __init__(self, clf=None, scale=True, pca=None, random_state=0, blocks=None):
        self.clf = clf
        self.scale = scale
        self.pca = pca
        self.random_state = random_state
        self.blocks = blocks

    def _pipeline(self, X, default) -> Pipeline:
        """The unfitted pipeline for training rows ``X``: the steps before the model (:meth:`_prepare`, per block of
        an early-fusion set), then a clone of ``clf`` (``default`` when None), adapted to a small training set."""
        clf = clone(self.clf) if self.clf is not None else default
        params = clf.get_params()
        if params.get("n_neighbors", 0) > len(X):  # k-NN on a training set smaller than k
            clf.set_params(n_neighbors=len(X))
        if params.get("early_stopping") and len(X) < 100:  # a 10% validation split of < 10 samples is noise
            clf.set_params(early_stopping=False)
        if self.blocks:
            if sum(self.blocks) != X.shape[1]:
                raise ValueError(f"blocks {tuple(self.blocks)} cover {sum(self.blocks)} columns, X has {X.shape[1]}")
            edges = np.cumsum((0, *self.blocks))
            per_block = [
                (f"block{i}", self._prepare(X.shape[0], int(w), cap=True) or "passthrough", np.arange(a, b))
                for i, (w, a, b) in enumerate(zip(self.blocks, edges[:-1], edges[1:]))
            ]
            steps = [("blocks", ColumnTransformer(per_block))]
        else:
            steps = self._prepare(*X.shape)
        return Pipeline(steps + [("clf", clf)])

    def _prepare(self, n: int, d: int, cap: bool = False):
        """The steps before the classifier for ``n`` samples x ``d`` features (``cap``: one block of several, PCA
        to at most ``d`` and weighted like every other block)."""
        steps = [("scale", StandardScaler())] if self.scale else []
        if self.pca is not None:
            k = min(self.pca, d) if cap else self.pca
            if k > min(n, d):
                raise ValueError(
                    f"pca={self.pca} components asked for, but a training set of {n} samples "
                    f"x {d} features has at most {min(n, d)}; choose a smaller --pca"
                )
            steps.append(("pca", PCA(n_components=k, random_state=self.random_state)))
        if cap and self.scale:  # a block of an early-fusion set: unit total variance, whatever its width
            steps.append(("weight", BlockWeight(target=sum(self.blocks) / len(self.blocks))))
        return Pipeline(steps) if cap and steps else steps


class Head(ClassifierMixin, Steps):
    """Optional standardisation -> optional PCA -> classifier, as one scikit-learn estimator (:class:`Steps`'
    parameters; ``clf`` a classifier with ``predict_proba``)."""

    def fit(self, X, y):
        """Fit on features ``X`` (n, d) and labels ``y``."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"a classifier needs samples of at least 2 classes; only one class is present: {self.classes_[0]!r}"
            )
        with warnings.catch_warnings():
            # SVC(probability=True) is Platt scaling on libsvm's internal 5-fold CV, as published with the
            # method; scikit-learn 1.9 deprecates the flag (removal in 1.11, hence the pin below 1.11)
            warnings.filterwarnings(
                "ignore", message="The `probability` parameter was deprecated", category=FutureWarning
            )
            self.pipeline_ = self._pipeline(X, LogisticRegression()).fit(X, y)
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


class RegressionHead(RegressorMixin, Steps):
    """Optional standardisation -> optional PCA -> a regressor, as one scikit-learn estimator: :class:`Head`'s steps
    (the same parameters, ``clf`` the regressor, ``blocks`` of an early-fusion set) for a continuous target."""

    def fit(self, X, y):
        """Fit on features ``X`` (n, d) and values ``y``."""
        X, y = validate_data(self, X, y, y_numeric=True)
        self.pipeline_ = self._pipeline(X, Ridge()).fit(X, y)
        return self

    def predict(self, X):
        """The predicted value of each row."""
        check_is_fitted(self)
        return self.pipeline_.predict(validate_data(self, X, reset=False, copy=True))


class BlockWeight(TransformerMixin, BaseEstimator):
    """Scale a block of columns to the total variance ``target`` (on the training data): after
    standardisation every block of an early-fusion set weighs the same in a penalised or distance-based
    head, 102 radiomics columns as much as 1,280 CNN columns (the block scaling of multiblock methods).
    The head gives each block the mean block width as target, so the whole set keeps the total variance
    of its standardised columns and a head's penalty means what it means on one feature set."""

    def __init__(self, target=1.0):
        self.target = target

    def fit(self, X, y=None):
        X = validate_data(self, X)
        total = float(np.var(X, axis=0).sum())
        self.scale_ = np.sqrt(total / self.target) if total > 0 else 1.0
        return self

    def transform(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False) / self.scale_


class XGBHead(ClassifierMixin, BaseEstimator):
    """``xgboost.XGBClassifier`` behind the scikit-learn classifier contract.

    XGBoost wants labels 0..C-1 and changes its ``objective`` parameter during fit;
    this wrapper encodes any labels, keeps its parameters untouched and holds the
    fitted booster in ``model_``.
    """

    def __init__(
        self,
        n_estimators=300,
        max_depth=4,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.5,
        n_jobs=None,
        random_state=0,
    ):
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
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            tree_method="hist",
            n_jobs=self.n_jobs,
            random_state=self.random_state,
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


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


class CosineKNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest neighbours by cosine similarity with temperature-weighted votes: DINOv2's k-NN evaluation
    (Oquab et al. 2023, after Wu et al. 2018).

    Rows are L2-normalised; each of a query's ``n_neighbors`` most similar training rows votes for its class
    with weight ``exp(similarity / temperature)``; the class probabilities are the normalised vote totals.

    Parameters
    ----------
    n_neighbors : int
        k (20 in DINOv2's evaluation; fewer training rows than k: all of them).
    temperature : float
        Vote temperature (0.07 in DINOv2's evaluation): smaller gives the nearest neighbours more say.
    """

    def __init__(self, n_neighbors=20, temperature=0.07):
        self.n_neighbors = n_neighbors
        self.temperature = temperature

    def fit(self, X, y):
        """Keep the normalised training rows and their classes."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        if self.n_neighbors < 1 or self.temperature <= 0:
            raise ValueError(
                f"n_neighbors must be >= 1 and temperature > 0, got {self.n_neighbors}, {self.temperature}"
            )
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.X_ = _unit_rows(np.asarray(X, dtype=np.float64))
        return self

    def predict_proba(self, X):
        """Normalised temperature-weighted votes of the nearest training rows, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = _unit_rows(np.asarray(validate_data(self, X, reset=False), dtype=np.float64))
        k = min(self.n_neighbors, len(self.X_))
        out = np.empty((len(X), len(self.classes_)))
        for a in range(0, len(X), 1024):  # a block of queries at a time: memory stays 1024 x n_train
            sim = X[a : a + 1024] @ self.X_.T
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sim, top, axis=1) / self.temperature
            w = np.exp(s - s.max(axis=1, keepdims=True))
            votes = np.zeros((len(sim), len(self.classes_)))
            np.add.at(votes, (np.repeat(np.arange(len(sim)), k), self.y_[top].ravel()), w.ravel())
            out[a : a + 1024] = votes / votes.sum(axis=1, keepdims=True)
        return out

    def predict(self, X):
        """The class with the largest vote."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class SimpleShotClassifier(ClassifierMixin, BaseEstimator):
    """SimpleShot (Wang et al. 2019): nearest class centroid on centred, L2-normalised features (CL2N).

    The training mean is subtracted, rows are L2-normalised, and each class is the mean of its normalised rows;
    a query's class probabilities are a softmax of its negative squared distances to the centroids divided by
    ``temperature`` (the nearest centroid is the prediction whatever the temperature).
    """

    def __init__(self, temperature=0.1):
        self.temperature = temperature

    def fit(self, X, y):
        """The training mean and the class centroids of the centred, normalised rows."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        X = np.asarray(X, dtype=np.float64)
        self.classes_, idx = np.unique(y, return_inverse=True)
        self.mean_ = X.mean(axis=0)
        Z = _unit_rows(X - self.mean_)
        self.centroids_ = np.stack([Z[idx == c].mean(axis=0) for c in range(len(self.classes_))])
        return self

    def predict_proba(self, X):
        """Softmax of minus the squared distances to the centroids over ``temperature``."""
        check_is_fitted(self)
        Z = _unit_rows(np.asarray(validate_data(self, X, reset=False), dtype=np.float64) - self.mean_)
        c = self.centroids_
        d2 = (Z**2).sum(axis=1)[:, None] - 2 * Z @ c.T + (c**2).sum(axis=1)[None, :]
        return _softmax(-d2 / self.temperature)

    def predict(self, X):
        """The class of the nearest centroid."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
