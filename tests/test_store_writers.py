"""Many writers on one store (issue 31): two backbones and radiomics at once, four shard jobs of one feature set, a
killed shard job rerun, the store compacted to one file and sharded again, and a store an earlier featx made."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import FEATX, assert_usage_error, featx, stored

from featx.dataset.manifest import Manifest, Sample
from featx.errors import ConfigError
from featx.store.open import Shard, open_store, store_writer
from featx.store.tools import compact_store

LITE0 = "efficientnet_lite0"


def _spawn(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [FEATX, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(procs) -> None:
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err


def _first(demo_subset, n, tmp_path) -> os.PathLike:
    csv = tmp_path / f"first{n}.csv"
    Manifest(list(Manifest.load(demo_subset / "subset.csv"))[:n]).to_csv(csv)
    return csv


@pytest.mark.slow
def test_two_backbones_and_radiomics_write_one_store_at_once(
    demo_subset, models_dir, resnet18_random, reference, lite0_radiomics, tmp_path
):
    _, ref_X, ref_ids = reference
    ref_store, (_, rad_name), _ = lite0_radiomics
    csv = _first(demo_subset, 48, tmp_path)
    store = tmp_path / "three.h5"
    common = ["-m", csv, "-s", store, "--models-dir", models_dir, "--batch-size", "8"]
    procs = [
        _spawn("extract", "-b", LITE0, *common),
        _spawn("extract", "-b", "resnet18", "--weights", "random", *common),
        _spawn("radiomics", "-m", csv, "-s", store, "--auto-mask", "whole", "--mode", "2d", "--jobs", "1"),
    ]
    _finish(procs)
    lite0 = stored(store, LITE0)
    assert lite0.names == sorted([LITE0, "resnet18.random", rad_name])
    assert lite0.ids.tolist() == ref_ids[:48].tolist()  # one samples table, grown by three writers, no row twice
    np.testing.assert_array_equal(lite0.X, ref_X[:48])  # equal to the single-process run, bit for bit
    rad, ref_rad = stored(store, rad_name), stored(ref_store, rad_name)
    np.testing.assert_array_equal(rad.X, ref_rad.X[:48])
    single = tmp_path / "single.h5"
    assert (
        featx("extract", "-b", "resnet18", "--weights", "random", *common[:2], "-s", single, *common[4:]).returncode
        == 0
    )
    np.testing.assert_array_equal(stored(store, "resnet18.random").X, stored(single, "resnet18.random").X)
    with open_store(store) as st:  # each set's provenance is its own writer's
        assert st.provenance(rad_name)["kind"] == "radiomics" and st.provenance(LITE0)["spec"]["name"].startswith(LITE0)


def _journaled_rows(store) -> int:
    """Rows the shard job's journal holds now (0 when it has none yet)."""
    from featx.store.journal import read_journal

    total = 0
    for j in (store.parent / f"{store.name}.d" / "writers").glob("*2of4.journal"):
        try:
            total += sum(len(b.done) for b in read_journal(j)[1])
        except (OSError, ValueError):
            pass
    return total


