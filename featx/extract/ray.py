"""``featx extract --ray ADDRESS``: the same extraction on a Ray cluster (optional extra ``featx[ray]``).

Ray Data reads and preprocesses the images in tasks spread over the cluster's CPUs;
an actor pool runs the backbone (one actor per GPU when the cluster has GPUs, CPU
actors otherwise). Results stream back to this process, which is the store's one
writer: rows go through the same journal, keyed by sample id, so the store equals
a single-machine run's.

The workers must see the image paths and the featx/torch/onnxruntime versions this
process has (a shared file system and the same environment; see the README).
"""

from __future__ import annotations

import logging
import pickle
import time

import numpy as np

from featx.cluster import connect_ray
from featx.extract.pipeline import ok_entry
from featx.extract.tta import with_tta
from featx.failures import RunStats, aborted, failure_reason
from featx.progress import progress_bar
from featx.store.journal import RowFailed

log = logging.getLogger(__name__)


def _decode(batch: dict, loader) -> dict:
    """Ray Data task: pickled samples -> preprocessed tensors (zeros + reason where a sample fails)."""
    xs, shas, notes, pixels, errors, shape = [], [], [], [], [], None
    for blob in batch["sample"]:
        s = pickle.loads(blob)
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
    }


class _Backbone:
    """Ray actor: one runtime, many batches."""

    def __init__(self, factory, threads, tta, dim):
        self.compute = with_tta(factory(threads).run, tta)
        self.dim = dim

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        out = np.zeros((len(ok), self.dim), np.float32)  # failed rows: zeros, never written (error is set)
        if ok.any():
            out[ok] = self.compute(batch["x"][ok])
        return {
            "row": batch["row"],
            "sample_id": batch["sample_id"],
            "sha256": batch["sha256"],
            "note": batch["note"],
            "pixels": batch["pixels"],
            "error": batch["error"],
            "features": out,
        }


def _init(address: str):
    return connect_ray(address)


def run_on_ray(
    address, todo, loader, factory, sink, *, dim, batch_size, limit, label, progress, tta, where
) -> RunStats:
    """Run ``todo`` on Ray; ``sink`` gets the same (ok, X, failed) batches as :func:`featx.extract.pipeline.run_pipeline`."""
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
    items = [{"row": int(r), "sample_id": s.sample_id, "sample": pickle.dumps(s)} for r, s in todo]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size, 4 * cpus)))
    ds = ds.map_batches(_decode, fn_kwargs={"loader": loader}, batch_size=batch_size, batch_format="numpy", num_cpus=1)
    ds = ds.map_batches(
        _Backbone,
        fn_constructor_args=(factory, threads, tta, dim),
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=actors,
        **actor_res,
    )
    stats = RunStats()
    t0 = time.perf_counter()
    with progress_bar(label, total=len(todo), enabled=progress) as bar:
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            err = b["error"]
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
            stats.notes += [(e.sample_id, e.note) for e in ok if e.note]
            failed = [
                RowFailed(int(b["row"][i]), str(b["sample_id"][i]), str(err[i])) for i in np.flatnonzero(err != "")
            ]
            for f in failed:
                stats.failures.append((f.sample_id, f.reason))
                log.warning("failed: %s", f.reason)
            sink(ok, b["features"][ok_idx], failed)
            stats.done += len(ok)
            bar.update(len(err), rate=(stats.done + len(stats.failures)) / (time.perf_counter() - t0))
            if len(stats.failures) > limit:
                raise aborted(stats, limit, where)
    return stats
