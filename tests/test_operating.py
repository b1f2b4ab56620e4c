"""Thresholds and calibration chosen on training rows only (--threshold, --calibrate) and the calibration metrics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_store
from sklearn.calibration import CalibratedClassifierCV

from featx import api
from featx.errors import ConfigError, FitError
from featx.evaluate.heads.operating import Operated, inner_splits, parse_threshold
from featx.evaluate.heads.registry import build_head
from featx.evaluate.protocol.cv import cross_validate
from featx.evaluate.protocol.folds import make_folds
from featx.evaluate.protocol.task import Task
from featx.evaluate.statistics.metrics import calibration, classification_metrics


def _data(n=120, d=6, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    X = rng.normal(size=(n, d)) + shift * y[:, None]
    return X, y


def test_threshold_rules_pick_the_documented_operating_points():
    t = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1], bool)
    s = np.linspace(0.05, 0.95, 10)
    assert parse_threshold("youden").choose(t, s) == pytest.approx(s[6])  # all but one right
    thr = parse_threshold("sens:0.9").choose(t, s)
    assert (s[t] >= thr).mean() >= 0.9 and thr == pytest.approx(s[4])  # the most specific with sens >= 0.9
    thr = parse_threshold("spec:0.8").choose(t, s)
    assert (s[~t] < thr).mean() >= 0.8 and thr == pytest.approx(s[4])
    assert parse_threshold("0.3").choose(t, s) == 0.3
    assert str(parse_threshold("SENS:0.90")) == "sens:0.9"
    for bad in ("sens:2", "spec", "0", "median", "sens:x"):
        with pytest.raises(ConfigError, match="youden, sens:X"):
            parse_threshold(bad)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_is_calibratedclassifiercv_without_ensembling(method):
    X, y = _data()
    head = build_head("logreg")[0]
    ours = Operated(head, calibrate=method, inner_k=5, random_state=3).fit(X, y)
    splits = inner_splits(y, None, 5, 3)
    theirs = CalibratedClassifierCV(head, method=method, cv=splits, ensemble=False).fit(X, y)
    Xn = _data(seed=9)[0]
    np.testing.assert_allclose(ours.predict_proba(Xn), theirs.predict_proba(Xn), atol=1e-12)


def test_inner_folds_keep_subjects_together():
    X, y = _data(n=60)
    groups = np.repeat(np.arange(30), 2)
    y = y[::2].repeat(2)
    for train, test in inner_splits(y, groups, 5, 0):
        assert not set(groups[train]) & set(groups[test])


def test_held_out_rows_never_move_the_threshold_or_the_calibration_of_a_fold():
    X, y = _data(n=150)
    folds = make_folds(y.astype(str), None, k=5, seed=0)
    est = Operated(build_head("logreg")[0], calibrate="sigmoid", threshold="youden", inner_k=4)
    first = cross_validate(est, X, Task.classification(y.astype(str), folds=folds))
    held = folds.fold_of[0] == 0
    X2, y2 = X.copy(), y.copy()
    X2[held] = np.random.default_rng(5).normal(size=X2[held].shape) * 10  # fold 1's rows: anything at all
    y2[held] = 1 - y2[held]
    second = cross_validate(est, X2, Task.classification(y2.astype(str), folds=folds))
    # fold 1 chose its threshold on the other folds' rows only: the same; the others saw fold 1's rows
    assert np.array_equal(first.thresholds[0, held], second.thresholds[0, held])
    assert not np.array_equal(first.thresholds[0, ~held], second.thresholds[0, ~held])


def test_the_test_split_never_moves_the_threshold_or_the_calibration(tmp_path):
    X, y = _data(n=160, seed=2)
    labels = np.where(y == 1, "pos", "neg")
    splits = np.where(np.arange(160) < 120, "train", "test")
    settings = dict(cv=4, bootstrap=0, threshold="sens:0.9", calibrate="sigmoid", positive="pos")
    make_store(tmp_path / "a.h5", "x", X, labels, splits=splits)
    a = api.fit(tmp_path / "a.h5", "x", save=tmp_path / "a.skops", **settings)
    X2, labels2 = X.copy(), labels.copy()
    X2[120:] *= -3
    labels2[120:] = labels2[120:][::-1]
    make_store(tmp_path / "b.h5", "x", X2, labels2, splits=splits)
    b = api.fit(tmp_path / "b.h5", "x", save=tmp_path / "b.skops", **settings)
    assert a.test.threshold == b.test.threshold is not None
    assert a.cv.thresholds == b.cv.thresholds
    ma, mb = (next(iter(api.load_model(p).models.values())) for p in (tmp_path / "a.skops", tmp_path / "b.skops"))
    assert (ma.calibrators_[0].a_, ma.calibrators_[0].b_) == (mb.calibrators_[0].a_, mb.calibrators_[0].b_)
    assert api.load_model(tmp_path / "a.skops").meta["threshold"] == {"x": a.test.threshold}
    # the reported sensitivity at that threshold is the test rows' own
    assert a.test.sensitivity != b.test.sensitivity or a.test.specificity != b.test.specificity


def test_a_learned_threshold_decides_the_reported_classes_and_predict_uses_it(tmp_path):
    X, y = _data(n=160, seed=4, shift=0.8)
    labels = np.where(y == 1, "pos", "neg")
    splits = np.where(np.arange(160) < 120, "train", "test")
    make_store(tmp_path / "f.h5", "x", X, labels, splits=splits)
    plain = api.fit(tmp_path / "f.h5", "x", cv=4, bootstrap=0, positive="pos")
    sens = api.fit(tmp_path / "f.h5", "x", cv=4, bootstrap=0, positive="pos", threshold="sens:0.9", out=tmp_path / "o")
    assert plain.cv.pooled.auc == sens.cv.pooled.auc  # the same probabilities, another operating point
    assert sens.cv.pooled.sensitivity > plain.cv.pooled.sensitivity
    assert "sens:0.9" in sens.protocol.decision and plain.protocol.decision == "most probable class"
    m = classification_metrics(
        np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]]), ["neg", "pos"], threshold=0.25
    )
    assert m["sensitivity"] == 1.0 and m["threshold"] == 0.25
    import csv

    with open(sens.outputs["test_predictions"]) as fh:
        rows = list(csv.DictReader(fh))
    thr = sens.test.threshold
    assert all((r["predicted"] == "pos") == (float(r["p_pos"]) >= thr) for r in rows)


def test_thresholds_on_multi_class_labels_are_refused_before_fitting(tmp_path):
    X, _ = _data(n=90)
    labels = np.array(["a", "b", "c"] * 30)
    make_store(tmp_path / "f.h5", "x", X, labels)
    with pytest.raises(FitError, match="binary problem.*3 classes"):
        api.fit(tmp_path / "f.h5", "x", cv=3, threshold="youden")
    res = api.fit(tmp_path / "f.h5", "x", cv=3, bootstrap=0, calibrate="isotonic")
    assert res.cv.pooled.brier is not None and res.protocol.calibrate == "isotonic"


def test_calibration_figures_of_calibrated_and_overconfident_predictions():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    t = rng.random(20000) < p
    good = calibration(t, p)
    assert good["calibration_slope"] == pytest.approx(1, abs=0.05)
    assert good["calibration_intercept"] == pytest.approx(0, abs=0.05)
    lp = np.log(p / (1 - p))
    over = calibration(t, 1 / (1 + np.exp(-2 * lp)))  # twice as extreme
    assert over["calibration_slope"] == pytest.approx(0.5, abs=0.05)
    assert sum(good["reliability"]["n"]) == 20000
    assert np.allclose(good["reliability"]["predicted"], good["reliability"]["observed"], atol=0.03)
    # perfectly separated: no finite slope, said as None rather than a huge number
    assert calibration(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))["calibration_slope"] is None