@pytest.mark.slow
def test_four_shard_jobs_fill_one_set_and_a_killed_one_resumes(demo_subset, models_dir, reference, tmp_path):
    _, ref_X, ref_ids = reference
    csv = _first(demo_subset, 96, tmp_path)  # 24 rows a job: whole batches of 8, as in the reference run
    store = tmp_path / "sharded.h5"
    common = ["extract", "-m", csv, "-b", LITE0, "-s", store, "--models-dir", models_dir, "--batch-size", "8"]
    procs = {i: _spawn(*common, "--shard", f"{i}/4") for i in range(4)}
    t0 = time.monotonic()
    while _journaled_rows(store) < 8 and time.monotonic() - t0 < 120 and procs[2].poll() is None:
        time.sleep(0.005)
    procs[2].send_signal(signal.SIGKILL)  # job 2 dies with some rows journaled, none committed
    assert procs[2].wait() == -signal.SIGKILL
    _finish([procs[i] for i in (0, 1, 3)])
    got = stored(store, LITE0)
    done = np.flatnonzero(got.filled)
    assert got.ids.tolist() == ref_ids[:96].tolist()
    assert set(range(0, 48)) | set(range(72, 96)) <= set(done.tolist())  # the other jobs' blocks are in
    np.testing.assert_array_equal(got.X[done], ref_X[done])
    # the rerun of job 2 (as the job array's retry would) takes the killed job's journal and finishes its block
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}
    _finish([_spawn(*common, "--shard", "slurm", env=env)])
    got = stored(store, LITE0)
    assert got.filled.all()
    np.testing.assert_array_equal(got.X, ref_X[:96])
    assert not list((tmp_path / "sharded.h5.d" / "writers").glob("*.journal"))
    # one file to share: equal rows, readable by plain h5py; the next writer shards it again without copying
    shared = tmp_path / "shared.h5"
    compact_store(store, shared)
    import h5py

    with h5py.File(shared) as h5:
        np.testing.assert_array_equal(h5[f"features/{LITE0}/X"][:], ref_X[:96])
    compact_store(store)
    assert not (tmp_path / "sharded.h5.d").exists() and stored(store, LITE0).X.tobytes() == ref_X[:96].tobytes()
    proc = featx(*common)  # nothing left to compute: the run upgrades the one file to the sharded layout
    assert proc.returncode == 0, proc.stderr
    with open_store(store) as st:
        assert st.attrs()["format"] == "featx-store/2" and len(st.load(LITE0)) == 96


def test_shard_option_parses_job_arrays(monkeypatch):
    assert Shard.parse("1/4") == Shard(1, 4) and Shard.parse(None) is None
    assert [list(Shard(i, 4).positions(10)) for i in range(4)] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert Shard.parse("slurm") == Shard(2, 4)  # --array=1-4: the second job is shard 1 ... the third is 2
    for bad in ("4/4", "x", "1/0", "-1/3"):
        with pytest.raises(ConfigError, match="give I/N with 0 <= I < N"):
            Shard.parse(bad)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    with pytest.raises(ConfigError, match="not set: run it in a job array"):
        Shard.parse("slurm")
    assert_usage_error(featx("extract", "-m", "m.csv", "-b", LITE0, "-s", "s.h5", "--shard", "5/4"), "--shard")


def _snapshot(path) -> dict:
    """Everything a store says about its samples and sets, through the reading interface."""
    with open_store(path) as st:
        out = {"ids": st.sample_ids().tolist(), "outcomes": {c: st._outcome(c).tolist() for c in st.outcome_names()}}
        for name in st.feature_names():
            fs = st.load(name, include_removed=True)
            sig = st.signatures(name)
            out[name] = {
                "X": fs.X.tobytes(),
                "ids": fs.ids.tolist(),
                "status": st.status(name).tolist(),
                "errors": st.errors(name).tolist(),
                "notes": st.notes(name).tolist(),
                "sources": {c: v.tolist() for c, v in st.sources(name).items()},
                "signatures": None if sig is None else sig.tobytes(),
                "provenance": st.provenance(name),
                "identity": st.identity(name),
                "columns": st.column_names(name),
            }
    return out


