"""Finished folds of a fine-tuning run on disk, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


class FoldJournal:
    """Finished folds of a run (``out/.partial/<settings hash>/``), so an interrupted run resumes where it stopped.

    A fold is reused only by a run with exactly the same settings, folds and samples.
    """

    def __init__(self, out: Path, settings: dict):
        key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.dir = out / ".partial" / key
        self.done = {}
        for f in sorted(self.dir.glob("r*_f*.json")) if self.dir.is_dir() else []:
            try:
                d = json.loads(f.read_text())
            except ValueError:  # a fold file cut short by the interruption: train that fold again
                continue
            self.done[(d["record"]["repeat"], d["record"]["fold"])] = d
        self.n_done = len(self.done)
        self.seconds_before = sum(d["record"]["seconds"] for d in self.done.values())

    def get(self, r: int, f: int):
        return self.done.get((r, f))

    def put(self, r: int, f: int, proba, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f"r{r}_f{f}.json.part"
        tmp.write_text(json.dumps({"proba": proba.tolist(), "record": record}))
        tmp.replace(self.dir / f"r{r}_f{f}.json")

    def clear(self) -> None:
        shutil.rmtree(self.dir.parent, ignore_errors=True)
