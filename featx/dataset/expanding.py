"""Expanding a volume-level manifest row by row (into slices or lesions): every volume's problem collected, or
skipped and listed with ``--skip-bad``; one error naming them all otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable

from featx.dataset.manifest import Manifest, Sample
from featx.errors import FeatxError, ManifestError, short_list
from featx.progress import progress_bar

log = logging.getLogger(__name__)


def expand_each(
    volumes: Manifest,
    expand: Callable[[Sample], list[Sample]],
    *,
    title: str,
    cannot: str,
    nothing: str,
    skipped: list | None,
    progress: bool,
) -> Manifest:
    """``expand`` applied to each volume row, in order, as one manifest.

    ``cannot`` finishes "N volume(s) ..." in the error that lists the volumes ``expand`` failed on (each failure is
    appended to ``skipped`` instead, when given); ``nothing`` is the error when no row comes out.
    """
    out: list[Sample] = []
    problems: list[str] = []
    with progress_bar(title, total=len(volumes), enabled=progress) as bar:
        for vol in volumes:
            try:
                out += expand(vol)
            except FeatxError as exc:
                if skipped is None:
                    problems.append(str(exc))
                else:
                    skipped.append((str(vol.path), str(exc)))
                    log.warning("skipped %s: %s", vol.path, exc)
            bar.update()
    if problems:
        raise ManifestError(f"{len(problems)} volume(s) {cannot}: {short_list(problems)}")
    if not out:
        raise ManifestError(nothing)
    return Manifest(out, source=volumes.source)
