"""Head registry: name -> unfitted scikit-learn estimator (+ default tuning grid).

Heads follow the scikit-learn contract (no work in ``__init__``); each factory
returns a fresh estimator, a ``Pipeline`` with scaling where the model needs it
(linear models, SVMs, k-NN, MLP, LDA; not the tree ensembles). ``build_head``
adds an optional PCA step. ``tests/test_heads.py`` runs scikit-learn's
``parametrize_with_checks`` over every registered head.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from featx.config import Choice
from featx.errors import ConfigError, FitError
from featx.evaluate.heads.estimators import CosineKNNClassifier, Head, RegressionHead, SimpleShotClassifier, XGBHead
from featx.evaluate.heads.survival import CoxnetCV, SurvivalHead


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
    target : str
        What it predicts (a :data:`~featx.evaluate.protocol.target.TARGETS` kind): one name may be registered for
        several (``xgb``, ``rf``), a head each.
    """

    name: str
    description: str
    factory: Callable
    grid: dict = field(default_factory=dict)
    target: str = "classification"


_HEADS: dict[tuple[str, str], HeadSpec] = {}


def register_head(name: str, description: str, grid: dict | None = None, target: str = "classification"):
    """Decorator registering ``factory(seed) -> estimator`` under ``name`` for the ``target`` kind."""

    def deco(factory):
        if (target, name) in _HEADS:
            raise ValueError(f"head {name!r} registered twice for {target}")
        _HEADS[(target, name)] = HeadSpec(name, description, factory, grid or {}, target)
        return factory

    return deco


#: heads that predict a bag of rows (a subject's or a volume's slices): ``featx fit --head abmil --bag ...``
BAG_HEADS = ("abmil",)
#: The registered heads' names, of every target: the choices of every ``head`` setting
HEADS = Choice("head", lambda: sorted({name for _, name in _HEADS}))


def heads_for(target: str) -> list[str]:
    """The names of the heads registered for the ``target`` kind, sorted."""
    return sorted(name for t, name in _HEADS if t == target)


def get_head(name: str, target: str = "classification") -> HeadSpec:
    """The head registered as ``name`` for ``target``; a ConfigError names the closest and every registered one, or
    the heads of ``target`` when ``name`` is another target's."""
    HEADS.check(name)
    if (target, name) not in _HEADS:
        raise ConfigError(
            f"{name!r} is not a {target} head; --target {target} takes {', '.join(heads_for(target))}.", "head"
        )
    return _HEADS[(target, name)]


def list_heads(target: str | None = None) -> list[HeadSpec]:
    """The registered heads (of ``target``, or all), sorted by target and name."""
    return [_HEADS[k] for k in sorted(_HEADS) if target is None or k[0] == target]


def build_head(
    name: str,
    seed: int = 0,
    pca: int | None = None,
    blocks: tuple[int, ...] | None = None,
    target: str = "classification",
):
    """A fresh :class:`Head` for ``name``; with ``pca``, a PCA to ``pca`` components goes before the classifier.
    ``blocks``: the column widths of an early-fusion set, each standardised (and reduced) on its own.

    Returns
    -------
    estimator, grid : Head, dict
        The estimator and its default tuning grid.
    """
    spec = get_head(name, target)
    if target == "survival" and importlib.util.find_spec("sksurv") is None:
        raise FitError(
            "--target survival fits scikit-survival's models, which are not installed: pip install 'featx[survival]'."
        )
    if pca is not None and pca < 1:
        raise ConfigError(f"must be a positive number of components, got {pca}.", "pca")
    est = spec.factory(seed)
    if name in BAG_HEADS:  # its own standardisation and embedding: no PCA, no per-block weighting
        return est, dict(spec.grid)
    if pca is not None:
        est.set_params(pca=pca)
    if blocks:
        est.set_params(blocks=tuple(blocks))
    return est, dict(spec.grid)


