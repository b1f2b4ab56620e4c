"""The attention-MIL head: scikit-learn's contract (test_heads runs its estimator checks), bags with padding,
reproducibility, and on a stand-in where one slice per subject carries the signal it beats mean pooling and its
attention points at that slice."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import make_store

from featx.errors import ConfigError
from featx.evaluate.config import BenchConfig, FitConfig
from featx.evaluate.runs.fit import run_fit
from featx.mil.abmil import ABMILClassifier

pytest.importorskip("torch")


def _standin(n_subjects=100, slices=8, d=16, seed=0):
    """Slice rows of 100 subjects: one slice per subject (at a random position) shows the lesion (feature 0 high) and carries the
    label (feature 1, +-1.5); every other slice is noise. Returns X, labels, subjects, ids, the key slice ids."""
    rng = np.random.default_rng(seed)
    X, labels, subjects, ids, keys = [], [], [], [], set()
    for s in range(n_subjects):
        y = s % 2
        key = rng.integers(slices)
        for k in range(slices):
            x = rng.normal(0, 1, d)
            if k == key:
                x[0] += 4.0
                x[1] += 1.5 if y else -1.5
                keys.add(f"p{s:03d}#{k}")
            (
                X.append(x),
                labels.append("high" if y else "low"),
                subjects.append(f"p{s:03d}"),
                ids.append(f"p{s:03d}#{k}"),
            )
    return np.array(X, np.float32), labels, subjects, ids, keys


def test_bags_are_nan_padded_and_only_whole_instances_may_be_missing():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3 * 4))
    X[::2, 8:] = np.nan  # every other bag has 2 of its 3 instances
    y = np.repeat(["a", "b"], 20)
    m = ABMILClassifier(instance_dim=4, epochs=5).fit(X, y)
    a = m.attention_weights(X)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert np.all(a[::2, 2] == 0) and np.all(a[1::2, 2] > 0)
    X[0, 9] = 1.0  # half an instance
    with pytest.raises(ValueError, match="NaN inside an instance"):
        m.predict_proba(X)


def test_a_seed_reproduces_the_model_and_another_seed_does_not():
    X, labels, *_ = _standin(20, 3, 6)
    X = X.reshape(20, 18)
    y = np.array(labels[::3])
    fit = lambda seed: ABMILClassifier(instance_dim=6, epochs=10, random_state=seed).fit(X, y).predict_proba(X)  # noqa: E731
    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.allclose(fit(3), fit(4))


def test_abmil_beats_mean_pooling_where_one_slice_carries_the_signal(tmp_path):
    from featx.store.pooled import pool_feature_set

    X, labels, subjects, ids, keys = _standin()
    store = make_store(tmp_path / "f.h5", "slices", X, labels, subjects=subjects, ids=ids)
    mil = run_fit(
        FitConfig(store=store, features="slices", head="abmil", cv=4, bootstrap=0, out=tmp_path / "mil"), progress=False
    )
    pool_feature_set(store, "slices", by="subject", how="mean", name="slices_mean")
    mean = run_fit(FitConfig(store=store, features="slices_mean", head="logreg", cv=4, bootstrap=0), progress=False)
    auc = lambda r: r.cv.pooled.auc  # noqa: E731
    assert mil.protocol.grouped_by_subject and len(mil.folds["fold_of"]) == 100  # one row per subject
    assert auc(mil) > auc(mean) + 0.1 and auc(mil) > 0.85, (auc(mil), auc(mean))
    with open(tmp_path / "mil" / "attention.csv") as fh:
        top = [r["instance"] for r in csv.DictReader(fh) if r["rank"] == "1"]
    assert len(top) == 100 and np.mean([t in keys for t in top]) > 0.75  # chance: 1 in 8
    assert "attention" in mil.outputs
    assert "Which slices mattered (attention)" in (tmp_path / "mil" / "report.html").read_text()


def test_abmil_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="drop --fuse"):
        FitConfig(store="s.h5", features="x", head="abmil", fuse="mean")
    with pytest.raises(ConfigError, match="cannot be saved"):
        FitConfig(store="s.h5", features="x", head="abmil", save="m.skops")
    with pytest.raises(ConfigError, match="runs in 'featx fit --head abmil'"):
        BenchConfig(store="s.h5", features=("x",), heads=("logreg", "abmil"))
    assert "abmil" not in BenchConfig(store="s.h5", features=("x",)).head_names
