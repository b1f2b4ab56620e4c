"""featx pool: stored rows pooled per subject or volume, equal to numpy's pooling, kept fresh when the source changes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_one_line_error, featx

from featx import api
from featx.errors import FitError
from featx.store.open import open_store
from featx.store.pooled import pool_feature_set
from featx.store.writer import store_writer


@pytest.fixture
def slices(tmp_path):
    """24 subjects x 3 slice rows, a class signal, the last 4 subjects in the test split."""
    rng = np.random.default_rng(0)
    subjects = [f"p{s:02d}" for s in range(24) for _ in range(3)]
    labels = ["tumour" if int(s[1:]) % 2 else "none" for s in subjects]
    splits = ["test" if int(s[1:]) >= 20 else "train" for s in subjects]
    X = rng.normal(size=(72, 6)) + 0.8 * np.array([lab == "tumour" for lab in labels])[:, None]
    ids = [f"{s}_z{i % 3}" for i, s in enumerate(subjects)]
    store = make_store(tmp_path / "f.h5", "deep", X, labels, subjects=subjects, splits=splits, ids=ids)
    return store, X.astype(np.float32), np.array(subjects)


@pytest.mark.parametrize("how", ["mean", "max", "mean+max"])
def test_pooled_rows_equal_numpys_pooling_of_each_subjects_stored_rows(slices, how):
    store, X, subjects = slices
    s = pool_feature_set(store, "deep", "subject", how)
    assert s.name == f"deep~subject-{how}" and s.groups == 24 and s.rows == 72 and len(s.updated) == 24
    fs = api.load_features(store, s.name)
    assert len(fs) == 24 and sorted(fs.ids) == [f"subject:p{i:02d}" for i in range(24)]
    for sid, row, subject in zip(fs.ids, fs.X, fs.subjects):
        rows = X[subjects == subject]
        want = {"mean": [rows.mean(0)], "max": [rows.max(0)], "mean+max": [rows.mean(0), rows.max(0)]}[how]
        np.testing.assert_allclose(row, np.concatenate(want), rtol=1e-6, atol=1e-7)  # float32 storage
        assert sid == f"subject:{subject}"
    with open_store(store) as st:
        prov = st.provenance(s.name)["pooled"]
    assert prov["from"] == "deep" and prov["rows_per_group"] == [3] * 24 and prov["how"] == how
    assert set(fs.splits) == {"train", "test"} and (fs.splits == "test").sum() == 4


def test_a_changed_source_row_makes_its_group_stale_until_pooled_again(slices):
    store, X, subjects = slices
    pool_feature_set(store, "deep", "subject", "mean")
    res = api.fit(store, "deep~subject-mean", head="logreg", cv=4, bootstrap=0)
    assert res.n_dev == 20 and res.n_test == 4 and res.cv.pooled.auc > 0.7
    with store_writer(store) as w, w.transaction() as st:  # as a rerun of extract writes a recomputed row
        row = int(np.flatnonzero(st.sample_ids() == "p05_z1")[0])
        st.write("deep", [row], np.full((1, 6), 9.0, np.float32))
    with pytest.raises(
        FitError, match=r"pooled from 'deep', whose rows changed since for 1 group\(s\) \(subject:p05\)"
    ):
        api.fit(store, "deep~subject-mean", head="logreg", cv=4, bootstrap=0)
    again = pool_feature_set(store, "deep", "subject", "mean")
    assert again.updated == ["subject:p05"] and again.unchanged == 23
    fs = api.load_features(store, "deep~subject-mean")
    expected = X[subjects == "p05"].copy()
    expected[1] = 9.0
    want = expected.astype(np.float64).mean(0).astype(np.float32)
    np.testing.assert_allclose(fs.X[list(fs.ids).index("subject:p05")], want, rtol=1e-6, atol=1e-7)
    api.fit(store, "deep~subject-mean", head="logreg", cv=4, bootstrap=0)


def test_the_cli_pools_by_volume_and_refuses_groups_whose_labels_differ(slices, tmp_path):
    store, _, _ = slices
    proc = featx("pool", "-s", store, "--from", "deep", "--by", "volume", "--how", "max", "--name", "by_file")
    assert proc.returncode == 0, proc.stderr
    assert "by_file: 72 pooled rows from 72 rows of deep" in proc.stdout  # each row names a file of its own here
    mixed = make_store(
        tmp_path / "m.h5", "deep", np.zeros((4, 2)), ["a", "b", "a", "b"], subjects=["p1", "p1", "p2", "p2"]
    )
    assert_one_line_error(featx("pool", "-s", mixed, "--from", "deep"), "Group 'p1'", "labels ['a', 'b']")
    proc = featx("pool", "-s", mixed, "--from", "deep", "--how", "median")
    assert proc.returncode == 2 and "mean, max, mean+max" in proc.stderr


def _slice_store(path, X, vols, labels, subjects):
    """A store of slice rows (several per volume file), as `manifest build --slices` registers them."""
    from featx.dataset.manifest import Manifest, Sample

    man = Manifest(
        [
            Sample(sample_id=f"{v.stem}_z{i}", path=v, label=lab, subject=sub, slice=i)
            for i, (v, lab, sub) in enumerate(zip(vols, labels, subjects))
        ]
    )
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set("slices2d", X.shape[1], {"kind": "cnn"}, "id", kind="cnn")
        st.write("slices2d", rows, X)
    return path


def test_slices_pool_onto_the_lesion_rows_of_a_lesion_manifest(tmp_path):
    """--by lesion: each volume's slice rows are pooled onto that volume's lesion row (its id, label and subject)."""
    from featx.dataset.manifest import Manifest, Sample

    rng = np.random.default_rng(1)
    files = [tmp_path / f"case{i}.nrrd" for i in range(4)]
    per = [2, 3, 4, 1]  # slices per volume
    vols = [f for f, k in zip(files, per) for _ in range(k)]
    labels = [("II" if f.stem in ("case0", "case2") else "IV") for f in vols]
    subjects = [f"p{f.stem[-1]}" for f in vols]
    X = rng.normal(size=(len(vols), 5)).astype(np.float32)
    store = _slice_store(tmp_path / "f.h5", X, vols, labels, subjects)
    lesions = Manifest(
        [
            Sample(sample_id=f"{f.stem}_lesion1", path=tmp_path / "." / f.name, label=lab, subject=f"p{i}")
            for i, (f, lab) in enumerate(zip(files, ["II", "IV", "II", "IV"]))
        ]
    )
    s = pool_feature_set(store, "slices2d", "lesion", "mean+max", "pooled2d", lesions)
    assert s.groups == 4 and s.rows == 10
    fs = api.load_features(store, "pooled2d")
    assert sorted(fs.ids) == [f"case{i}_lesion1" for i in range(4)]
    owner = np.array([str(v) for v in vols])
    for sid, row, lab, sub in zip(fs.ids, fs.X, fs.labels, fs.subjects):
        rows = X[owner == str(tmp_path / f"{sid.split('_')[0]}.nrrd")]
        np.testing.assert_allclose(row, np.concatenate([rows.mean(0), rows.max(0)]), rtol=1e-6, atol=1e-7)
        assert (lab, sub) == ({"case0": "II", "case1": "IV", "case2": "II", "case3": "IV"}[sid[:5]], f"p{sid[4]}")
    with store_writer(store) as w, w.transaction() as st:  # a slice of case2 recomputed: its lesion is stale
        st.write("slices2d", [int(np.flatnonzero(st.sample_ids() == "case2_z5")[0])], np.ones((1, 5), np.float32))
    with pytest.raises(FitError, match=r"changed since for 1 group\(s\) \(case2_lesion1\)"):
        api.fit(store, "pooled2d", head="logreg", cv=2, bootstrap=0)
    assert pool_feature_set(store, "slices2d", "lesion", "mean+max", "pooled2d", lesions).updated == ["case2_lesion1"]


def test_lesion_pooling_refuses_what_it_cannot_pool_in_one_line(tmp_path):
    from featx.dataset.manifest import Manifest, Sample
    from featx.errors import ConfigError

    vols = [tmp_path / "a.nrrd", tmp_path / "a.nrrd", tmp_path / "b.nrrd"]
    store = _slice_store(tmp_path / "f.h5", np.zeros((3, 2), np.float32), vols, ["II", "II", "IV"], ["p", "p", "q"])
    lesion = lambda sid, f, lab: Sample(sample_id=sid, path=tmp_path / f, label=lab, subject=sid)  # noqa: E731
    with pytest.raises(ConfigError, match="--lesions lesions.csv"):
        pool_feature_set(store, "slices2d", "lesion")
    with pytest.raises(ConfigError, match="for --by lesion"):
        pool_feature_set(store, "slices2d", "subject", lesions=Manifest([lesion("p", "a.nrrd", "II")]))
    with pytest.raises(FitError, match=r"1 lesion\(s\) have no computed slice row in 'slices2d' \(c\)"):
        extra = Manifest([lesion("p", "a.nrrd", "II"), lesion("c", "c.nrrd", "II")])
        pool_feature_set(store, "slices2d", "lesion", lesions=extra)
    with pytest.raises(FitError, match=r"lesion 'p' is label 'IV' but its slice rows in 'slices2d' say \['II'\]"):
        pool_feature_set(store, "slices2d", "lesion", lesions=Manifest([lesion("p", "a.nrrd", "IV")]))
    two = Manifest([lesion("p1", "a.nrrd", "II"), lesion("p2", "a.nrrd", "II")])
    with pytest.raises(FitError, match=r"1 volume\(s\) hold several lesions"):
        pool_feature_set(store, "slices2d", "lesion", lesions=two)
