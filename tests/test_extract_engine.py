"""The extraction engine end to end: kill -9 and resume, incremental manifests, TTA, workers, clashes."""

import random
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import FEATX, assert_one_line_error, assert_usage_error, featx, stored
from test_writer import writer_in_another_process

from featx.api import extract
from featx.dataset.manifest import Manifest
from featx.store.journal import read_journal
from featx.store.open import open_store
from featx.store.store import OK, REMOVED

LITE0 = "efficientnet_lite0"


def _store_state(path):
    with open_store(path) as st:  # must open: a kill never leaves a broken store
        if LITE0 not in st.feature_names():
            return st.sample_ids(), None, None
    got = stored(path, LITE0)
    return got.ids, got.filled, got.X


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(reference, demo_subset, models_dir, tmp_path):
    ref_store, ref_X, ref_ids = reference
    store = tmp_path / "killed.h5"
    cmd = [
        FEATX,
        "extract",
        "-m",
        demo_subset / "subset.csv",
        "-b",
        LITE0,
        "-s",
        store,
        "--models-dir",
        models_dir,
        "--batch-size",
        "8",
    ]
    rng = random.Random(5)
    journal, record = tmp_path / "killed.h5.d" / "writers" / f"{LITE0}.all.journal", 8 * 1280 * 4  # ~ a batch
    # when to kill: during start-up; after a random number of journaled batches; in a transaction (the index copied,
    # the new shard written, the index not yet replaced); while the commit's shard is being written
    triggers = [
        ("time", rng.uniform(0.5, 2.5)),
        ("batches", rng.randint(1, 4)),
        ("batches", rng.randint(5, 9)),
        ("commit", None),
        ("shard", None),
        ("batches", rng.randint(2, 12)),
    ]
    filled_after_kill = []
    for kind, value in triggers:
        proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 60:
            if kind == "time" and time.monotonic() - t0 > value:
                break
            if kind == "batches" and _journal_of(journal, proc.pid) and journal.stat().st_size > value * record:
                break
            if kind == "commit" and list(tmp_path.glob("killed.h5.tmp*")):
                break
            if kind == "shard" and list(tmp_path.glob("killed.h5.d/*/*.h5.tmp")):
                break
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not store.exists():
            filled_after_kill.append(0)
            continue
        ids, filled, X = _store_state(store)
        assert ids.tolist() == ref_ids.tolist()
        saved = np.zeros(len(ref_ids), bool)
        if filled is not None:  # whatever is there is exactly what the uninterrupted run computed
            np.testing.assert_array_equal(X[filled], ref_X[filled])
            saved |= filled
        if journal.exists():  # and so are the rows the next run will take from the journal
            for ok, Xj, _, _ in read_journal(journal)[1]:
                rows = [entry.row for entry in ok]
                np.testing.assert_array_equal(Xj, ref_X[rows])
                saved[rows] = True
        filled_after_kill.append(int(saved.sum()))
    proc = featx(*cmd[1:])
    assert proc.returncode == 0, proc.stderr
    ids, filled, X = _store_state(store)
    assert filled.all() and ids.tolist() == ref_ids.tolist()
    np.testing.assert_array_equal(X, ref_X)
    # the kills did land at different moments, some mid-extraction (rows saved, then resumed)
    print("filled after each kill:", filled_after_kill)
    assert len(set(filled_after_kill)) >= 2 and any(0 < n < 120 for n in filled_after_kill), filled_after_kill
    assert not list(tmp_path.glob("killed.h5.tmp*")) and not journal.exists()
    assert not list(tmp_path.glob("killed.h5.d/*/*.tmp"))  # no half-written shard is left either


def _journal_of(path, pid) -> bool:
    try:
        return read_journal(path)[0].get("pid") == pid
    except OSError:
        return False


def _subset(demo_subset, n0, n1):
    m = Manifest.load(demo_subset / "subset.csv")
    return Manifest(list(m)[n0:n1])


def test_incremental_manifest_adds_new_and_flags_removed(demo_subset, models_dir, lite0, reference, tmp_path):
    _, ref_X, ref_ids = reference
    store = tmp_path / "inc.h5"
    s1 = extract(_subset(demo_subset, 0, 30), LITE0, store, models_dir=models_dir, progress=False)
    assert (s1.n_extracted, s1.n_already) == (30, 0)
    s2 = extract(_subset(demo_subset, 10, 40), LITE0, store, models_dir=models_dir, progress=False)
    assert (s2.n_extracted, s2.n_already, s2.n_removed) == (10, 20, 10)
    with open_store(store) as st:
        assert st.status(LITE0).tolist() == [REMOVED] * 10 + [OK] * 30
        fs = st.load(LITE0)
        assert fs.ids.tolist() == ref_ids[10:40].tolist()
        np.testing.assert_allclose(fs.X, ref_X[10:40], rtol=0, atol=1e-5)  # batch size 32 here, 8 there
        assert len(st.load(LITE0, include_removed=True)) == 40
        assert all(len(h) == 64 for h in st.sources(LITE0)["sha256"])