def test_a_store_an_earlier_featx_made_opens_upgrades_and_compacts_without_loss(models_dir, resnet18_random, tmp_path):
    import gzip
    import shutil

    from featx.store.store import FAILED, OK, REMOVED
    from featx.store.writer import store_writer

    fixture = Path(__file__).parent / "data" / "store_v1"
    shutil.copytree(fixture / "images", tmp_path / "images")
    store = tmp_path / "old.h5"
    store.write_bytes(gzip.decompress((fixture / "store_v1.h5.gz").read_bytes()))
    before = _snapshot(store)  # read as it is: one file, featx-store/1
    assert before["resnet18.random"]["status"] == [OK] * 4 + [REMOVED] * 2
    assert (
        before["radiomics.default"]["status"][5] == FAILED and "broken.png" in before["radiomics.default"]["errors"][5]
    )
    assert before["outcomes"]["age"] == ["61", "61", "47", "55", "70", "39"]
    inode = store.stat().st_ino
    with store_writer(store):  # the first writer upgrades it
        pass
    with open_store(store) as st:
        assert st.attrs()["format"] == "featx-store/2"
        (base,) = st.part_files()
    assert base.stat().st_ino == inode  # the old file is the sets' first part: linked, not copied
    assert _snapshot(store) == before
    # a rerun on the images (now elsewhere: hashed, found unchanged) computes nothing, and a new set can be added
    man = tmp_path / "m.csv"
    man.write_text((fixture / "manifest_later.csv").read_text())
    args = ["-m", man, "-s", store, "--models-dir", models_dir]
    proc = featx("extract", "-b", "resnet18", "--weights", "random", *args)
    assert proc.returncode == 0 and "0 extracted, 4 already in the store" in proc.stdout, proc.stderr
    new = featx("radiomics", "-m", man, "-s", store, "--auto-mask", "otsu", "--mode", "2d", "--name", "radiomics.otsu")
    assert new.returncode == 0, new.stderr
    after = _snapshot(store)
    assert after["resnet18.random"]["X"] == before["resnet18.random"]["X"]
    # one file again (featx-store/1, what earlier featx reads), with every row and column of before
    compact_store(store)
    again = _snapshot(store)
    assert not (tmp_path / "old.h5.d").exists()
    for name in ("resnet18.random", "radiomics.default"):
        assert {k: v for k, v in again[name].items() if k != "sources"} == {
            k: v for k, v in after[name].items() if k != "sources"
        }
        assert again[name]["sources"] == after[name]["sources"]


def _samples(n, prefix="s"):
    return [Sample(sample_id=f"{prefix}{i:03d}", path=f"/x/{prefix}{i}.png", label="ab"[i % 2]) for i in range(n)]


def test_a_commit_writes_its_rows_and_the_index_and_touches_nothing_else(tmp_path):
    from featx.store.journal import RowDone

    store = tmp_path / "s.h5"
    big = np.random.default_rng(0).random((4096, 1024), np.float32)
    with store_writer(store) as w, w.transaction() as st:  # a set already there: 17 MB in one shard
        rows = st.add_samples(_samples(4096))
        st.create_feature_set("big", 1024, {}, "big", kind="cnn")
        st.write("big", rows, big)
    with open_store(store) as st:
        (big_file,) = st.part_files()
    before = (big_file.stat().st_ino, big_file.stat().st_mtime_ns)
    copies = []
    real_copy = shutil.copyfile
    with pytest.MonkeyPatch.context() as mp:  # every file a writer copies, and its size
        mp.setattr(shutil, "copyfile", lambda a, b: copies.append(Path(a).stat().st_size) or real_copy(a, b))
        with store_writer(store) as w:
            reg = w.register(_samples(8, "new"), "small", 4, {}, "small", "cnn")
            j = w.start_journal("small", "small", 4)
            j.append([RowDone(r, s.sample_id, "h") for r, s in reg.todo], np.ones((8, 4), np.float32), [])
    assert (big_file.stat().st_ino, big_file.stat().st_mtime_ns) == before  # the other set: not read, not copied
    assert copies and max(copies) < big.nbytes / 10  # only the index (1 MB: 4,104 samples) was copied, twice
    with open_store(store) as st:
        assert len(st.load("small")) == 8 and np.array_equal(st.load("big").X, big)


def test_shards_of_cluster_workers_a_killed_driver_journaled_are_committed_by_the_next_writer(tmp_path):
    from featx.store.shards import OK, write_shard

    store = tmp_path / "s.h5"
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = store_writer(store).__enter__()
    reg = w.register(_samples(5), "f", 4, {}, "id", "cnn")
    journal = w.start_journal("f", "id", 4)
    w.incoming.mkdir()
    rows = [r for r, _ in reg.todo[:3]]
    cols = {"sha256": ["h0", "h1", "h2"], "source": ["a", "b", "c"]}
    shard = write_shard(w.incoming, "f", "id", rows, ["s000", "s001", "s002"], [OK] * 3, X, cols)  # a worker's
    journal.adopt(shard, ok=3, failed=0)
    orphan = write_shard(w.incoming, "f", "id", [4], ["s004"], [OK], X[:1], {})  # written, never journaled
    journal._f.close()
    w._slot.release()  # the driver dies before its commit
    with store_writer(store):
        pass
    with open_store(store) as st:
        fs = st.load("f")
        assert fs.ids.tolist() == ["s000", "s001", "s002"] and np.array_equal(fs.X, X)
        assert st.sources("f")["sha256"][:3].tolist() == ["h0", "h1", "h2"]
    assert not shard.exists() and not orphan.exists() and not w.incoming.exists()
    with store_writer(store) as w2:  # committed once: a journal replayed again adds no shard twice
        w2.start_journal("f", "id", 4)
    with open_store(store) as st:
        assert len(st.parts("f")) == 2  # the register's record of sources, and the worker's shard


