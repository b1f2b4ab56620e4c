"""The one way into a store: :func:`open_store` to read (whatever the layout), :func:`store_writer` to write.

Every stage (extract, radiomics, evaluate, predict, the API, the store tools) goes through these two; a second
backend touches ``featx/store`` alone.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from featx.errors import StoreError
from featx.store.jobs import Shard, check_shard
from featx.store.journal import RowDone, RowFailed
from featx.store.sharded import INDEX_FORMAT, ShardedStore
from featx.store.shards import FAILED, OK
from featx.store.shards import write_shard as write_worker_shard
from featx.store.store import FeatureStore
from featx.store.writer import StoreWriter, store_writer

__all__ = [
    "FAILED",
    "OK",
    "RowDone",
    "RowFailed",
    "Shard",
    "StoreWriter",
    "check_shard",
    "open_store",
    "store_writer",
    "write_worker_shard",
]


def open_store(path: str | Path) -> FeatureStore | ShardedStore:
    """A store for reading: the sharded layout (``featx-store/2``) or a single file (``featx-store/1``, what
    ``featx store compact`` writes and earlier featx made). Both answer the same reading methods.

    Raises
    ------
    StoreError
        When the file is missing, is not a featx store, or is damaged (one line, with what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"Store not found: {path}. Run 'featx extract ... --store {path}' first.")
    try:
        with h5py.File(path, "r") as h5:
            sharded = h5.attrs.get("format") == INDEX_FORMAT
    except OSError:
        sharded = False  # FeatureStore names what is wrong with the file
    return ShardedStore(path) if sharded else FeatureStore(path)
