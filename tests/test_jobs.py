"""``--jobs``: fold fits and bench cells in worker processes give exactly the numbers of one fit at a time."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_store

import featx.api as fx
from featx.evaluate.protocol.parallel import resolve_jobs, run_tasks, usable_cores


def _store(tmp_path, n=120, d=24, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :4] += 0.8 * y[:, None]
    splits = ["test" if (i // 2) % 5 == 0 else "train" for i in range(n)]  # a subject on one side
    subjects = [f"p{i // 2}" for i in range(n)]
    return make_store(tmp_path / "f.h5", "emb", X, ["ab"[v] for v in y], subjects=subjects, splits=splits)


def _cells(res):
    return [(c.head, c.cv.pooled.auc, c.fold_auc, c.test.auc if c.test else None) for c in res.cells]


@pytest.mark.slow
def test_bench_in_two_processes_equals_one(tmp_path):
    store = _store(tmp_path)
    heads = "logreg,rf,xgb,svm-rbf"
    one = fx.bench(store, "emb", heads, cv=5, bootstrap=50, jobs=1)
    two = fx.bench(store, "emb", heads, cv=5, bootstrap=50, jobs=2, out=tmp_path / "b")
    assert _cells(one) == _cells(two) and len(one.cells) == 4
    assert all(c.test is not None for c in two.cells)  # the refits ran in the workers too


def test_fit_in_two_processes_equals_one_and_keeps_its_folds(tmp_path):
    store = _store(tmp_path)
    one = fx.fit(store, "emb", head="logreg", cv=5, bootstrap=50, jobs=1)
    two = fx.fit(store, "emb", head="logreg", cv=5, bootstrap=50, jobs=2, tune=True)
    again = fx.fit(store, "emb", head="logreg", cv=5, bootstrap=50, jobs=1, tune=True)
    assert one.cv.pooled.auc != two.cv.pooled.auc  # tuning changed something: the comparison below can fail
    assert two.cv.pooled.auc == again.cv.pooled.auc and two.test.auc == again.test.auc
    assert two.cv.per_fold["auc"].values == again.cv.per_fold["auc"].values


def test_tasks_come_back_in_order_with_their_callbacks():
    seen = []
    out = run_tasks([(pow, (i, 2), seen.append) for i in range(7)], jobs=2)
    assert out == [i * i for i in range(7)] and seen == out


def test_usable_cores_honour_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_cores() == 1 and resolve_jobs(None) == 1 and resolve_jobs(3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert usable_cores() >= 1


@pytest.mark.slow
def test_bench_on_a_local_ray_equals_one_process(tmp_path):
    import ray

    store = _store(tmp_path)
    one = fx.bench(store, "emb", "logreg,knn", cv=3, bootstrap=20, jobs=1)
    try:
        on_ray = fx.bench(store, "emb", "logreg,knn", cv=3, bootstrap=20, ray="local")  # featx starts Ray here
        assert ray.is_initialized()
    finally:
        ray.shutdown()  # other tests in this worker start their own
    assert _cells(one) == _cells(on_ray)


@pytest.mark.slow
def test_the_numbers_do_not_depend_on_blas_threads(tmp_path):
    """A multi-threaded BLAS sums in another order: every fit runs on one thread, whatever the caller's pool."""
    from threadpoolctl import threadpool_limits

    store = _store(tmp_path, n=600, d=128, seed=3)
    with threadpool_limits(2):  # the caller's BLAS at 2 threads, the workers' at 1
        one = fx.bench(store, "emb", "mlp,xgb", cv=5, bootstrap=0, jobs=1)
    two = fx.bench(store, "emb", "mlp,xgb", cv=5, bootstrap=0, jobs=2)
    assert _cells(one) == _cells(two)
