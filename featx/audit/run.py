"""``featx audit``: which rows of a stored feature set are near-copies of rows of other subjects, or of the other
side of the split; a CSV of the pairs, a page of thumbnails side by side, and a manifest that joins them.

A near-copy is the same picture re-encoded, resized, cropped a little, mirrored or brightened: its file and its
pixels differ, so only its content finds it. The audit compares the stored embeddings (cosine, centred: see
:mod:`featx.audit.near`), so it costs no extraction; exact copies (same file or pixels) are marked as such.
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from featx.audit.near import DEFAULT_THRESHOLD, SIGNATURE_THRESHOLD, near_pairs, normalised
from featx.dataset.copies import find_copies
from featx.dataset.manifest import Manifest
from featx.dataset.sample import Sample
from featx.errors import ConfigError, FeatxError, FitError, short_list
from featx.images.loader import SampleReader
from featx.images.signature import KEEP, MIRROR, pixel_signature
from featx.progress import progress_bar
from featx.store.open import open_store

log = logging.getLogger(__name__)

ACROSS = ("subjects", "split", "all")


@dataclass
class AuditResult:
    """What an audit found."""

    feature_set: str
    n_rows: int
    threshold: float  # on the centred cosine of the embeddings
    across: str
    signature_threshold: float | None = None  # on the pixel signatures' cosine (None: images not read)
    pairs: list = field(default_factory=list)  # dicts: id_a, id_b, cosine, signature, exact, subject/split/path
    exact_groups: int = 0
    test_rows: int = 0  # rows in the test split
    contaminated: list = field(default_factory=list)  # test ids with a near-copy outside the test split
    unread: list = field(default_factory=list)  # (id, why) of images that could not be read for their signature
    outputs: dict = field(default_factory=dict)

    def summary(self) -> str:
        by = f"embedding cosine >= {self.threshold:.2f}"
        if self.signature_threshold is not None:
            by += f" or pixel signature >= {self.signature_threshold:.2f}"
        line = f"{len(self.pairs)} near-copy pair(s) ({by}) across {self.across} among {self.n_rows} rows of {self.feature_set}"
        if self.test_rows:
            line += (
                f"; {len(self.contaminated)} of {self.test_rows} test row(s) have a near-copy outside the test split"
            )
        return line


def run_audit(
    store,
    features: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    signature_threshold: float | None = SIGNATURE_THRESHOLD,
    across: str = "subjects",
    out=None,
    manifest=None,
    write_manifest=None,
    max_shown: int = 200,
    progress: bool = True,
) -> AuditResult:
    """Find the near-copies among the computed rows of ``features`` in ``store``.

    Parameters
    ----------
    threshold : float
        Centred cosine of the stored embeddings at or above which two rows are near-copies.
    signature_threshold : float or None
        Cosine of the images' pixel signatures (:mod:`featx.images.signature`; the images are read) at or above
        which two rows are near-copies; None: the embeddings alone (no image is read).
    across : {'subjects', 'split', 'all'}
        Keep pairs of different subjects (rows without a subject are each their own), pairs across the test split,
        or every pair.
    out : path, optional
        Folder for ``pairs.csv`` and ``audit.html`` (the first ``max_shown`` pairs with thumbnails).
    manifest, write_manifest : path, optional
        Write ``manifest`` again as ``write_manifest``, its ``subject`` column joining each group of near-copies
        (a union of groups), for the user to accept.
    """
    for name, value in (("threshold", threshold), ("signature_threshold", signature_threshold)):
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"must be a cosine in (0, 1], got {value}.", name)
    if across not in ACROSS:
        raise ConfigError(f"must be one of {', '.join(ACROSS)}, got {across!r}.", "across")
    if write_manifest is not None and manifest is None:
        raise ConfigError("joins the subjects of a manifest: give --manifest too.", "write_manifest")
    man = Manifest.load(manifest) if manifest is not None else None  # a bad manifest fails before the work
    with open_store(store) as st:
        fs = st.load(features)
        ids = st.sample_ids().tolist()
        paths = dict(zip(ids, zip(st.sample_paths().tolist(), st.sample_slices().tolist())))
    if fs.provenance.get("kind") == "radiomics":
        log.warning(
            "%s is a radiomics set: its cosines are not calibrated like a network's embeddings; audit a deep "
            "feature set of the same rows instead",
            features,
        )
    if len(fs) < 2:
        raise FitError(f"{features!r} has {len(fs)} computed row(s); an audit compares pairs of rows.")
    units = np.where(fs.subjects == "", fs.ids, fs.subjects).astype(object)
    is_test = fs.splits == "test"
    keep = {"subjects": lambda a, b: units[a] != units[b], "split": lambda a, b: is_test[a] != is_test[b], "all": None}[
        across
    ]
    res = AuditResult(features, len(fs), threshold, across, signature_threshold)
    E = normalised(fs.X)
    with progress_bar(f"audit {features}: embeddings of {len(fs)} rows", total=len(fs), enabled=progress) as bar:
        found = [near_pairs(E, threshold, keep=keep, on_block=bar.update)]
    S = None
    if signature_threshold is not None:  # stored at extraction; the images of rows without one are read now
        S = np.zeros((len(fs), KEEP * KEEP), np.float32) if fs.signatures is None else fs.signatures.copy()
        missing = np.flatnonzero(~S.any(axis=1))
        if len(missing):
            S[missing], res.unread = signatures(fs.ids[missing], paths, progress)
        with progress_bar(f"audit {features}: pixel signatures", total=len(fs), enabled=progress) as bar:
            found.append(near_pairs(S, signature_threshold, keep=keep, on_block=bar.update, mirror=MIRROR))
    pairs = _union(found)
    exact = find_copies(fs.ids, fs.copy_keys, fs.subjects, fs.labels)
    group_of = {r: gi for gi, g in enumerate(exact.groups) for r in g}
    res.exact_groups = len(exact.groups)
    for a, b in pairs:
        sig = None if S is None else float(max(S[a] @ S[b], S[a] @ (S[b] * MIRROR)))
        res.pairs.append(
            {
                "id_a": fs.ids[a],
                "id_b": fs.ids[b],
                "cosine": round(float(E[a] @ E[b]), 4),
                "signature": None if sig is None else round(sig, 4),
                "exact": a in group_of and group_of.get(b) == group_of[a],
                **{f"{k}_{s}": v for s, r in (("a", a), ("b", b)) for k, v in _row(fs, r, paths).items()},
            }
        )
    res.pairs.sort(key=lambda p: (-(p["signature"] or 0) - p["cosine"], p["id_a"], p["id_b"]))
    res.test_rows = int(is_test.sum())
    if res.test_rows:
        across_split = lambda a, b: is_test[a] != is_test[b]  # noqa: E731
        cross = [near_pairs(E, threshold, keep=across_split)]
        if S is not None:
            cross.append(near_pairs(S, signature_threshold, keep=across_split, mirror=MIRROR))
        hit = np.zeros(len(fs), bool)
        for a, b in _union(cross):
            hit[a] |= is_test[a]
            hit[b] |= is_test[b]
        res.contaminated = fs.ids[hit].tolist()
    if out is not None:
        res.outputs = _write_outputs(res, Path(out), max_shown)
    if write_manifest is not None:
        res.outputs["manifest"] = str(joined_manifest(man, res.pairs, Path(write_manifest)))
    return res


def _union(found: list) -> list[tuple[int, int]]:
    """The pairs found by any score, each once."""
    return sorted({(int(a), int(b)) for p in found for a, b in zip(p.a.tolist(), p.b.tolist())})


def signatures(ids, paths: dict, progress: bool) -> tuple[np.ndarray, list]:
    """The pixel signature of every row's image (zeros, matching nothing, where an image cannot be read)."""
    reader = SampleReader("minmax", cache_volumes=2, keep_grey=True)

    def one(sid):
        path, slice_ = paths.get(sid, ("", -1))
        try:
            im = reader(Sample(sample_id=sid, path=Path(path), slice=None if slice_ < 0 else int(slice_)))
            return pixel_signature(im), ""
        except (FeatxError, OSError) as exc:
            return np.zeros(KEEP * KEEP, np.float32), str(exc)

    out, unread = np.zeros((len(ids), KEEP * KEEP), np.float32), []
    with progress_bar(f"reading {len(ids)} images", total=len(ids), enabled=progress) as bar:
        with ThreadPoolExecutor(max_workers=4) as pool:  # decoding releases the GIL
            for i, (sig, why) in enumerate(pool.map(one, list(ids), chunksize=64)):
                out[i] = sig
                if why:
                    unread.append((ids[i], why))
                bar.update()
    if unread:
        log.warning(
            "%d image(s) could not be read for their pixel signature (compared by embedding only): %s",
            len(unread),
            short_list([f"{i}: {w}" for i, w in unread], 3),
        )
    return out, unread