def test_the_last_part_holding_a_row_wins_across_many_commits(tmp_path):
    """Rows written, rewritten, failed and forgotten over six commits read as a model of the same steps says, in
    both layouts."""
    rng = np.random.default_rng(3)
    store, want = tmp_path / "s.h5", {}
    for k in range(6):
        with store_writer(store) as w, w.transaction() as st:
            if k == 0:
                st.add_samples(_samples(50))
                st.create_feature_set("f", 3, {}, "id", kind="cnn")
            rows = np.sort(rng.choice(50, 12, replace=False))
            X = rng.random((12, 3)).astype(np.float32)
            st.write("f", rows, X)
            want.update({int(r): x for r, x in zip(rows, X)})
            bad = [int(r) for r in rng.choice(50, 3, replace=False)]
            st.mark_failed("f", bad, ["bad"] * 3)
            gone = [int(r) for r in rng.choice(50, 2, replace=False)]
            st.invalidate("f", gone)
            for r in bad + gone:
                want.pop(r, None)
    expect = sorted(want)
    for layout in ("sharded", "one file"):
        if layout == "one file":
            compact_store(store)
        with open_store(store) as st:
            fs = st.load("f")
            assert fs.ids.tolist() == [f"s{r:03d}" for r in expect], layout
            np.testing.assert_array_equal(fs.X, np.stack([want[r] for r in expect]))


def test_the_docs_plain_h5py_reading_of_a_sharded_store_is_right(tmp_path, monkeypatch):
    import re

    from conftest import make_store

    page = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if 'h5py.File("features.h5")' in b]
    X = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    make_store(tmp_path / "features.h5", "resnet18", X, ["a", "b"] * 5)
    with store_writer(tmp_path / "features.h5") as w, w.transaction() as st:  # a second part: one row replaced,
        st.write("resnet18", [2], np.ones((1, 4), np.float32))  # one failed
        st.mark_failed("resnet18", [5], ["bad"])
    X[2], X[5] = 1, np.nan
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(code, scope)
    np.testing.assert_array_equal(scope["X"], X)


_REGISTER = """
import sys
import numpy as np
from featx.dataset.manifest import Sample
from featx.store.journal import RowDone
from featx.store.open import store_writer
k = int(sys.argv[2])
samples = [Sample(sample_id=f"w{k}_{i:03d}", path=f"/x/{k}/{i}.png", label="a") for i in range(150)]
samples += [Sample(sample_id=f"shared{i:03d}", path=f"/x/s{i}.png", label="b") for i in range(20)]
with store_writer(sys.argv[1]) as w:
    reg = w.register(samples, f"set{k}", 2, {}, f"id{k}", "cnn")
    j = w.start_journal(f"set{k}", f"id{k}", 2)
    j.append([RowDone(r, s.sample_id, "h") for r, s in reg.todo], np.full((len(reg.todo), 2), k, np.float32), [])
"""


def test_writers_adding_samples_at_once_grow_one_table_each_sample_once(tmp_path):
    import sys

    store = tmp_path / "s.h5"
    procs = [
        subprocess.Popen([sys.executable, "-c", _REGISTER, str(store), str(k)], stderr=subprocess.PIPE, text=True)
        for k in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    with open_store(store) as st:
        ids = st.sample_ids().tolist()
        assert len(ids) == len(set(ids)) == 4 * 150 + 20  # every writer's samples, the shared ones once
        for k in range(4):
            fs = st.load(f"set{k}")
            assert sorted(fs.ids.tolist()) == sorted(
                [f"w{k}_{i:03d}" for i in range(150)] + [f"shared{i:03d}" for i in range(20)]
            )
            assert (fs.X == k).all()
