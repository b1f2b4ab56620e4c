"""Reading at scale: a feature set is read once into one array (no whole-dataset copy), a subset of every row shares
it, and a fit the machine's free memory cannot hold is refused before anything is read, with its size and what to
do (benchmarks/fit_memory.py measures the peaks)."""

import h5py
import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, featx

import featx.evaluate.protocol.memory as memory
from featx.evaluate.protocol.memory import PER_JOB, fit_memory
from featx.store.open import open_store
from featx.store.sharded import ShardedStore
from featx.store.shards import read_rows
from featx.store.store import FeatureStore


def test_rows_are_read_in_runs_straight_into_one_array(tmp_path):
    X = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        ds = h5.create_dataset("X", data=X, chunks=(8, 3))
        for rows in (np.arange(40), np.array([0, 1, 2, 7, 9, 10, 39]), np.array([5]), np.array([], dtype=np.int64)):
            np.testing.assert_array_equal(read_rows(ds, rows), X[rows])


def test_a_subset_of_every_row_shares_the_matrix(tmp_path):
    store = make_store(tmp_path / "s.h5", "f", np.ones((6, 2)), list("ababab"))
    with open_store(store) as st:
        fs = st.load("f")
    same = fs.subset(np.ones(6, bool))
    assert np.shares_memory(same.X, fs.X) and same is not fs
    assert not np.shares_memory(fs.subset(np.arange(6) < 3).X, fs.X)


def test_a_fit_too_large_for_free_memory_is_refused_before_reading(tmp_path, monkeypatch):
    store = make_store(tmp_path / "s.h5", "f", np.ones((1000, 256), np.float32), list("ab") * 500)
    make_store(store, "g", np.ones((1000, 256), np.float32), list("ab") * 500)
    matrix = 1000 * 256 * 4
    assert fit_memory({"f": matrix}, 2) == int(matrix * (1 + 2 * PER_JOB))
    monkeypatch.setattr(memory, "available_memory", lambda: int(matrix * (1 + PER_JOB)) + 1)  # room for one job
    for layout in (FeatureStore, ShardedStore):
        monkeypatch.setattr(layout, "load", lambda *a: pytest.fail("read before the check"))
    assert_one_line_error(
        featx("fit", "-s", store, "-f", "f", "--jobs", "2"),
        "'f' is 1,000 rows x 256 features",
        "With --jobs 1 it needs about",
        "featx pool",
    )
    # a bench holds every set at once: two that one fit could take are too many together
    assert_one_line_error(featx("bench", "-s", store, "-f", "f,g", "--jobs", "1"), "fitting it with --jobs 1")