def _row(fs, r: int, paths: dict) -> dict:
    path, slice_ = paths.get(fs.ids[r], ("", -1))
    return {"subject": fs.subjects[r], "split": fs.splits[r], "label": fs.labels[r], "path": path, "slice": slice_}


def joined_manifest(man: Manifest, pairs: list, out: Path) -> Path:
    """``man`` with the subjects of near-copies joined (every row gets a subject: its own, or its id), as ``out``."""
    from featx.dataset.copies import Copies

    ids = np.array([s.sample_id for s in man], dtype=object)
    units = np.array([s.subject or s.sample_id for s in man], dtype=object)
    index = {sid: i for i, sid in enumerate(ids.tolist())}
    groups = [(index[p["id_a"]], index[p["id_b"]]) for p in pairs if p["id_a"] in index and p["id_b"] in index]
    joined = Copies(ids, units, groups).joined_units()
    rows = [replace(s, subject=str(j)) for s, j in zip(man, joined)]
    changed = int((joined != units).sum())
    log.info("%s: %d row(s) take the subject of a near-copy", out, changed)
    return Manifest(rows).to_csv(out)


def _write_outputs(res: AuditResult, out: Path, max_shown: int) -> dict:
    from featx.report.audit import write_audit_page

    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "pairs.csv"
    cols = [
        "id_a",
        "id_b",
        "cosine",
        "signature",
        "exact",
        *[f"{k}_{s}" for s in "ab" for k in ("subject", "split", "label")],
    ]
    cols += ["path_a", "path_b"]
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(res.pairs)
    page = write_audit_page(res, out / "audit.html", max_shown)
    return {"pairs": str(csv_path), "report": str(page)}
