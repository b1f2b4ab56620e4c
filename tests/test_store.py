"""FeatureStore: keyed rows, round trip, growth, identity clash, missing sets, second writer."""

import subprocess
import sys
import time

import numpy as np
import pytest

from featx.dataset.manifest import Sample
from featx.errors import StoreError
from featx.store.open import open_store
from featx.store.store import FeatureStore


def _samples(ids, label="a"):
    return [Sample(sample_id=i, path=f"/x/{i}.png", label=label, subject=f"p{i}", split="train") for i in ids]


def test_round_trip_out_of_order_writes(tmp_path):
    path = tmp_path / "s.h5"
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    with FeatureStore(path, "a") as st:
        rows = st.add_samples(_samples("abcdef"))
        st.create_feature_set("f", 4, {"spec": {"name": "t"}}, identity="id1", kind="cnn")
        st.write("f", rows[[4, 1, 5]], X[[4, 1, 5]])  # scattered
        st.write("f", rows[[2, 3]], X[[2, 3]])  # contiguous slab
        st.mark_failed("f", [rows[0]], ["a.png: cannot decode image"])
    with open_store(path) as st:
        assert st.filled("f").tolist() == [False, True, True, True, True, True]
        assert st.errors("f")[0] == "a.png: cannot decode image"
        fs = st.load("f")
        assert fs.ids.tolist() == list("bcdef")
        np.testing.assert_array_equal(fs.X, X[1:])
        assert fs.labels.tolist() == ["a"] * 5 and fs.subjects.tolist() == [f"p{c}" for c in "bcdef"]
        assert fs.provenance == {"spec": {"name": "t"}}


def test_new_samples_append_and_grow_feature_sets(tmp_path):
    with FeatureStore(tmp_path / "s.h5", "a") as st:
        st.add_samples(_samples("ab"))
        st.create_feature_set("f", 3, {}, identity="i", kind="cnn")
        rows = st.add_samples(_samples("bcd", label="z"))  # b is known: keeps its row, label updated
        assert rows.tolist() == [1, 2, 3]
        assert st.filled("f").shape == (4,)
        assert st._column("label").tolist() == ["a", "z", "z", "z"]


def test_identity_clash_refused_unless_overwrite(tmp_path):
    with FeatureStore(tmp_path / "s.h5", "a") as st:
        st.add_samples(_samples("ab"))
        st.create_feature_set("f", 3, {"spec": {"name": "resnet18.tv_in1k"}}, identity="one", kind="cnn")
        st.write("f", np.array([0]), np.ones((1, 3)))
        st.create_feature_set("f", 3, {}, identity="one", kind="cnn")  # same settings: accepted, kept
        assert st.filled("f")[0]
        with pytest.raises(
            StoreError,
            match="'f' was made with different settings \\(spec.name: 'resnet18.tv_in1k' -> 'resnet18.random'\\).*--overwrite",
        ):
            st.create_feature_set("f", 3, {"spec": {"name": "resnet18.random"}}, identity="two", kind="cnn")
        st.create_feature_set("f", 3, {}, identity="two", kind="cnn", overwrite=True)
        assert not st.filled("f").any()


def test_missing_store_and_feature_set(tmp_path):
    with pytest.raises(StoreError, match="Store not found"):
        open_store(tmp_path / "none.h5")
    with FeatureStore(tmp_path / "s.h5", "a") as st:
        st.add_samples(_samples("a"))
        st.create_feature_set("resnet18", 2, {}, identity="i", kind="cnn")
    with open_store(tmp_path / "s.h5") as st:
        with pytest.raises(StoreError, match="no feature set 'vgg16' .*it has: resnet18"):
            st.load("vgg16")
        with pytest.raises(StoreError, match="no computed rows"):
            st.load("resnet18")


def test_not_a_store(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"hello")
    with pytest.raises(StoreError, match="x.h5 is not an HDF5 file"):
        open_store(tmp_path / "x.h5")


def test_second_writer_refused(tmp_path):
    path = tmp_path / "s.h5"
    FeatureStore(path, "a").close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import h5py, time; f = h5py.File({str(path)!r}, 'a'); print('ok', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError, match="s.h5 is open for writing by another process"):
            FeatureStore(path, "a")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    FeatureStore(path, "a").close()  # free again once the other writer is gone
