"""Early fusion: ``-f A+B`` in fit, bench and predict (rows in every part, per-block scaling and PCA, provenance)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from featx import api
from featx.dataset.manifest import Manifest, Sample
from featx.errors import FeatxError, FitError
from featx.evaluate.heads.estimators import BlockWeight, Head
from featx.store.open import open_store
from featx.store.writer import store_writer


def _two_sets(path, n=60, drop_b=(), relabel_b=None, seed=0):
    """A store with sets ``a`` (8 columns) and ``b`` (3 named columns) over n samples; ``b`` lacks ``drop_b``."""
    rng = np.random.default_rng(seed)
    labels = np.array(["neg", "pos"] * (n // 2))
    y = (labels == "pos").astype(float)
    ids = [f"s{i:03d}" for i in range(n)]
    man = Manifest([Sample(sample_id=i, path=path.parent / f"{i}.png", label=lab) for i, lab in zip(ids, labels)])
    a = rng.normal(size=(n, 8)) + y[:, None] * 0.5
    b = rng.normal(size=(n, 3)) * 100 + y[:, None] * 80
    with store_writer(path) as w, w.transaction() as st:
        rows = st.add_samples(man)
        st.create_feature_set("a", 8, {"kind": "cnn", "backbone": "x"}, "id", kind="cnn")
        st.write("a", rows, a.astype(np.float32))
        st.create_feature_set(
            "b", 3, {"kind": "radiomics"}, "id", kind="radiomics", dtype="float64", feature_names=["u", "v", "w"]
        )
        keep = np.array([i not in drop_b for i in ids])
        st.write("b", rows[keep], b[keep])
    if relabel_b is not None:
        import h5py

        with h5py.File(path, "a") as h5:
            lab = h5["samples/label"].asstr()[:]
            lab[relabel_b] = "pos" if lab[relabel_b] == "neg" else "neg"
            h5["samples/label"][relabel_b] = lab[relabel_b]
    return path, a, b, labels


def test_a_combined_fit_uses_the_rows_of_every_part_and_records_each_part(tmp_path, caplog):
    store, a, b, labels = _two_sets(tmp_path / "f.h5", drop_b=("s000", "s001"))
    res = api.fit(store, "a+b", cv=5, bootstrap=0, head="logreg")
    assert res.n_dev == 58 and res.n_features == 11
    assert "s000" in caplog.text  # named as left out
    assert set(res.provenance["parts"]) == {"a", "b"} and res.provenance["blocks"] == [["a", 8], ["b", 3]]
    assert "blocks=(8, 3)" in res.head.estimator
    with pytest.raises(FitError, match="empty part"):
        api.fit(store, "a+", cv=5)
    with pytest.raises(FeatxError, match="no feature set 'c'"):
        api.fit(store, "a+c", cv=5)


def test_parts_from_different_manifests_are_refused(tmp_path):
    from featx.evaluate.protocol.combined import combine

    store, *_ = _two_sets(tmp_path / "f.h5")
    with open_store(store) as st:
        fa, fb = st.load("a"), st.load("b")
    fb.labels = fb.labels.copy()
    fb.labels[3] = "neg" if fb.labels[3] == "pos" else "pos"
    with pytest.raises(FitError, match="s003.*different manifests"):
        combine([fa, fb])


def test_each_block_is_standardised_and_weighted_inside_the_training_rows_only():
    rng = np.random.default_rng(1)
    X = np.hstack([rng.normal(size=(40, 30)), rng.normal(size=(40, 2)) * 1000])
    y = np.r_[np.zeros(20), np.ones(20)]
    head = Head(blocks=(30, 2)).fit(X[:30], y[:30])
    Z = head.pipeline_[:-1].transform(X[:30])
    # every block has the mean block width as its total variance on the training rows, whatever its scale
    assert np.var(Z[:, :30], axis=0).sum() == pytest.approx(16.0)
    assert np.var(Z[:, 30:], axis=0).sum() == pytest.approx(16.0)
    # the held-out rows never entered the statistics: refitting with them changes the transform
    other = Head(blocks=(30, 2)).fit(X, y).pipeline_[:-1].transform(X[:30])
    assert not np.allclose(Z, other)
    # per-block PCA keeps at most each block's width
    pca = Head(blocks=(30, 2), pca=5).fit(X, y).pipeline_[:-1].transform(X)
    assert pca.shape == (40, 7)
    with pytest.raises(ValueError, match="cover 31 columns"):
        Head(blocks=(30, 1)).fit(X, y)


def test_block_weight_follows_the_scikit_learn_contract():
    check_estimator(BlockWeight())


def test_pca_applies_per_block_and_keeps_at_most_a_blocks_width(tmp_path):
    store, *_ = _two_sets(tmp_path / "f.h5")
    res = api.fit(store, "a+b", cv=5, bootstrap=0, pca=5)
    assert res.head.pca == 5  # a: 5 components, b: its 3 columns
    # 50 components exceed both blocks: each is kept whole, so it fits like no PCA (up to the rotation)
    whole = api.fit(store, "a+b", cv=5, bootstrap=0, pca=50)
    assert whole.cv.pooled.auc == pytest.approx(api.fit(store, "a+b", cv=5, bootstrap=0).cv.pooled.auc, abs=0.02)


def test_bench_ranks_a_combined_row_beside_its_parts_on_the_same_rows(tmp_path):
    store, *_ = _two_sets(tmp_path / "f.h5", drop_b=("s010",))
    res = api.bench(store, ["a", "b", "a+b"], heads=["logreg"], cv=5, bootstrap=0)
    assert {c.feature_set for c in res.cells} == {"a", "b", "a+b"}
    assert res.n_dev == 59
    combined = next(c for c in res.cells if c.feature_set == "a+b")
    assert combined.kind == "combined" and combined.n_features == 11


@pytest.fixture(scope="module")
def combined_model(lite0_radiomics, tmp_path_factory):
    """(fit result, model path, test manifest, store) of logreg on EfficientNet-Lite0 + radiomics of 80 images."""
    store, sets, test_csv = lite0_radiomics
    tmp = tmp_path_factory.mktemp("combined")
    res = api.fit(store, "+".join(sets), cv=5, bootstrap=0, out=tmp / "res", save=tmp / "m.skops", positive="malignant")
    return res, tmp / "m.skops", test_csv, store


def _rows(path):
    with open(path) as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_predict_computes_every_part_and_reproduces_the_test_predictions_exactly(combined_model, models_dir, tmp_path):
    res, model, test_csv, _ = combined_model
    assert res.n_features == 1280 + 102
    p = api.predict(model, test_csv, tmp_path / "p.csv", models_dir=models_dir)
    assert p.n_predicted == 40 and not p.failures
    want, got = _rows(res.outputs["test_predictions"]), _rows(tmp_path / "p.csv")
    assert set(want) == set(got)
    for k in want:
        assert got[k]["p_malignant"] == want[k]["p_malignant"]  # the same six decimals
        assert got[k]["predicted"] == want[k]["predicted"]
    meta = api.load_model(model).meta
    assert meta["kind"] == "combined" and list(meta["provenance"]["parts"]) == [
        "efficientnet_lite0",
        "radiomics.default",
    ]


@pytest.mark.slow
def test_a_combined_model_with_lesion_mask_radiomics_refuses_images_without_masks(
    combined_model, demo_subset, tmp_path
):
    from PIL import Image

    _, _, test_csv, store = combined_model
    rows = list(Manifest.from_csv(demo_subset / "subset.csv"))[:40]
    masked = []
    for s in rows:
        m = tmp_path / f"{s.sample_id}_mask.png"
        Image.fromarray(np.pad(np.ones((20, 20), np.uint8), 4)).save(m)
        masked.append(Sample(sample_id=s.sample_id, path=s.path, label=s.label, split=s.split, mask=m))
    Manifest(masked).to_csv(tmp_path / "masked.csv")
    r = api.radiomics(tmp_path / "masked.csv", store, mode="2d", name="radiomics.lesion", jobs=1)
    api.fit(store, f"efficientnet_lite0+{r.feature_set}", cv=4, bootstrap=0, save=tmp_path / "m.skops")
    with pytest.raises(FeatxError, match=r"m\.skops takes radiomics features \(radiomics.lesion\).*mask"):
        api.predict(tmp_path / "m.skops", test_csv, tmp_path / "p.csv")


def test_per_block_pca_is_checked_against_the_smallest_training_set_before_fitting():
    from featx.evaluate.heads.registry import check_pca
    from featx.evaluate.protocol.folds import make_folds

    folds = make_folds(np.array(["a", "b"] * 10), None, k=5)  # training sets of 16
    check_pca(50, folds, 15, None, (3, 12))  # blocks of 3 and 12 keep at most 12 components
    with pytest.raises(FitError, match="--pca 20: the widest block keeps 20 components.*16 samples"):
        check_pca(20, folds, 33, None, (3, 30))
