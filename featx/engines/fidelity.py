"""The fidelity gate: a reduced-precision engine (fp16, bf16) is used only when its features match fp32's.

fp16 engines of ViTs are known to break silently (TensorRT#2709: an fp16 CLIP ViT fell from F1 0.85
to 0.15), and a wrong cast or an overflow scrambles features without any error. Before such an
engine computes a feature set, featx runs it and an fp32 reference of the same model on a
calibration batch of the user's own images and compares them row by row (cosine similarity).

The gate: the **mean** cosine must reach ``min_fidelity`` (default 0.99), and **every** row must reach
the floor ``1 - 10 * (1 - min_fidelity)`` (0.9 at the default), so that a few destroyed rows cannot
hide behind a good mean. The figures go into the feature set's provenance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from featx.errors import ConfigError, FeatxError

DEFAULT_MIN_FIDELITY = 0.99
CALIBRATION_IMAGES = 32


class FidelityError(FeatxError):
    """A reduced-precision engine whose features differ from fp32's beyond the gate."""


def check_min_fidelity(value: float) -> float:
    """``--min-fidelity``: a mean cosine in (0, 1]."""
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"must be a cosine similarity in (0, 1], got {value}.", "min_fidelity")
    return value


def row_floor(min_fidelity: float) -> float:
    """The lowest cosine any single row may have: ten times the mean's allowed shortfall below 1."""
    return max(0.0, 1.0 - 10.0 * (1.0 - min_fidelity))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``.

    Two all-zero rows agree (1); one all-zero row, or any NaN or inf, scores 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", a, b) / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, cos)
    return np.where(np.isfinite(cos), cos, 0.0)


@dataclass(frozen=True)
class Fidelity:
    """How well an engine's features agree with fp32's on the calibration batch."""

    engine: str
    reference: str
    n: int
    mean_cosine: float
    p01_cosine: float
    min_cosine: float
    worst_sample: str
    min_fidelity: float
    row_floor: float

    @property
    def passed(self) -> bool:
        return self.mean_cosine >= self.min_fidelity and self.min_cosine >= self.row_floor

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "statistic": "cosine per row against fp32"}

    def check(self) -> Fidelity:
        """Self when it passes; else a :class:`FidelityError` with the figures and what to do."""
        if self.passed:
            return self
        raise FidelityError(
            f"the {self.engine} engine fails the fidelity gate against {self.reference} on {self.n} calibration "
            f"images of the manifest: mean cosine {self.mean_cosine:.4f} (needs >= {self.min_fidelity}), lowest "
            f"{self.min_cosine:.4f} at {self.worst_sample!r} (every row needs >= {self.row_floor:.3g}). Its features "
            "are not fp32's: use --precision fp32, or lower --min-fidelity only if you have checked that your "
            "downstream results hold."
        )


def run_batches(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, batch_size: int) -> np.ndarray:
    """``run`` over ``batch`` in chunks of ``batch_size``, concatenated."""
    return np.concatenate([np.asarray(run(batch[i : i + batch_size])) for i in range(0, len(batch), batch_size)])


def compare(
    got: np.ndarray,
    want: np.ndarray,
    ids: Sequence[str],
    *,
    engine: str,
    reference: str,
    min_fidelity: float = DEFAULT_MIN_FIDELITY,
) -> Fidelity:
    """The engine's features ``got`` against the fp32 reference's ``want``, row by row (rows named by ``ids``)."""
    cos = row_cosines(got, want)
    worst = int(np.argmin(cos))
    return Fidelity(
        engine=engine,
        reference=reference,
        n=len(cos),
        mean_cosine=float(cos.mean()),
        p01_cosine=float(np.percentile(cos, 1)),
        min_cosine=float(cos[worst]),
        worst_sample=str(ids[worst]),
        min_fidelity=min_fidelity,
        row_floor=row_floor(min_fidelity),
    )


@dataclass(frozen=True)
class Calibration:
    """A calibration batch and its fp32 features: what an engine built elsewhere (a Ray actor) is checked against."""

    batch: np.ndarray
    reference: np.ndarray
    ids: tuple[str, ...]
    reference_name: str
    min_fidelity: float
    batch_size: int

    def check(self, run: Callable[[np.ndarray], np.ndarray], engine: str) -> Fidelity:
        got = run_batches(run, self.batch, self.batch_size)
        return compare(
            got, self.reference, self.ids, engine=engine, reference=self.reference_name, min_fidelity=self.min_fidelity
        ).check()
