"""Folds: grouped by subject, stratified, each sample tested once; clear refusals."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from featx.cv import Folds, check_no_subject_leak, cross_validate, make_folds
from featx.errors import FitError


@settings(max_examples=60, deadline=None)
@given(
    n_subjects=st.integers(10, 40),
    slices=st.lists(st.integers(1, 12), min_size=40, max_size=40),
    k=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_no_subject_in_two_folds(n_subjects, slices, k, seed):
    rng = np.random.default_rng(seed)
    subj_label = {s: ("a" if s % 2 else "b") for s in range(n_subjects)}
    subjects, labels = [], []
    for s in range(n_subjects):
        subjects += [f"s{s}"] * slices[s]
        labels += [subj_label[s]] * slices[s]
    order = rng.permutation(len(subjects))
    subjects, labels = np.array(subjects)[order], np.array(labels)[order]
    folds = make_folds(labels, subjects, k=k, seed=seed)
    assert folds.grouped and folds.splitter == "StratifiedGroupKFold"
    for s in np.unique(subjects):
        assert len(np.unique(folds.fold_of[subjects == s])) == 1
    tested = np.concatenate([test for _, test in folds.split()])
    assert sorted(tested.tolist()) == list(range(len(labels)))  # every sample tested exactly once


def test_ungrouped_is_stratified_and_seeded():
    labels = np.array(["a"] * 30 + ["b"] * 10)
    f1 = make_folds(labels, None, k=5, seed=3)
    f2 = make_folds(labels, None, k=5, seed=3)
    assert not f1.grouped and np.array_equal(f1.fold_of, f2.fold_of)
    for _, test in f1.split():
        assert (labels[test] == "b").sum() == 2
    assert not np.array_equal(f1.fold_of, make_folds(labels, None, k=5, seed=4).fold_of)


def test_one_class_refused():
    with pytest.raises(FitError, match="Only one class \\('x'\\)"):
        make_folds(["x"] * 20, None, k=5)


def test_too_few_subjects_per_class():
    labels = ["a"] * 10 + ["b"] * 10
    subjects = [f"a{i}" for i in range(10)] + ["b1"] * 5 + ["b2"] * 5
    with pytest.raises(FitError, match="at least 5 subjects per class; too few for \\{'b': 2\\}"):
        make_folds(labels, subjects, k=5)


def test_leak_check_catches_split_subject():
    folds = Folds(np.array([0, 1, 1]), 2, 0, "x", True)
    with pytest.raises(FitError, match="Subject 'p' would be in folds 0 and 1"):
        check_no_subject_leak(folds, ["p", "p", "q"])


def test_out_of_fold_predictions_cover_each_sample_once():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    labels = np.where(X[:, 0] + 0.3 * rng.standard_normal(60) > 0, "pos", "neg")
    folds = make_folds(labels, None, k=6, seed=0)
    res = cross_validate(LogisticRegression(), X, labels, folds)
    assert res.classes == ["neg", "pos"] and res.proba.shape == (60, 2)
    np.testing.assert_allclose(res.proba.sum(axis=1), 1.0)
    # each prediction comes from the model that did not see that sample
    for f, (train, test) in enumerate(folds.split()):
        m = LogisticRegression().fit(X[train], res.y[train])
        np.testing.assert_allclose(res.proba[test], m.predict_proba(X[test]))
    assert len(res.fold_seconds) == 6