def check_pca(pca: int | None, folds, n_features: int, inner_k: int | None = None, blocks=None) -> None:
    """FitError, before any fitting, when ``pca`` exceeds what the smallest training set (of ``folds``, shrunk
    by an inner ``inner_k``-fold CV when tuning) and ``n_features`` allow. With ``blocks`` (an early-fusion
    set), each block keeps at most its width, so only the widest block's components must fit."""
    if pca is None:
        return
    smallest = min(len(train) for _, _, train, _ in folds.split())
    if inner_k:
        smallest -= -(-smallest // inner_k)  # the inner CV holds out one of inner_k parts
    check_pca_rows(pca, smallest, n_features, blocks)


def check_pca_rows(pca: int | None, smallest: int, n_features: int, blocks=None, where: str = "") -> None:
    """:func:`check_pca` for a known smallest training set (``where``: which one, for the message)."""
    if pca is None:
        return
    if blocks:
        needed = max(min(pca, w) for w in blocks)
        if needed > smallest:
            raise FitError(
                f"--pca {pca}: the widest block keeps {needed} components, but the smallest training set{where} has "
                f"{smallest} samples; choose a smaller --pca."
            )
        return
    if pca > min(smallest, n_features):
        raise FitError(
            f"--pca {pca}: the smallest training set{where} has {smallest} samples x {n_features} features, so "
            f"PCA can give at most {min(smallest, n_features)} components; choose a smaller --pca."
        )


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
    "k-NN by cosine similarity of the L2-normalised features, temperature-weighted votes (k=20, T=0.07: DINOv2's "
    "k-NN evaluation; no standardisation, which a few training rows cannot estimate)",
    grid={"clf__n_neighbors": [10, 20, 50], "clf__temperature": [0.03, 0.07, 0.2]},
)
def _knn(seed: int = 0):
    return Head(CosineKNNClassifier(n_neighbors=20, temperature=0.07), scale=False, random_state=seed)


@register_head(
    "simpleshot",
    "SimpleShot: the nearest class centroid of centred, L2-normalised features (a few-shot probe for embeddings, "
    "nothing to tune; no standardisation)",
)
def _simpleshot(seed: int = 0):
    return Head(SimpleShotClassifier(), scale=False, random_state=seed)


@register_head(
    "mlp",
    "standardise, then one hidden layer of 256 ReLUs (L2 1e-2, Adam, early stopping)",
    grid={"clf__alpha": [1e-4, 1e-2, 1.0], "clf__hidden_layer_sizes": [(128,), (256,)]},
)
def _mlp(seed: int = 0):
    from sklearn.neural_network import MLPClassifier

    return Head(
        random_state=seed,
        clf=MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=1e-2,
            max_iter=500,
            early_stopping=True,
            n_iter_no_change=20,
            random_state=seed,
        ),
    )


@register_head(
    "lda",
    "standardise, then linear discriminant analysis with Ledoit-Wolf shrinkage (suits more features than samples)",
    grid={"clf__shrinkage": ["auto", 0.1, 0.5, 0.9]},
)
def _lda(seed: int = 0):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return Head(random_state=seed, clf=LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))


@register_head(
    "abmil",
    "attention-MIL (gated ABMIL, Ilse et al. 2018) on the bags of slice embeddings of each subject or volume "
    "(fit --bag); torch trains it, its attention per slice is saved",
    grid={"hidden": [16, 32, 64], "weight_decay": [1e-3, 1e-1]},
)
def _abmil(seed: int = 0):
    from featx.mil.abmil import ABMILClassifier

    return ABMILClassifier(random_state=seed)


# ----------------------------------------------------------------- regression heads (--target regression)


@register_head(
    "ridge",
    "standardise, then ridge regression (alpha=10: shrinkage for many correlated features)",
    grid={"clf__alpha": [0.1, 1.0, 10.0, 100.0, 1000.0]},
    target="regression",
)
def _ridge(seed: int = 0):
    from sklearn.linear_model import Ridge

    return RegressionHead(Ridge(alpha=10.0), random_state=seed)


