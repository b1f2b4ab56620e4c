"""The store's crash-safe writers: slots, journals, transactions, full disk, kill -9 inside a transaction."""

import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import numpy as np
import pytest

from featx.dataset.manifest import Sample
from featx.errors import StoreError
from featx.store.journal import RowDone, RowFailed, read_journal
from featx.store.open import open_store, store_writer
from featx.store.store import FAILED, OK, REMOVED


def _samples(ids):
    return [Sample(sample_id=i, path=f"/x/{i}.png", label="a") for i in ids]


def _setup(w, ids="abcdef", dim=3):
    with w.transaction() as st:
        rows = st.add_samples(_samples(ids))
        st.create_feature_set("f", dim, {"spec": {"name": "t"}}, identity="id1", kind="cnn")
    return rows


def _run(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_journal_rows_reach_store_on_commit(tmp_path):
    path = tmp_path / "s.h5"
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    with store_writer(path) as w:
        rows = _setup(w)
        j = w.start_journal("f", "id1", 3)
        j.append(
            [RowDone(int(rows[1]), "b", "h1"), RowDone(int(rows[3]), "d", "h3")],
            X[[1, 3]],
            [RowFailed(int(rows[0]), "a", "a.png: bad")],
        )
        with open_store(path) as st:  # readers see the last committed state while a run goes on
            assert not st.filled("f").any()
    with open_store(path) as st:
        assert st.filled("f").tolist() == [False, True, False, True, False, False]
        np.testing.assert_array_equal(st.load("f").X, X[[1, 3]])
        assert st.status("f")[:2].tolist() == [FAILED, OK] and st.errors("f")[0] == "a.png: bad"
        assert st.sources("f")["sha256"][[1, 3]].tolist() == ["h1", "h3"]
    assert not w.journal_path.exists()


def test_torn_journal_tail_is_ignored_and_recovered_by_next_writer(tmp_path):
    path = tmp_path / "s.h5"
    with store_writer(path) as w:
        _setup(w)
    # a run that dies after two batches, in the middle of writing the third
    w2 = store_writer(path).__enter__()
    j = w2.start_journal("f", "id1", 3)
    jpath = w2.journal_path
    j.append([RowDone(0, "a", "")], np.ones((1, 3), np.float32), [])
    j.append([RowDone(1, "b", "")], np.full((1, 3), 2, np.float32), [])
    j._f.close()
    w2._slot.release()  # as the kernel does when the process dies
    with open(jpath, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x12\x34")  # a frame header and a few bytes of a payload
    header, recs = read_journal(jpath)
    assert header["feature_set"] == "f" and len(list(recs)) == 2
    with store_writer(path):
        pass  # the next writer applies what the killed one journaled
    with open_store(path) as st:
        assert st.filled("f").tolist() == [True, True, False, False, False, False]
        np.testing.assert_array_equal(st.load("f").X, [[1, 1, 1], [2, 2, 2]])
    assert not jpath.exists()


def _one_journaled_row(path, identity):
    """A store with feature set 'f' (identity id1), and a run that journaled row 'a' under ``identity``."""
    with store_writer(path) as w:
        _setup(w)
        j = w.start_journal("f", identity, 3)
        j.append([RowDone(0, "a", "")], np.ones((1, 3), np.float32), [])


def test_journal_of_other_settings_is_not_applied(tmp_path):
    path = tmp_path / "s.h5"
    _one_journaled_row(path, "other-identity")
    with open_store(path) as st:
        assert not st.filled("f").any()


@contextmanager
def writer_in_another_process(path, feature_set="f"):
    """Another process writes ``feature_set`` of the store until the block ends (then it is killed); yields its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from featx.store.writer import store_writer\n"
            f"w = store_writer({str(path)!r}).__enter__(); w.start_journal({feature_set!r}, 'id1', 3)\n"
            "print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_second_writer_of_one_set_and_shard_refused_while_first_runs(tmp_path):
    path = tmp_path / "s.h5"
    with writer_in_another_process(path) as pid:
        with store_writer(path) as w:  # the store is open to other writers ...
            _setup(w)
            w.start_journal("g", "id1", 3)  # ... and to other feature sets
        with pytest.raises(StoreError, match=f"feature set 'f' is being written by featx pid {pid}.*--shard I/N"):
            store_writer(path).__enter__().start_journal("f", "id1", 3)
    with store_writer(path) as w:  # the kernel released the lock with the killed process
        w.start_journal("f", "id1", 3)


def test_kill_inside_a_transaction_leaves_the_previous_store(tmp_path):
    path = tmp_path / "s.h5"
    _one_journaled_row(path, "id1")
    before = path.read_bytes()
    proc = _run(
        """
        import os, signal, sys
        import numpy as np
        from featx.dataset.manifest import Sample
        from featx.store.writer import store_writer
        w = store_writer(sys.argv[1]).__enter__()
        with w.transaction() as st:
            st.add_samples([Sample(sample_id=f"n{i}", path="/x.png") for i in range(500)])
            st.write("f", np.arange(6), np.zeros((6, 3)))
            st.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """,
        path,
    )
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before and list(tmp_path.glob("s.h5.tmp*"))  # the half-made copy is aside
    with store_writer(path):
        pass
    assert not list(tmp_path.glob("s.h5.tmp*"))  # and cleared by the next writer
    with open_store(path) as st:
        assert st.n_samples == 6 and st.filled("f").tolist() == [True] + [False] * 5


def test_full_disk_keeps_what_was_written(tmp_path):
    """A file-size limit makes every write past it fail as on a full disk (EFBIG, handled like ENOSPC):
    the journal fills after two batches, and the final commit cannot even copy the store."""
    path = tmp_path / "s.h5"
    with store_writer(path) as w:
        _setup(w, dim=256)
    proc = _run(
        """
        import resource, sys
        import numpy as np
        from featx.store.journal import RowDone
        from featx.store.writer import store_writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
        with store_writer(sys.argv[1]) as w:
            j = w.start_journal("f", "id1", 256)
            for r, sid in enumerate("abcdef"):
                j.append([RowDone(r, sid, "")], np.full((1, 256), r, np.float32), [])
    """,
        path,
        2600,
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr  # a library call raises; the CLI prints one line
    assert "f.all.journal: the disk is full. The 2 rows before this batch are kept in it" in proc.stderr
    assert "the disk is full" in proc.stderr.split("StoreError")[0]  # the failed commit: a warning, not a crash
    with open_store(path) as st:  # the store itself is intact ...
        assert not st.filled("f").any()
    with store_writer(path):  # ... and once there is space the journaled rows are applied
        pass
    with open_store(path) as st:
        assert st.filled("f").tolist() == [True, True, False, False, False, False]


def test_membership_flags_removed_rows_and_load_leaves_them_out(tmp_path):
    path = tmp_path / "s.h5"
    with store_writer(path) as w:
        rows = _setup(w, "abc")
        with w.transaction() as st:
            st.write("f", rows, np.eye(3))
            rows2 = st.add_samples(_samples("ac"))
            assert st.mark_membership("f", rows2) == 1
    with open_store(path) as st:
        assert st.status("f").tolist() == [OK, REMOVED, OK]
        assert st.load("f").ids.tolist() == ["a", "c"]
        assert st.load("f", include_removed=True).ids.tolist() == ["a", "b", "c"]


def test_float64_journal_of_a_killed_radiomics_run_is_recovered_bit_for_bit(tmp_path):
    """Radiomics rows are float64 with mask hashes and notes; a killed run's journal keeps all of it."""
    path = tmp_path / "s.h5"
    with store_writer(path) as w, w.transaction() as st:
        st.add_samples(_samples("abc"))
        st.create_feature_set(
            "r", 2, {"kind": "radiomics"}, identity="r1", kind="radiomics", dtype="float64", feature_names=["f1", "f2"]
        )
    X = np.array([[np.pi, 1e300], [1 / 3, -2.5e-310]])  # values float32 cannot hold
    w2 = store_writer(path).__enter__()
    j = w2.start_journal("r", "r1", 2, dtype="<f8")
    j.append(
        [RowDone(0, "a", "ha", "ma"), RowDone(2, "c", "hc", "mc", "pyradiomics returned NaN/inf for 1 feature(s): f2")],
        X,
        [RowFailed(1, "b", "b: mask empty", "hb", "mb")],
    )
    j._f.close()
    w2._slot.release()  # killed before its commit
    with store_writer(path):
        pass
    with open_store(path) as st:
        fs = st.load("r")
        assert fs.X.dtype == np.float64 and np.array_equal(fs.X, X) and fs.feature_names == ["f1", "f2"]
        assert st.notes("r").tolist() == ["", "", "pyradiomics returned NaN/inf for 1 feature(s): f2"]
        assert st.sources("r")["mask_sha256"].tolist() == ["ma", "mb", "mc"]
        assert st.status("r").tolist() == [OK, FAILED, OK]
