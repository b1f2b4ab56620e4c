"""Folds: grouped by subject, stratified, repeated, fixed splits, nested tuning; clear refusals."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from featx.errors import FitError
from featx.evaluate.protocol.cv import cross_validate
from featx.evaluate.protocol.folds import (
    TRAIN_ONLY,
    Folds,
    check_no_subject_leak,
    load_folds,
    make_folds,
    make_holdout,
    manifest_split,
)
from featx.evaluate.protocol.task import Task


def _cohort(n_subjects, slices, seed, mixed_labels=False):
    """A random manifest: subjects with 1-12 slices each, one label per subject, rows shuffled."""
    rng = np.random.default_rng(seed)
    subjects, labels = [], []
    for s in range(n_subjects):
        subjects += [f"s{s}"] * slices[s]
        labels += [("a" if s % 2 else "b")] * slices[s]
    order = rng.permutation(len(subjects))
    return np.array(subjects)[order], np.array(labels)[order]


@settings(max_examples=60, deadline=None)
@given(
    n_subjects=st.integers(10, 40),
    slices=st.lists(st.integers(1, 12), min_size=40, max_size=40),
    k=st.integers(2, 5),
    repeats=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_no_subject_in_two_folds(n_subjects, slices, k, repeats, seed):
    subjects, labels = _cohort(n_subjects, slices, seed)
    folds = make_folds(labels, subjects, k=k, seed=seed, repeats=repeats)
    assert folds.grouped and folds.splitter == "StratifiedGroupKFold" and folds.fold_of.shape == (repeats, len(labels))
    for r in range(repeats):
        for s in np.unique(subjects):
            assert len(np.unique(folds.fold_of[r, subjects == s])) == 1
    for r in range(repeats):  # every sample tested exactly once per repeat
        tested = np.concatenate([test for rr, _, _, test in folds.split() if rr == r])
        assert sorted(tested.tolist()) == list(range(len(labels)))
    for _, _, train, test in folds.split():
        assert not set(subjects[train]) & set(subjects[test])


@settings(max_examples=40, deadline=None)
@given(
    n_subjects=st.integers(10, 40),
    slices=st.lists(st.integers(1, 12), min_size=40, max_size=40),
    test_size=st.floats(0.2, 0.5),
    seed=st.integers(0, 10_000),
)
def test_holdout_by_subject(n_subjects, slices, test_size, seed):
    subjects, labels = _cohort(n_subjects, slices, seed)
    folds = make_holdout(labels, subjects, test_size=test_size, seed=seed, repeats=2)
    assert folds.kind == "fixed" and folds.k == 1
    for r in range(2):
        test_subjects = set(subjects[folds.fold_of[r] == 0])
        train_subjects = set(subjects[folds.fold_of[r] == TRAIN_ONLY])
        assert test_subjects and train_subjects and not test_subjects & train_subjects
        assert abs(len(test_subjects) / n_subjects - test_size) <= 1.0 / n_subjects + 0.05
        assert set(labels[folds.fold_of[r] == 0]) == {"a", "b"}  # stratified by the subject's label


def test_same_seed_same_folds_other_seed_other_folds():
    labels = np.array(["a", "b"] * 30)
    f1, f2 = make_folds(labels, None, k=5, seed=3, repeats=2), make_folds(labels, None, k=5, seed=3, repeats=2)
    assert not f1.grouped and np.array_equal(f1.fold_of, f2.fold_of)
    assert not np.array_equal(f1.fold_of[0], f1.fold_of[1])  # repeats are re-shuffles
    for f in range(5):
        assert (labels[f1.fold_of[0] == f] == "a").sum() == 6  # stratified
    assert not np.array_equal(f1.fold_of, make_folds(labels, None, k=5, seed=4, repeats=2).fold_of)
    assert np.array_equal(make_folds(labels, None, k=5, seed=3).fold_of[0], f1.fold_of[0])  # repeat 0 = seed itself


def test_one_class_refused():
    with pytest.raises(FitError, match="Only one class"):
        make_folds(["x"] * 20, None, k=5)


def test_too_few_subjects_per_class():
    labels = ["a"] * 10 + ["b"] * 10
    subjects = ["p1"] * 5 + ["p2"] * 5 + [f"q{i}" for i in range(10)]
    with pytest.raises(FitError, match=r"too few for \{'a': 2\}"):
        make_folds(labels, subjects, k=5)


def test_leak_check_names_subject_and_sides():
    with pytest.raises(FitError, match="Subject 'p' would be in fold 0 and fold 1"):
        check_no_subject_leak(Folds(np.array([0, 1, 1]), 2, 0, "x", True), ["p", "p", "q"])
    # a manifest split column that puts one patient in train and test is refused, naming it
    with pytest.raises(FitError, match="Subject 'p7' would be in train and fold 0.*same split"):
        manifest_split(["train", "train", "test", "test"], ["p1", "p7", "p7", "p9"])
    with pytest.raises(FitError, match="no row is 'test'"):
        manifest_split(["train", "val"], None)


def test_folds_round_trip_and_reload(tmp_path):
    labels = np.array(["a", "b"] * 20)
    subjects = np.repeat([f"s{i}" for i in range(20)], 2)
    ids = [f"id{i}" for i in range(40)]
    folds = make_folds(labels, subjects, k=4, seed=1, repeats=2)
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(folds.to_dict(ids)))
    back = load_folds(path, ids[::-1], subjects[::-1])  # keyed by id, not by position
    assert np.array_equal(back.fold_of, folds.fold_of[:, ::-1]) and back.repeats == 2 and back.grouped
    (tmp_path / "results.json").write_text(json.dumps({"folds": folds.to_dict(ids)}))
    assert np.array_equal(load_folds(tmp_path / "results.json", ids).fold_of, folds.fold_of)
    with pytest.raises(FitError, match="1 sample.*not in .*folds.json.*another set of samples"):
        load_folds(path, ids + ["new"])
    wrong = np.array(subjects)
    wrong[0] = wrong[2]  # a subject now spans two folds of the saved split
    if folds.fold_of[0, 0] != folds.fold_of[0, 2]:
        with pytest.raises(FitError, match="both sides"):
            load_folds(path, ids, wrong)


def test_out_of_fold_predictions_cover_each_sample_once_per_repeat():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    labels = np.where(X[:, 0] > 0, "pos", "neg")
    folds = make_folds(labels, None, k=5, seed=0, repeats=3)
    res = cross_validate(LogisticRegression(), X, Task.classification(labels, folds=folds))
    assert res.proba.shape == (3, 60, 2) and not np.isnan(res.proba).any()
    assert np.allclose(res.proba.sum(axis=2), 1) and len(res.fold_seconds) == 15
    for r in range(3):  # each repeat's prediction of a sample comes from the one model that did not train on it
        for f in range(5):
            test = folds.fold_of[r] == f
            m = LogisticRegression().fit(X[~test], res.y[~test])
            assert np.allclose(res.proba[r, test], m.predict_proba(X[test]))


def test_fixed_split_predicts_only_the_test_side():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    labels = np.where(X[:, 0] > 0, "pos", "neg")
    folds = make_holdout(labels, None, test_size=0.25, seed=0)
    res = cross_validate(LogisticRegression(), X, Task.classification(labels, folds=folds))
    assert np.array_equal(res.tested, folds.fold_of[0] == 0) and res.tested.sum() == 10


class _Spy(ClassifierMixin, BaseEstimator):
    """Records the row ids (column 0) of every fit and predict, in a class-level log (GridSearchCV clones)."""

    log: list = []

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        _Spy.log.append(("fit", set(X[:, 0].astype(int))))
        self.model_ = LogisticRegression(C=self.c).fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        _Spy.log.append(("predict", set(X[:, 0].astype(int))))
        return self.model_.predict_proba(X[:, 1:])

    def decision_function(self, X):
        return self.predict_proba(X)[:, 1]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def test_nested_cv_never_sees_its_outer_test_fold():
    rng = np.random.default_rng(0)
    n = 80
    X = np.c_[np.arange(n), rng.standard_normal((n, 3))]
    labels = np.where(X[:, 1] > 0, "pos", "neg")
    subjects = np.repeat([f"s{i}" for i in range(40)], 2)
    folds = make_folds(labels, subjects, k=4, seed=0)
    test_sets = [set(np.flatnonzero(folds.fold_of[0] == f)) for f in range(4)]
    calls = []
    for f in range(4):
        _Spy.log = []
        one = Folds(np.where(folds.fold_of[0] == f, 0, TRAIN_ONLY), 1, 0, "x", True, kind="fixed")
        task = Task.classification(labels, groups=subjects, folds=one)
        res = cross_validate(_Spy(), X, task, grid={"c": [0.1, 1.0]}, inner_k=3)
        outer_predict = _Spy.log[-1]
        assert outer_predict == ("predict", test_sets[f])  # only the final model sees the outer test fold
        for what, ids in _Spy.log[:-1]:  # inner fits, inner validation and the refit: training rows only
            assert not ids & test_sets[f], (what, f)
        assert res.best_params[0]["c"] in (0.1, 1.0)
        calls.append(len(_Spy.log))
    assert min(calls) >= 2 * 3 * 2  # 2 candidates x 3 inner folds, fit + predict each


def test_tune_refuses_too_small_inner_folds():
    X = np.random.default_rng(0).standard_normal((12, 2))
    labels = np.array(["a", "b"] * 6)
    folds = make_folds(labels, None, k=2, seed=0)
    with pytest.raises(FitError, match="inner 5-fold CV needs 5 samples per class"):
        cross_validate(LogisticRegression(), X, Task.classification(labels, folds=folds), grid={"C": [1.0]}, inner_k=5)
