"""The merged state of one feature set of a sharded store: for each store row, the part that holds it last."""

from __future__ import annotations

import numpy as np

from featx.errors import StoreError
from featx.store.shards import Part


class View:
    """The merged state of one feature set: for each store row, the part that holds it last."""

    def __init__(self, parts: list[Part], n: int, ids: np.ndarray, where: str):
        self.parts = parts
        self.owner = np.full(n, -1, dtype=np.int32)
        self.pos = np.zeros(n, dtype=np.int64)
        self.live = np.zeros(n, dtype=np.uint8)
        for k, p in enumerate(parts):
            rows = p.rows
            if len(rows) and int(rows.max()) >= n:
                raise StoreError(f"{where}: a shard holds rows the index does not have (damaged); restore the store.")
            pids = p.ids()
            if pids is not None and len(rows) and (pids != ids[rows]).any():
                raise StoreError(f"{where}: a shard's sample ids disagree with the index (damaged); restore the store.")
            self.owner[rows] = k
            self.pos[rows] = np.arange(len(rows))
            self.live[rows] = p.status()
        self._cols: dict[str, np.ndarray] = {}

    def column(self, c: str) -> np.ndarray:
        if c not in self._cols:
            out = np.full(len(self.owner), "", dtype=object)
            for k, p in enumerate(self.parts):
                mine = self.owner[p.rows] == k
                if mine.any():
                    out[p.rows[mine]] = p.column(c)[mine]
            self._cols[c] = out
        return self._cols[c]

    def signature(self) -> np.ndarray | None:
        if "signature" not in self._cols:
            sigs = [(k, p, p.signature()) for k, p in enumerate(self.parts)]
            width = next((s.shape[1] for _, _, s in sigs if s is not None), None)
            out = None
            if width is not None:
                out = np.zeros((len(self.owner), width), dtype=np.float16)
                for k, p, s in sigs:
                    mine = self.owner[p.rows] == k
                    if s is not None and mine.any():
                        out[p.rows[mine]] = s[mine]
            self._cols["signature"] = out
        return self._cols["signature"]

    def features(self, rows: np.ndarray, dim: int, dtype) -> np.ndarray:
        """Features of ``rows`` (ok rows), read part by part straight into one array."""
        out = np.empty((len(rows), dim), dtype=dtype)
        owner = self.owner[rows]
        for k, p in enumerate(self.parts):
            mine = np.flatnonzero(owner == k)
            if len(mine):
                try:
                    p.read_into(out, mine, p.xpos[self.pos[rows[mine]]])
                except OSError as exc:  # a block whose checksum fails: name the shard
                    raise OSError(f"{p.g.file.filename}: {exc}") from None
        return out
