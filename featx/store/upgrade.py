"""A single-file store (``featx-store/1``) turned into an index whose sets' first part is the old file itself."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from featx import __version__
from featx.store.sharded import INDEX_FORMAT, folder_name, now
from featx.store.shards import OK
from featx.store.store import ABSENT, REMOVED


def upgrade_index(legacy: Path, base: str, out: Path) -> None:
    """Write at ``out`` the index of a single-file store ``legacy`` whose file is kept as ``base`` (a name under the
    store's folder): its samples table copied, each feature set a part that is the old file's group."""
    with h5py.File(legacy, "r") as old, h5py.File(out, "w") as new:
        new.attrs.update({"format": INDEX_FORMAT, "featx_version": __version__, "created": now()})
        new.attrs["upgraded_from"] = json.dumps({k: str(v) for k, v in old.attrs.items()})
        if "samples" in old:
            old.copy(old["samples"], new, "samples")
        n = int(old["samples/id"].shape[0]) if "samples" in old else 0
        for name in old.get("features", {}):
            g = old["features"][name]
            status = g["status"][:] if "status" in g else np.full(g["filled"].shape[0], OK, np.uint8)
            outside = np.zeros(n, dtype=bool)
            outside[: len(status)] = (status == REMOVED) | (status == ABSENT)
            ng = new.require_group("features").create_group(name)
            ng.create_dataset("outside", data=outside, maxshape=(None,), chunks=(4096,))
            ng.attrs.update({k: v for k, v in g.attrs.items()})
            ng.attrs.update(
                {
                    "dtype": g["X"].dtype.name,
                    "folder": folder_name(name),
                    "parts": json.dumps([{"file": base, "group": f"/features/{name}", "legacy": True}]),
                }
            )
