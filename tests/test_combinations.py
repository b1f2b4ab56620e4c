"""Every path finishes, or fails before the work: fit and bench under every meaningful combination of their options.

A combination either completes with a result, or is refused with a FeatxError (one line the CLI prints), never an
exception the CLI would call an internal error. The stores are tiny so the whole matrix runs in seconds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from featx import api
from featx.dataset.manifest import Manifest, Sample
from featx.errors import FeatxError
from featx.store.writer import store_writer

CLASSES = {"binary": ["neg", "pos"], "multi": ["g1", "g2", "g3"]}


def _store(path, kind: str, n_subjects: int = 36, seed: int = 0, test_split: bool = True):
    """Sets ``deep`` (cnn) and ``rad`` (radiomics, named columns) over ``n_subjects`` subjects with a T1 and a T2
    image each, a planted class signal, and (``test_split``) the last sixth of the subjects in the manifest's test
    split."""
    rng = np.random.default_rng(seed)
    classes = CLASSES[kind]
    subj_label = [classes[i % len(classes)] for i in range(n_subjects)]
    samples = []
    for s in range(n_subjects):
        for seq in ("T1", "T2"):
            samples.append(
                Sample(
                    sample_id=f"s{s:02d}_{seq}",
                    path=path.parent / f"s{s:02d}_{seq}.png",
                    label=subj_label[s],
                    subject=f"p{s:02d}",
                    sequence=seq,
                    split="test" if test_split and s >= n_subjects - n_subjects // 6 else "train",
                )
            )
    y = np.array([classes.index(s.label) for s in samples])
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(Manifest(samples))
        for name, d, sk in (("deep", 8, "cnn"), ("rad", 5, "radiomics")):
            X = rng.normal(size=(len(samples), d))
            X[:, 0] += 1.2 * y
            names = [f"original_firstorder_f{i}" for i in range(d)] if sk == "radiomics" else None
            st.create_feature_set(name, d, {"kind": sk}, name, kind=sk, feature_names=names)
            st.write(name, rows, X.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("combinations")
    out = {kind: _store(base / f"{kind}.h5", kind) for kind in CLASSES}
    out.update({f"{kind}-nosplit": _store(base / f"{kind}-ns.h5", kind, test_split=False) for kind in CLASSES})
    return out


def _out(tmp_path, i: int):
    """Every ninth run also writes its results, CSVs, plots and report (the rest skip the plotting time)."""
    return tmp_path / f"run{i}" if i % 9 == 0 else None


def _finishes_or_refuses(call, *args, **kwargs):
    """The result of ``call(*args, **kwargs)``, or the refusal's message (a FeatxError); any other exception fails
    the test."""
    try:
        return call(*args, **kwargs)
    except FeatxError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip(), msg
        return msg


# cv (with the manifest's test rows held out), fixed by the manifest's split column, fixed by --test-size (a store
# without test rows: the manifest's own test rows and --test-size are refused together)
SPLITS = [dict(split="cv"), dict(split="fixed"), dict(split="fixed", test_size=0.3)]


def _store_for(stores, kind, split):
    return stores[f"{kind}-nosplit"] if "test_size" in split else stores[kind]


# threshold, calibrate and tune cycle through the combinations of the axes above them (a covering design)
EXTRAS = [
    dict(),
    dict(threshold="youden"),
    dict(calibrate="sigmoid"),
    dict(tune=True),
    dict(threshold="sens:0.8", calibrate="isotonic"),
    dict(repeats=2),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_every_bench_combination_finishes_or_is_refused_before_any_fit(stores, kind, tmp_path):
    done = refused = 0
    combos = itertools.product(SPLITS, ("naive", "nested"), (None, 2), (("deep", "rad"), ("deep+rad", "rad")))
    for i, (split, select, ensemble, features) in enumerate(combos):
        extra = EXTRAS[i % len(EXTRAS)]
        if kind == "multi" and "threshold" in extra:
            extra = {k: v for k, v in extra.items() if k != "threshold"}
        settings = dict(
            cv=3, inner_k=2, bootstrap=0, seed=i, jobs=1, select=select, ensemble=ensemble, **split, **extra
        )
        out = _finishes_or_refuses(
            api.bench,
            _store_for(stores, kind, split),
            list(features),
            ["logreg", "knn"],
            out=_out(tmp_path, i),
            **settings,
        )
        if isinstance(out, str):  # only what makes no sense: a binary operating point on a multi-class problem
            assert kind == "multi" and "threshold" in extra and "operating point of a binary problem" in out, out
            refused += 1
            continue
        done += 1
        assert out.cells and all(c.cv.pooled is not None for c in out.cells), settings
        if ensemble:
            assert any(c.kind == "ensemble" for c in out.cells), settings
        if select == "nested":
            assert out.selection is not None, settings
    assert done + refused == 24 and done >= 16, (done, refused)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_every_fit_combination_finishes_or_is_refused_before_any_fit(stores, kind, tmp_path):
    results = {}
    combos = itertools.product(SPLITS, (None, "vote", "mean", "concat"), ("deep", "deep+rad"))
    for i, (split, fuse, features) in enumerate(combos):
        extra = EXTRAS[i % len(EXTRAS)]
        settings = dict(cv=3, inner_k=2, bootstrap=0, seed=i, jobs=1, fuse=fuse, **split, **extra)
        store = _store_for(stores, kind, split)
        out = _finishes_or_refuses(api.fit, store, features, head="logreg", out=_out(tmp_path, i), **settings)
        results[i] = (fuse, tuple(extra), out)
    refused = {i: r for i, r in results.items() if isinstance(r[2], str)}
    # what may be refused (said before any fit): a learned threshold on fused subject-level probabilities, and a
    # binary operating point on a multi-class problem
    for fuse, extra, msg in refused.values():
        assert "threshold" in extra, msg
        assert fuse in ("vote", "mean") or (kind == "multi" and "operating point of a binary problem" in msg), msg
    assert len(results) == 24 and len(refused) <= 8


def test_the_fixed_split_stacked_ensemble_with_nested_selection_completes_on_a_fused_set(stores, tmp_path):
    """The reported failure: the final stacked ensemble of a fixed split was fitted on NaN out-of-fold rows."""
    res = api.bench(
        stores["binary"],
        ["deep+rad", "deep", "rad"],
        ["logreg", "knn"],
        split="fixed",
        ensemble=3,
        select="nested",
        cv=3,
        inner_k=2,
        bootstrap=0,
        save=tmp_path / "m.skops",
        save_row="top-3 cells + stacking (logistic regression)",
    )
    stack = next(c for c in res.cells if c.head.startswith("stacking"))
    assert stack.cv.pooled.auc is not None and 0 <= stack.cv.pooled.auc <= 1
    assert res.selection is not None and (tmp_path / "m.skops").is_file()
