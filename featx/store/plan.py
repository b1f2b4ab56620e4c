"""What a run would compute, read only: before the engine is chosen, without the writer."""

from __future__ import annotations

from pathlib import Path

from featx.store.freshness import fingerprint, inputs_of
from featx.store.open import open_store


def rows_left(store, name: str, samples, *, with_mask: bool) -> int:
    """How many of ``samples`` a run of ``name`` would compute, read-only and without hashing: rows not computed,
    and computed rows whose file's path, size or mtime changed (a rerun hashes those; some may turn out fresh)."""
    samples = list(samples)
    if store is None or not Path(store).is_file():
        return len(samples)
    try:
        with open_store(store) as st:
            if name not in st.feature_names():
                return len(samples)
            index = {sid: i for i, sid in enumerate(st.sample_ids().tolist())}
            filled, rec = st.filled(name), st.sources(name)
    except Exception:  # noqa: BLE001 - a store the writer cannot open is named by the writer, with what to do
        return len(samples)
    cache: dict[Path, str] = {}
    left = 0
    for s in samples:
        r = index.get(s.sample_id)
        if r is None or r >= len(filled) or not filled[r]:
            left += 1
            continue
        source, stat = fingerprint(inputs_of(s, with_mask), cache)
        left += not stat or (source, stat) != (rec["source"][r], rec["stat"][r])
    return left
