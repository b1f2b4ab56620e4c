"""The Python API mirrors the CLI; FeatxEmbedder gives the store's features inside a scikit-learn Pipeline."""

import pickle

import numpy as np
import pytest
from PIL import Image

import featx.api as fx
from featx.dataset.manifest import Manifest
from featx.errors import ConfigError


@pytest.fixture(scope="module")
def api_store(demo_subset, models_dir, lite0, tmp_path_factory):
    store = tmp_path_factory.mktemp("api") / "f.h5"
    summary = fx.extract(demo_subset / "subset.csv", "efficientnet_lite0", store, models_dir=models_dir, progress=False)
    assert summary.n_extracted == 120
    return store


@pytest.mark.slow
def test_embedder_features_equal_the_stores_and_work_in_a_pipeline(api_store, demo_subset, models_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    fs = fx.load_features(api_store, "efficientnet_lite0")
    man = {s.sample_id: s for s in Manifest.from_csv(demo_subset / "subset.csv")}
    paths = [man[i].path for i in fs.ids]
    emb = fx.FeatxEmbedder("efficientnet_lite0", models_dir=str(models_dir), batch_size=16)
    Z = emb.fit_transform(paths)
    np.testing.assert_allclose(Z, fs.X, rtol=1e-4, atol=1e-5)
    # PIL images and uint8 arrays go through the same preprocessing as files
    im = Image.open(paths[0])
    np.testing.assert_allclose(emb.transform([im, np.asarray(im)]), np.stack([fs.X[0], fs.X[0]]), rtol=1e-4, atol=1e-5)
    assert emb.get_feature_names_out()[0] == "efficientnet_lite0.tf_in1k_0" and Z.shape[1] == 1280
    restored = pickle.loads(pickle.dumps(emb))  # the ONNX Runtime session is rebuilt after unpickling
    np.testing.assert_array_equal(restored.transform(paths[:2]), Z[:2])
    pipe = make_pipeline(
        fx.FeatxEmbedder("efficientnet_lite0", models_dir=str(models_dir)), LogisticRegression(C=1e-2, max_iter=2000)
    )
    scores = cross_val_score(pipe, paths, fs.labels, cv=3, scoring="roc_auc")
    assert scores.mean() > 0.7  # real ImageNet features separate the classes


def test_embedder_refuses_bad_inputs(models_dir, resnet18_random, tmp_path):
    from featx.errors import FeatxError

    emb = fx.FeatxEmbedder("resnet18", weights="random", models_dir=str(models_dir)).fit()
    with pytest.raises(FeatxError, match="input 0: arrays must be uint8"):
        emb.transform([np.zeros((8, 8), np.float32)])
    with pytest.raises(FeatxError, match="does not exist"):
        emb.transform([tmp_path / "missing.png"])


@pytest.mark.slow
def test_api_fit_predict_and_report_mirror_the_cli(api_store, demo_subset, models_dir, tmp_path):
    res = fx.fit(api_store, "efficientnet_lite0", cv=4, out=tmp_path / "r", save=tmp_path / "m.skops", bootstrap=0)
    assert res.cv.pooled.auc > 0.7 and res.saved_model.endswith("m.skops")
    model = fx.load_model(res.saved_model)
    assert model.meta["provenance"]["config"]["values"]["backbone"] == "efficientnet_lite0"
    test = Manifest([s for s in Manifest.from_csv(demo_subset / "subset.csv") if s.split == "test"][:5])
    test.to_csv(tmp_path / "t.csv")
    summary = fx.predict(res.saved_model, tmp_path / "t.csv", tmp_path / "p.csv", models_dir=models_dir)
    assert summary.n_predicted == 5 and not summary.failures
    (tmp_path / "r" / "report.html").unlink()
    assert fx.report(tmp_path / "r" / "results.json").is_file()
    assert fx.load_results(tmp_path / "r" / "results.json") == res  # the typed result survives its JSON
    with pytest.raises(
        ConfigError, match=r"n_boot: unknown setting\..*Settings of fit: bag, bootstrap, calibrate, copies, cv"
    ):
        fx.fit(api_store, "efficientnet_lite0", n_boot=0)
