"""Attention-based multiple-instance learning (ABMIL; Ilse, Tomczak and Welling, ICML 2018) as a scikit-learn
classifier: one prediction per bag (a subject's or a lesion's slices), from its instances' embeddings weighted by
a learned, gated attention.

A bag is one row of ``X``: its instances' ``instance_dim`` features one after another, bags with fewer instances
padded with NaN (whole instances only). With ``instance_dim`` None every row is a bag of one instance (then ABMIL is a
small MLP), which is what scikit-learn's estimator checks feed it.

Training uses torch (imported only here, when this head fits); the fitted model keeps its weights as NumPy arrays,
so prediction, attention and saved models need no torch. Training is reproducible for a seed (one thread, seeded
initialisation and batch order).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class ABMILClassifier(ClassifierMixin, BaseEstimator):
    """Gated-attention MIL: instances -> ReLU embedding (``hidden``) -> attention weights (softmax over the bag of
    ``w . (tanh(V h) * sigmoid(U h))``) -> the weighted mean embedding -> a linear classifier.

    Parameters
    ----------
    instance_dim : int, optional
        Features per instance (each row of ``X`` is a bag of ``n_features / instance_dim`` instances, NaN-padded).
    hidden, attention : int
        Widths of the instance embedding and of the attention layer.
    epochs, batch_size, lr, weight_decay, dropout : training (AdamW on the cross-entropy, bags in seeded batches).
    random_state : int
    """

    def __init__(
        self,
        instance_dim=None,
        hidden=32,
        attention=32,
        epochs=200,
        batch_size=16,
        lr=1e-2,
        weight_decay=1e-3,
        dropout=0.1,
        random_state=0,
    ):
        self.instance_dim = instance_dim
        self.hidden = hidden
        self.attention = attention
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------------ bags
    def _bags(self, X, reset: bool = False, y=False):
        """``X`` -> (instances (n, k, d) float64 with zeros where padded, mask (n, k) bool[, y])."""
        finite = "allow-nan" if self.instance_dim else True
        if y is not False:  # fitting: y is validated too (None is refused as scikit-learn says it)
            X, y = validate_data(self, X, y, reset=reset, ensure_all_finite=finite)
        else:
            X = validate_data(self, X, reset=reset, ensure_all_finite=finite)
        d = int(self.instance_dim or X.shape[1])
        if X.shape[1] % d:
            raise ValueError(f"{X.shape[1]} features are not a whole number of instances of {d} features")
        inst = X.reshape(len(X), -1, d)
        nan = np.isnan(inst)
        present = ~nan.any(axis=2)
        if np.any(nan.any(axis=2) & ~nan.all(axis=2)):
            raise ValueError("Input contains NaN inside an instance (only whole instances may be NaN padding).")
        if not present.any(axis=1).all():
            raise ValueError("a bag has no instance (every instance is NaN padding)")
        out = np.where(present[..., None], inst, 0.0), present
        return out if y is False else (*out, y)

    # ------------------------------------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit on bags ``X`` (n, k * instance_dim) and bag labels ``y``."""
        inst, mask, y = self._bags(X, reset=True, y=y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"a classifier needs samples of at least 2 classes; only one class is present: {self.classes_[0]!r}"
            )
        flat = inst[mask]
        self.mean_ = flat.mean(axis=0)
        self.scale_ = flat.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self.weights_ = _train(self, (inst - self.mean_) / self.scale_ * mask[..., None], mask, codes)
        return self

    # ------------------------------------------------------------------------------------------------ predict
    def _forward(self, X):
        check_is_fitted(self, "weights_")
        inst, mask = self._bags(X, reset=False)
        w = self.weights_
        h = np.maximum((inst - self.mean_) / self.scale_ @ w["embed.weight"].T + w["embed.bias"], 0.0)
        gate = np.tanh(h @ w["V.weight"].T + w["V.bias"]) * _sigmoid(h @ w["U.weight"].T + w["U.bias"])
        score = (gate @ w["w.weight"].T + w["w.bias"])[..., 0]
        score = np.where(mask, score, -np.inf)
        a = np.exp(score - score.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
        z = np.einsum("nk,nkh->nh", a, h)
        return z @ w["cls.weight"].T + w["cls.bias"], a

    def predict_proba(self, X):
        logits, _ = self._forward(X)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        check_is_fitted(self, "weights_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def attention_weights(self, X) -> np.ndarray:
        """(n, k) attention of each instance in its bag (0 for padding; each row sums to 1)."""
        return self._forward(X)[1]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _train(est: ABMILClassifier, inst: np.ndarray, mask: np.ndarray, codes: np.ndarray) -> dict:
    """The network's weights after training, as NumPy float64 arrays (state-dict names)."""
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same numbers on any machine load: one thread's summation order
    try:
        gen = torch.Generator().manual_seed(int(est.random_state))
        torch.manual_seed(int(est.random_state))
        d, n_classes = inst.shape[2], int(codes.max()) + 1
        net = nn.ModuleDict(
            {
                "embed": nn.Linear(d, est.hidden),
                "V": nn.Linear(est.hidden, est.attention),
                "U": nn.Linear(est.hidden, est.attention),
                "w": nn.Linear(est.attention, 1),
                "cls": nn.Linear(est.hidden, n_classes),
            }
        )
        drop = nn.Dropout(est.dropout)
        x = torch.tensor(inst, dtype=torch.float32)
        m = torch.tensor(mask)
        y = torch.tensor(codes, dtype=torch.long)
        opt = torch.optim.AdamW(net.parameters(), lr=est.lr, weight_decay=est.weight_decay)
        net.train()
        for _ in range(int(est.epochs)):
            for batch in torch.randperm(len(x), generator=gen).split(int(est.batch_size)):
                h = drop(torch.relu(net["embed"](x[batch])))
                score = net["w"](torch.tanh(net["V"](h)) * torch.sigmoid(net["U"](h))).squeeze(-1)
                a = torch.softmax(score.masked_fill(~m[batch], float("-inf")), dim=1)
                logits = net["cls"]((a.unsqueeze(-1) * h).sum(dim=1))
                loss = nn.functional.cross_entropy(logits, y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return {k: v.detach().double().numpy().copy() for k, v in net.state_dict().items()}
    finally:
        torch.set_num_threads(threads)
