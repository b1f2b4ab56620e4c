"""``featx extract --ray ADDRESS``: the same extraction on a Ray cluster (optional extra ``featx[ray]``).

Ray Data reads and preprocesses the images in tasks spread over the cluster's CPUs;
an actor pool runs the backbone (one actor per GPU when the cluster has GPUs, CPU
actors otherwise). Each actor writes the rows it computed as sealed shard files into
the writer's folder on storage the cluster shares (:class:`ShardTarget`); only their
names and per-row outcomes (failures, notes) come back to this process, which journals
the names and, at the end, commits the index that lists them. The features never pass
through the driver, so one driver keeps up with many workers (``benchmarks/ray_driver.py``).
The store equals a single-machine run's: rows are keyed by sample id.

The workers must see the image paths, the store's folder and the featx/torch/onnxruntime
versions this process has (a shared file system and the same environment; see docs/extract.md).
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.cluster import connect_ray
from featx.extract.pipeline import ok_entry
from featx.extract.tta import with_tta
from featx.failures import RunStats, aborted, failure_reason
from featx.images.signature import from_text
from featx.progress import progress_bar
from featx.store.freshness import fingerprint, inputs_of
from featx.store.open import FAILED, OK, RowFailed, write_worker_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTarget:
    """Where the actors write their shards (the writer's folder for them, on shared storage), and for which set."""

    folder: str
    name: str
    identity: str
    with_mask: bool = False


SHARD_ROWS = 256  # rows an actor takes at a time, and so writes as one shard (its model runs batch_size at a time)


def _decode(batch: dict, loader, with_mask: bool = False) -> dict:
    """Ray Data task: pickled samples -> preprocessed tensors (zeros + reason where a sample fails), and what each
    row is computed from (path, size and mtime: the store's freshness record)."""
    xs, shas, notes, pixels, errors, shape = [], [], [], [], [], None
    sources, cache = [], {}
    for blob in batch["sample"]:
        s = pickle.loads(blob)
        sources.append(fingerprint(inputs_of(s, with_mask), cache))
        try:
            x, sha, note, digests = loader(s)
            shape = x.shape
            (
                xs.append(x),
                shas.append("\n".join(sha) if isinstance(sha, tuple) else sha),
                notes.append(note),
                pixels.append("\n".join(digests)),
                errors.append(""),
            )
        except Exception as exc:  # recorded per sample, like the local pipeline
            xs.append(None), shas.append(""), notes.append(""), pixels.append(""), errors.append(failure_reason(exc, s))
    shape = shape or (3, 1, 1)
    x = np.stack([v if v is not None else np.zeros(shape, np.float32) for v in xs])
    return {
        "row": batch["row"],
        "sample_id": batch["sample_id"],
        "x": x,
        "sha256": np.array(shas, dtype=object),
        "note": np.array(notes, dtype=object),
        "pixels": np.array(pixels, dtype=object),
        "error": np.array(errors, dtype=object),
        "source": np.array([src for src, _ in sources], dtype=object),
        "stat": np.array([st for _, st in sources], dtype=object),
    }


class _Backbone:
    """Ray actor: one runtime, many batches; with a :class:`ShardTarget`, it writes what it computed itself."""

    def __init__(self, factory, threads, tta, dim, target: ShardTarget | None = None, batch_size: int = 32):
        self.compute = with_tta(factory(threads).run, tta)
        self.dim, self.target, self.batch_size = dim, target, batch_size

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        out = np.zeros((len(ok), self.dim), np.float32)  # failed rows: zeros, never written (error is set)
        idx = np.flatnonzero(ok)
        for i in range(0, len(idx), self.batch_size):
            x = batch["x"][idx[i : i + self.batch_size]]
            if x.dtype == object:  # blocks joined with a block of only failed rows (tiny placeholders): ragged
                x = np.stack(list(x))
            out[idx[i : i + self.batch_size]] = self.compute(x)
        if self.target is not None:
            return self._write(batch, ok, out[ok])
        return {
            "row": batch["row"],
            "sample_id": batch["sample_id"],
            "sha256": batch["sha256"],
            "note": batch["note"],
            "pixels": batch["pixels"],
            "error": batch["error"],
            "features": out,
        }

    def _write(self, batch: dict, ok: np.ndarray, X: np.ndarray) -> dict:
        """The batch's rows as one sealed shard; what goes back: the shard's name and each row's outcome."""
        t = self.target
        entries = [
            ok_entry(int(r), str(i), str(sha), str(note), tuple((str(px).split("\n") + ["", ""])[:2]))
            for r, i, sha, note, px in zip(batch["row"], batch["sample_id"], batch["sha256"], batch["note"], batch["pixels"])
        ]  # fmt: skip
        cols = {
            "sha256": [e.sha256 for e in entries],
            "mask_sha256": [e.mask_sha256 for e in entries],
            "note": [e.note if good else "" for e, good in zip(entries, ok)],
            "pixels": [e.pixels if good else "" for e, good in zip(entries, ok)],
            "error": list(batch["error"]),
            "source": list(batch["source"]),
            "stat": list(batch["stat"]),
        }
        sig = [from_text(e.signature) if good and e.signature else None for e, good in zip(entries, ok)]
        width = next((len(s) for s in sig if s is not None), 0)
        signatures = np.stack([s if s is not None else np.zeros(width) for s in sig]) if width else None
        status = np.where(ok, OK, FAILED)
        path = write_worker_shard(
            Path(t.folder), t.name, t.identity, batch["row"], batch["sample_id"], status, X, cols, signatures
        )
        n = len(ok)
        return {
            "row": batch["row"],
            "sample_id": batch["sample_id"],
            "note": batch["note"],
            "error": batch["error"],
            "shard": np.array([str(path)] * n, dtype=object),
        }


def _init(address: str):
    return connect_ray(address)


def run_on_ray(
    address,
    todo,
    loader,
    factory,
    sink,
    *,
    dim,
    batch_size,
    limit,
    label,
    progress,
    tta,
    where,
    target=None,
    adopt=None,
) -> RunStats:
    """Run ``todo`` on Ray.

    With a :class:`ShardTarget` the actors write the rows as shards there and ``adopt(path, ok, failed)`` gets each
    shard's name; without, ``sink`` gets the same (ok, X, failed) batches as
    :func:`featx.extract.pipeline.run_pipeline` (the features pass through this process).
    """
    ray = _init(address)
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
    if gpus:
        actors, actor_res = gpus, {"num_gpus": 1}
    else:  # half the CPUs run the backbone (threads = CPUs per actor), half decode
        per_actor = max(1, min(4, cpus // 2))
        actors, actor_res = max(1, (cpus // 2) // per_actor), {"num_cpus": per_actor}
    threads = actor_res.get("num_cpus")
    log.info("Ray: %d CPU, %d GPU; %d backbone actor(s) %s", cpus, gpus, actors, actor_res)
    if target is not None:
        Path(target.folder).mkdir(parents=True, exist_ok=True)
    items = [{"row": int(r), "sample_id": s.sample_id, "sample": pickle.dumps(s)} for r, s in todo]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size, 4 * cpus)))
    with_mask = target.with_mask if target is not None else False
    ds = ds.map_batches(
        _decode, fn_kwargs={"loader": loader, "with_mask": with_mask}, batch_size=batch_size, batch_format="numpy",
        num_cpus=1,
    )  # fmt: skip
    ds = ds.map_batches(
        _Backbone,
        fn_constructor_args=(factory, threads, tta, dim, target, batch_size),
        batch_size=max(batch_size, SHARD_ROWS) if target is not None else batch_size,
        batch_format="numpy",
        concurrency=actors,
        **actor_res,
    )
    stats = RunStats()
    t0 = time.perf_counter()
    with progress_bar(label, total=len(todo), enabled=progress) as bar:
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            err = b["error"]
            failed = [
                RowFailed(int(b["row"][i]), str(b["sample_id"][i]), str(err[i])) for i in np.flatnonzero(err != "")
            ]
            for f in failed:
                stats.failures.append((f.sample_id, f.reason))
                log.warning("failed: %s", f.reason)
            stats.notes += [(str(i), str(n)) for i, n, e in zip(b["sample_id"], b["note"], err) if n and not e]
            if target is not None:
                for shard in np.unique(b["shard"]):
                    mine = b["shard"] == shard
                    adopt(Path(str(shard)), int((mine & (err == "")).sum()), int((mine & (err != "")).sum()))
            else:
                ok_idx = np.flatnonzero(err == "")
                ok = [
                    ok_entry(
                        int(b["row"][i]),
                        str(b["sample_id"][i]),
                        str(b["sha256"][i]),
                        b["note"][i],
                        tuple((str(b["pixels"][i]).split("\n") + ["", ""])[:2]),
                    )
                    for i in ok_idx
                ]
                sink(ok, b["features"][ok_idx], failed)
            stats.done += int((err == "").sum())
            bar.update(len(err), rate=(stats.done + len(stats.failures)) / (time.perf_counter() - t0))
            if len(stats.failures) > limit:
                raise aborted(stats, limit, where)
    return stats
