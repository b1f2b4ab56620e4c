"""results.json: typed results <-> plain JSON, with a format version.

``format`` is ``featx-results/2``. Files without it were written before results were typed
(featx 0.1.0 up to this change); their layout is the same, so they read as version 1 with the
defaults filling what older runs did not record. A newer format is refused with what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from featx.errors import FeatxError
from featx.results.bench import BenchResult
from featx.results.codec import from_json, to_json
from featx.results.runs import FitResult

# 3: regression metrics in every Metrics, the run's target, the metric of a paired bootstrap (featx 0.x, evaluate/ in
# rooms); 2: typed results; 1: before them
FORMAT = "featx-results/3"
_READABLE = (FORMAT, "featx-results/2", "featx-results/1")
_TYPES = {"fit": FitResult, "finetune": FitResult, "bench": BenchResult}


class NotAResult(FeatxError):
    """A JSON file that is not a fit, bench or finetune result (e.g. another featx index file)."""


def result_to_json(result: FitResult | BenchResult) -> dict:
    """The JSON object of a result, ``format`` first."""
    return {"format": FORMAT, **to_json(result)}


def result_from_json(data: dict, where: str = "results") -> FitResult | BenchResult:
    """A typed result from a results.json object (this format or an earlier one).

    Raises
    ------
    FeatxError
        Not a featx result, a newer format, or a malformed file.
    """
    if not isinstance(data, dict):
        raise FeatxError(f"{where}: not a featx results file (a JSON object with a 'type' is expected).")
    fmt = data.get("format", "featx-results/1")
    if fmt not in _READABLE:
        raise FeatxError(
            f"{where}: results format {fmt!r} is newer than this featx reads ({FORMAT}); upgrade featx to read it."
        )
    kind = data.get("type")
    if kind not in _TYPES:
        raise NotAResult(f"{where}: not a fit, bench or finetune result (type {kind!r}).")
    body = {k: v for k, v in data.items() if k != "format"}
    try:
        return from_json(_TYPES[kind], body)
    except (TypeError, ValueError, KeyError) as exc:
        raise FeatxError(f"{where}: a malformed {kind} result ({exc}); rerun that step to write it again.") from None


def load_results(path: str | Path) -> FitResult | BenchResult:
    """Read a results.json written by ``featx fit``, ``bench`` or ``finetune`` (any version this featx reads)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeatxError(
            f"Cannot read {path}: {exc}. Give the results.json that 'featx fit', 'bench' or 'finetune' wrote."
        ) from None
    return result_from_json(data, str(path))


def write_results(result: FitResult | BenchResult, path: str | Path) -> Path:
    """Write ``result`` as ``path`` (indented JSON, replaced atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(result_to_json(result), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