def test_tta_hflip_is_the_mean_of_image_and_mirror(demo_subset, models_dir, lite0, tmp_path):
    from featx.engines.runtime import OrtRuntime
    from featx.images.loader import SampleReader
    from featx.images.preprocess import Preprocessor

    m = _subset(demo_subset, 0, 6)
    s = extract(m, LITE0, tmp_path / "t.h5", models_dir=models_dir, tta="hflip", progress=False, name="lite0_tta")
    assert s.n_extracted == 6
    pre, read, ort = Preprocessor.from_spec(lite0[0]), SampleReader(), OrtRuntime(lite0[2].onnx_path)
    x = np.stack([pre(read(smp)) for smp in m])
    expected = (ort.run(x) + ort.run(np.ascontiguousarray(x[..., ::-1]))) / 2
    with open_store(tmp_path / "t.h5") as st:
        fs = st.load("lite0_tta")
        np.testing.assert_allclose(fs.X, expected, rtol=0, atol=1e-5)
        assert "mirror" in st.provenance("lite0_tta")["tta"]
        assert not np.allclose(fs.X, ort.run(x), atol=1e-3)  # the mirror does change the features
    with pytest.raises(Exception, match="decode: unknown value 'fork'. Choose one of: thread, process"):
        extract(m, LITE0, tmp_path / "t.h5", models_dir=models_dir, progress=False, decode="fork")
    # same name without TTA = other settings: refused, with the difference named
    with pytest.raises(Exception, match="different settings"):
        extract(m, LITE0, tmp_path / "t.h5", models_dir=models_dir, progress=False, name="lite0_tta")


def test_process_workers_give_the_same_rows_as_threads(demo_subset, models_dir, lite0, reference, tmp_path):
    _, ref_X, _ = reference
    s = extract(
        _subset(demo_subset, 0, 24),
        LITE0,
        tmp_path / "p.h5",
        models_dir=models_dir,
        decode="process",
        workers=2,
        batch_size=8,
        progress=False,
    )
    assert s.n_extracted == 24
    with open_store(tmp_path / "p.h5") as st:
        np.testing.assert_array_equal(st.load(LITE0).X, ref_X[:24])


def test_cli_refuses_second_writer_and_spec_clash(reference, demo_subset, models_dir, tmp_path):
    store = tmp_path / "busy.h5"
    with writer_in_another_process(store, LITE0) as pid:
        proc = featx("extract", "-m", demo_subset / "subset.csv", "-b", LITE0, "-s", store, "--models-dir", models_dir)
        assert_one_line_error(proc, f"feature set '{LITE0}' is being written by featx pid {pid}", "--shard I/N")
    ref_store = reference[0]
    proc = featx(
        "extract",
        "-m",
        demo_subset / "subset.csv",
        "-b",
        LITE0,
        "-s",
        ref_store,
        "--models-dir",
        models_dir,
        "--tta",
        "hflip",
        "--name",
        LITE0,
    )
    assert_one_line_error(proc, f"feature set '{LITE0}' was made with different settings", "--overwrite")


def test_store_info_and_export_round_trip(reference, tmp_path):
    import pyarrow.parquet as pq

    store, ref_X, ref_ids = reference
    proc = featx("store", "info", store)
    assert proc.returncode == 0, proc.stderr
    assert "120 samples" in proc.stdout and f"{LITE0} (cnn, 1280-d, efficientnet_lite0.tf_in1k" in proc.stdout
    assert "120 ok" in proc.stdout
    for fmt in ("csv", "parquet"):
        proc = featx("store", "export", store, "-f", LITE0, "-o", tmp_path / f"x.{fmt}")
        assert proc.returncode == 0 and "120 rows" in proc.stdout, proc.stderr
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.column_names[:7] == ["id", "label", "subject", "sequence", "split", "slice", "path"]
    assert table.column("id").to_pylist() == ref_ids.tolist()
    np.testing.assert_array_equal(np.stack([table.column(f"f{i:04d}").to_numpy() for i in range(1280)], 1), ref_X)
    rows = (tmp_path / "x.csv").read_text().splitlines()
    first = rows[1].split(",")
    assert len(rows) == 121 and first[0] == ref_ids[0] and first[1] in ("malignant", "normal_benign")
    np.testing.assert_array_equal(np.array(first[7:], dtype=np.float32), ref_X[0])
    assert_usage_error(
        featx("store", "export", store, "-f", LITE0, "-o", tmp_path / "x.xlsx"),
        "--format:",
        "unknown format 'xlsx'",
        "csv, parquet",
    )
    assert_one_line_error(featx("store", "info", tmp_path / "none.h5"), "Store not found")
    (tmp_path / "a_file").write_text("")
    assert_one_line_error(
        featx("store", "export", store, "-f", LITE0, "-o", tmp_path / "a_file" / "x.csv"),
        f"cannot write {tmp_path / 'a_file' / 'x.csv'}",
        "Choose another --out",
    )
