"""Exact copies never leak: found by file content and decoded pixels, kept in one fold, named where they cannot be."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from helpers import featx

from featx import api
from featx.dataset.copies import find_copies
from featx.demo.planted import EXACT_KINDS, write_planted
from featx.store.tools import compact_store


@pytest.fixture(scope="session")
def planted(tmp_path_factory, models_dir, lite0):
    """80 distinct BreastMNIST images, 4 planted copies of each kind (each its own subject), Lite0 features."""
    out = tmp_path_factory.mktemp("planted")
    manifest, truth = write_planted(out, 80)
    store = out / "f.h5"
    api.extract(manifest, "efficientnet_lite0", store, models_dir=models_dir)
    return manifest, truth, store


def test_copies_are_joined_across_file_and_pixel_evidence_into_one_group_of_subjects():
    ids = ["a", "b", "c", "d", "e"]
    keys = np.array([["f1", ""], ["f1", "p1"], ["", "p1"], ["f2", "p2"], ["", ""]], dtype=object)
    copies = find_copies(ids, keys, ["s1", "s2", "s3", "s4", "s4"], ["x", "x", "y", "x", "x"])
    assert copies.groups == [(0, 1, 2)] and copies.n_files == 2  # a = b by file, b = c by pixels
    assert copies.conflicts == [(0, 1, 2)]  # c's label differs: label noise, named
    assert "label noise" in copies.summary() and "c (y)" in copies.summary()
    assert list(copies.joined_units()) == ["s1", "s1", "s1", "s4", "s4"]
    within = find_copies(["a", "b"], np.array([["f"], ["f"]], dtype=object), ["s1", "s1"])
    assert not within  # copies within one subject cannot leak


def test_exact_copies_are_found_kept_in_one_fold_and_the_leak_is_shown(planted, tmp_path):
    _, truth, store = planted
    exact = {sid: src for sid, (src, kind) in truth.items() if kind in EXACT_KINDS}
    honest = api.fit(store, "efficientnet_lite0", head="knn", cv=5, bootstrap=0, out=tmp_path / "honest")
    rec = honest.protocol.copies
    assert rec["policy"] == "together" and rec["copies"] == len(exact) == 8 and rec["groups"] == 8
    assert sorted(tuple(sorted(g)) for g in rec["examples"]) == sorted(tuple(sorted(p)) for p in exact.items())
    with open(tmp_path / "honest" / "folds.json") as fh:
        import json

        fold_of = json.load(fh)["fold_of"]
    assert all(fold_of[c] == fold_of[o] for c, o in exact.items())
    leaky = api.fit(store, "efficientnet_lite0", head="knn", cv=5, bootstrap=0, copies="apart")
    assert leaky.protocol.copies["policy"] == "apart"
    # a nearest-neighbour head finds the planted copy of its test image when copies leak
    assert leaky.cv.pooled.auc > honest.cv.pooled.auc + 0.03
    page = (tmp_path / "honest" / "report.html").read_text()
    assert "8 sample(s) are exact copies of others" in page and "kept in one fold" in page
    assert "8 exact copies kept together" in honest.protocol.folds


def test_manifest_check_and_extract_name_the_copies(planted, tmp_path, models_dir):
    manifest, _, store = planted
    proc = featx("manifest", "check", manifest, "--cv", "5")
    assert proc.returncode == 0, proc.stderr
    assert "8 sample(s) are exact copies of others" in proc.stderr + proc.stdout
    proc = featx("extract", "-m", manifest, "-b", "efficientnet_lite0", "-s", store, "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "copies: 8 sample(s) are exact copies of others" in proc.stdout


def test_copies_on_both_sides_of_the_manifest_split_are_named_counted_and_can_be_left_out(planted, tmp_path):
    _, truth, store = planted
    copies = sorted(sid for sid, (_, kind) in truth.items() if kind in EXACT_KINDS)
    with h5py.File(store, "r") as h5:
        ids = h5["samples/id"].asstr()[:]
    split = np.array(["test" if i in copies[:3] or i.endswith("7") else "train" for i in ids], dtype=object)
    st2 = tmp_path / "split.h5"
    compact_store(store, st2)  # a copy of the store as one file
    with h5py.File(st2, "a") as h5:
        del h5["samples/split"]
        h5["samples/split"] = split.astype("S")
    kept = api.fit(st2, "efficientnet_lite0", head="logreg", cv=5, bootstrap=0)
    assert kept.protocol.copies["test_copies"] >= 3 and not kept.protocol.copies["test_copies_dropped"]
    n_test = int((split == "test").sum())
    assert kept.n_test == n_test
    dropped = api.fit(st2, "efficientnet_lite0", head="logreg", cv=5, bootstrap=0, drop_test_copies=True)
    assert dropped.protocol.copies["test_copies_dropped"]
    assert dropped.n_test == n_test - kept.protocol.copies["test_copies"]
    fixed = api.fit(st2, "efficientnet_lite0", head="logreg", split="fixed", bootstrap=0, drop_test_copies=True)
    assert fixed.protocol.copies["test_copies"] == kept.protocol.copies["test_copies"]
    proc = featx("fit", "-s", st2, "-f", "efficientnet_lite0", "--cv", "5", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert "test row(s) are exact copies of training rows" in proc.stderr
    assert "copies: 8 sample(s) are exact copies" in proc.stdout


def test_a_bench_keeps_copies_together_in_every_cell(planted, tmp_path):
    _, truth, store = planted
    res = api.bench(store, ["efficientnet_lite0"], ["knn", "logreg"], cv=4, bootstrap=0, out=tmp_path / "b")
    assert res.protocol.copies["copies"] == 8
    with open(tmp_path / "b" / "bench.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "exact copies" in (tmp_path / "b" / "report.html").read_text()


def test_the_audit_finds_every_planted_near_copy_and_writes_pairs_a_page_and_a_joined_manifest(planted, tmp_path):
    from featx.audit.run import run_audit

    manifest, truth, store = planted
    res = run_audit(
        store, "efficientnet_lite0", out=tmp_path / "a", manifest=manifest, write_manifest=tmp_path / "j.csv"
    )
    pairs = {frozenset((p["id_a"], p["id_b"])): p for p in res.pairs}
    missed = [(c, o, k) for c, (o, k) in truth.items() if frozenset((c, o)) not in pairs]
    assert not missed  # every kind at the documented thresholds: exact, re-saved, JPEG, resized, cropped, ...
    assert all(pairs[frozenset((c, o))]["exact"] == (k in EXACT_KINDS) for c, (o, k) in truth.items())
    page = (tmp_path / "a" / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == 2 * min(len(res.pairs), 200)
    with open(tmp_path / "a" / "pairs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(res.pairs)
    from featx.dataset.manifest import Manifest

    joined = {s.sample_id: s.subject for s in Manifest.from_csv(tmp_path / "j.csv")}
    assert all(joined[c] == joined[o] for c, (o, _) in truth.items())
    assert len(set(joined.values())) < len(joined)
    # embeddings alone (no image read) miss re-encoded copies: the signature is what finds them
    lean = run_audit(store, "efficientnet_lite0", signature_threshold=None, progress=False)
    assert len(lean.pairs) < len(res.pairs)


def test_fit_reports_test_rows_with_a_near_copy_in_training(planted, tmp_path):
    _, truth, store = planted
    res = api.fit(store, "efficientnet_lite0", head="logreg", cv=5, bootstrap=0, copies="apart")
    near = res.protocol.near_copies
    assert near["scored"] == res.n_dev and near["scored_with_near_copy"] >= 28  # the planted copies, signatures stored
    assert near["by"] == "embedding or pixel signature"
    proc = featx("audit", "-s", store, "-f", "efficientnet_lite0", "--no-pixels")
    assert proc.returncode == 0, proc.stderr
    assert "near-copy pair(s) (embedding cosine >= 0.95)" in proc.stdout


def test_the_cli_takes_the_copy_policy(planted):
    _, _, store = planted
    args = ["-s", store, "-f", "efficientnet_lite0", "--cv", "3", "--bootstrap", "0"]
    proc = featx("bench", *args, "--heads", "knn", "--copies", "apart", "--drop-test-copies")
    assert proc.returncode == 0, proc.stderr
    assert "--copies apart lets copies fall into different folds" in proc.stdout
    assert "NOT kept together" in proc.stdout