@register_head(
    "svr",
    "standardise the features and the target, then RBF support-vector regression (C=1, epsilon 0.1 sd)",
    grid={"clf__regressor__C": [0.1, 1.0, 10.0, 100.0], "clf__regressor__epsilon": [0.01, 0.1, 0.5]},
    target="regression",
)
def _svr(seed: int = 0):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    # an RBF SVR's C and epsilon are in the target's units: on a standardised target one default fits any scale
    return RegressionHead(TransformedTargetRegressor(SVR(C=1.0), transformer=StandardScaler()), random_state=seed)


@register_head(
    "rf",
    "random forest regressor (500 trees)",
    grid={"clf__max_features": ["sqrt", 0.2, 1.0], "clf__min_samples_leaf": [1, 3, 10]},
    target="regression",
)
def _rf_regression(seed: int = 0):
    from sklearn.ensemble import RandomForestRegressor

    return RegressionHead(
        RandomForestRegressor(n_estimators=500, random_state=seed, n_jobs=1), scale=False, random_state=seed
    )


@register_head(
    "xgb",
    "XGBoost regressor (hist; 300 rounds, depth 4, learning rate 0.05, row/column subsampling)",
    grid={"clf__max_depth": [2, 4, 6], "clf__learning_rate": [0.03, 0.1]},
    target="regression",
)
def _xgb_regression(seed: int = 0):
    from xgboost import XGBRegressor

    reg = XGBRegressor(
        n_estimators=300,
        max_depth=4,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.5,
        tree_method="hist",
        n_jobs=1,
        random_state=seed,
    )
    return RegressionHead(reg, scale=False, random_state=seed)


# ----------------------------------------------------------------- survival heads (--target survival)


@register_head(
    "coxnet",
    "standardise, then an elastic-net Cox model (scikit-survival; l1_ratio 0.5), its penalty chosen by an inner "
    "5-fold CV of the training rows (grouped by subject) over the model's own path",
    grid={"clf__l1_ratio": [0.1, 0.5, 0.9]},
    target="survival",
)
def _coxnet(seed: int = 0):
    return SurvivalHead(CoxnetCV(l1_ratio=0.5, random_state=seed), random_state=seed)


@register_head(
    "coxph",
    "standardise, then a Cox proportional-hazards model with a ridge penalty (scikit-survival; alpha 10)",
    grid={"clf__alpha": [0.1, 1.0, 10.0, 100.0, 1000.0]},
    target="survival",
)
def _coxph(seed: int = 0):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    return SurvivalHead(CoxPHSurvivalAnalysis(alpha=10.0), random_state=seed)


@register_head(
    "rsf",
    "random survival forest (scikit-survival; 300 trees, at least 5 rows per leaf)",
    grid={"clf__max_features": ["sqrt", 0.2], "clf__min_samples_leaf": [3, 10]},
    target="survival",
)
def _rsf(seed: int = 0):
    from sksurv.ensemble import RandomSurvivalForest

    forest = RandomSurvivalForest(
        n_estimators=300, min_samples_leaf=5, max_features="sqrt", n_jobs=1, random_state=seed
    )
    return SurvivalHead(forest, scale=False, random_state=seed)


@register_head(
    "gbs",
    "gradient-boosted Cox model (scikit-survival; 200 trees of depth 3, learning rate 0.05, subsample 0.8)",
    grid={"clf__learning_rate": [0.03, 0.1], "clf__max_depth": [2, 3]},
    target="survival",
)
def _gbs(seed: int = 0):
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis

    boosted = GradientBoostingSurvivalAnalysis(
        n_estimators=200, learning_rate=0.05, max_depth=3, subsample=0.8, random_state=seed
    )
    return SurvivalHead(boosted, scale=False, random_state=seed)
