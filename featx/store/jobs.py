"""The jobs of an array: ``--shard I/N`` (or ``slurm``), each a contiguous block of the manifest's rows."""

from __future__ import annotations

import os
from dataclasses import dataclass

from featx.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` of a manifest: a contiguous block of its rows (job ``index`` of an array)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> Shard | None:
        """``"I/N"`` (0 <= I < N), or ``"slurm"``: this job's place in a SLURM job array; None for no text."""
        if not text:
            return None
        if text == "slurm":
            try:
                task = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
                text = f"{task}/{int(os.environ['SLURM_ARRAY_TASK_COUNT'])}"
            except (KeyError, ValueError):
                raise ConfigError(
                    "--shard slurm reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, which are not set: run it "
                    "in a job array (sbatch --array=0-3), or give --shard I/N.",
                    "shard",
                ) from None
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            i, n = -1, 0
        if not 0 <= i < n:
            raise ConfigError(
                f"{text!r} is not a block of the manifest: give I/N with 0 <= I < N (job 0 of 4: 0/4).", "shard"
            )
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}of{self.count}"

    def positions(self, n: int) -> range:
        """The manifest positions (of ``n``) this shard computes."""
        return range(self.index * n // self.count, (self.index + 1) * n // self.count)


def check_shard(text: str | None) -> str | None:
    """A ``--shard`` value, checked (``slurm`` stays as it is: its job reads its own place when it runs)."""
    if text is not None and text != "slurm":
        Shard.parse(text)
    return text
