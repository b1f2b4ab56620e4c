"""Broken stores and folders each get their own one-line message naming the file and what to do, and a failed
open leaves nothing behind: truncated, not HDF5, damaged layout or block, read-only folder (locked: tests/test_store.py)."""

import errno
import os

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, featx

from featx.dataset.manifest import Manifest, Sample
from featx.errors import StoreError
from featx.store.open import open_store, store_writer
from featx.store.tools import compact_store


@pytest.fixture
def good(tmp_path):
    return make_store(tmp_path / "good.h5", "f", np.random.default_rng(0).random((20, 4)), ["a", "b"] * 10)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.endswith(".journal"))


def _write_something(path):
    man = Manifest([Sample(sample_id="x", path=path.parent / "x.png", label="a")])
    with store_writer(path) as w:
        w.register(man, "g", 2, {}, "id", "cnn")


def test_a_truncated_store_is_named_truncated_not_locked(good, tmp_path):
    cut = tmp_path / "cut.h5"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    proc = featx("fit", "-s", cut, "-f", "f", "--out", tmp_path / "out")
    assert_one_line_error(proc, f"{cut} is truncated ({len(data) // 2:,} of {len(data):,} bytes)")
    assert "locked" not in proc.stderr and "Restore it from a copy" in proc.stderr
    with pytest.raises(StoreError, match="is truncated"):  # the writer names the store, and copies nothing
        _write_something(cut)
    assert _leftovers(tmp_path) == []


def test_a_file_that_is_not_hdf5_and_a_damaged_layout(good, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(4096))
    assert_one_line_error(featx("store", "info", junk), f"{junk} is not an HDF5 file")
    import h5py

    with h5py.File(good, "a") as h5:
        del h5["features/f/outside"]
    proc = featx("fit", "-s", good, "-f", "f", "--out", tmp_path / "out")
    assert_one_line_error(proc, f"{good}: a damaged featx store (missing features/f/outside)")
    assert "internal error" not in proc.stderr
    with pytest.raises(StoreError, match="damaged featx store"):
        _write_something(good)
    assert _leftovers(tmp_path) == []


def test_a_read_only_folder_says_so(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).startswith(str(tmp_path)) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)  # root ignores chmod: refuse writes the way a read-only mount does
    with pytest.raises(StoreError, match=r"cannot write .*s\.h5\.lock: permission denied \(a read-only folder"):
        _write_something(tmp_path / "s.h5")
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []


def test_a_failed_transaction_open_leaves_no_copy(good, tmp_path, monkeypatch):
    import featx.store.writer as writer

    real = writer.ShardedStore

    def failing(path, mode="r", **kw):
        if mode == "a":
            raise StoreError(f"{path}: cannot open")
        return real(path, mode, **kw)

    monkeypatch.setattr(writer, "ShardedStore", failing)
    with pytest.raises(StoreError, match="cannot open"):
        _write_something(good)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("layout", ["sharded", "one file"])
def test_a_damaged_block_of_features_is_an_error_not_wrong_values(good, tmp_path, layout):
    import h5py

    if layout == "one file":
        compact_store(good)
        damaged = good
    else:
        with open_store(good) as st:
            (damaged,) = st.part_files()
    with h5py.File(damaged) as h5:
        info = h5["features/f/X" if layout == "one file" else "X"].id.get_chunk_info(0)
    data = bytearray(damaged.read_bytes())
    data[info.byte_offset + 5] ^= 0xFF  # one flipped byte inside the first block of features
    damaged.write_bytes(bytes(data))
    proc = featx("fit", "-s", good, "-f", "f", "--out", tmp_path / "out")
    assert_one_line_error(proc, f"{good}: feature set 'f' cannot be read, the file is damaged")
    if layout == "sharded":
        assert damaged.name in proc.stderr  # which file of the store
