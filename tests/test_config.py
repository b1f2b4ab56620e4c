"""Settings: command line > featx.toml (or --config) > the backbone spec > defaults, recorded with their sources;
a bad key, type, value or section is one line naming the file and the key."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_store
from helpers import assert_usage_error, featx, stored

from featx.config import ProjectFile, load_project
from featx.errors import ConfigError
from featx.evaluate.config import BenchConfig, FitConfig
from featx.extract.config import ExtractConfig


def _layers(tmp_path: Path, text: str, section: str):
    (tmp_path / "featx.toml").write_text(text)
    return load_project(None, ("extract", "fit", "bench"), cwd=tmp_path).layer(section)


def test_command_line_beats_the_file_which_beats_the_defaults(tmp_path):
    file_layer = _layers(tmp_path, '[fit]\nhead = "lda"\ncv = 3\nseed = 7\n', "fit")
    cfg = FitConfig.resolve(("command line", {"cv": 5, "store": "s.h5", "features": "f"}), file_layer)
    assert (cfg.cv, cfg.head, cfg.seed, cfg.repeats) == (5, "lda", 7, 1)
    record = cfg.record()
    assert record["sources"]["cv"] == "command line" and record["sources"]["repeats"] == "default"
    assert record["sources"]["head"] == f"{tmp_path / 'featx.toml'} [fit]"
    assert FitConfig.from_record(json.loads(json.dumps(record))) == cfg  # rebuilt from provenance, unchanged


def test_the_backbone_spec_fills_what_neither_the_command_line_nor_the_file_set():
    cfg = ExtractConfig(backbone="resnet18", store="s.h5")
    assert cfg.effective("interpolation", "bilinear") == ("bilinear", "backbone spec")
    cfg = cfg.replace(source="featx.toml [extract]", interpolation="bicubic")
    assert cfg.effective("interpolation", "bilinear") == ("bicubic", "featx.toml [extract]")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[fit]\nhed = "lda"\n', "hed: unknown setting. Did you mean 'head'?"),
        ('[fit]\ncv = "three"\n', "cv: expected an integer, got 'three'"),
        ('[fit]\nhead = "svm"\n', "head: unknown value 'svm'. Did you mean 'svr' or 'svm-rbf'?"),
        ("[fit]\ncv = 1\n", "cv: must be at least 2, got 1"),
        ('[fit]\nsplit = "cv"\ntest_size = 0.3\n', "test_size: draws a fixed train/test split"),
    ],
)
def test_a_bad_key_type_or_value_in_the_file_names_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        FitConfig.resolve(("command line", {}), _layers(tmp_path, text, "fit"))
    assert err.value.source == f"{tmp_path / 'featx.toml'} [fit]"


def test_bad_files_and_sections(tmp_path):
    (tmp_path / "featx.toml").write_text("[fitt]\ncv = 3\n")
    with pytest.raises(ConfigError, match=r"unknown section \[fitt\]. Did you mean 'fit'\?"):
        load_project(None, ("extract", "fit"), cwd=tmp_path)
    (tmp_path / "featx.toml").write_text("[fit\ncv = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_project(None, ("fit",), cwd=tmp_path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_project(tmp_path / "nope.toml", ("fit",))
    assert load_project(None, ("fit",), cwd=tmp_path / "elsewhere") == ProjectFile(None, {})


def test_lists_come_from_toml_lists_or_comma_separated_text():
    a = BenchConfig(store="s.h5", features=["a", "b"], heads="logreg, lda")
    assert a.features == ("a", "b") and a.heads == ("logreg", "lda") and a.head_names == ("logreg", "lda")
    assert BenchConfig(store="s.h5", features="a").head_names[:2] == ("knn", "lda")  # every registered head


@pytest.fixture
def small_store(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(20) % 2, 2)
    X = rng.normal(size=(40, 4)) + y[:, None]
    subjects = np.repeat([f"p{i:02d}" for i in range(20)], 2)
    return make_store(tmp_path / "s.h5", "deep", X, np.array(["a", "b"])[y], subjects=subjects)


def test_fit_and_bench_take_their_defaults_from_featx_toml_and_record_them(small_store, tmp_path):
    (tmp_path / "featx.toml").write_text(
        '[fit]\nhead = "lda"\ncv = 3\nbootstrap = 0\n\n[bench]\nheads = ["logreg", "lda"]\ncv = 4\nbootstrap = 0\n'
    )
    proc = featx("fit", "-s", small_store, "-f", "deep", "--cv", "5", "--out", tmp_path / "fit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "fit" / "results.json").read_text())
    assert res["head"]["name"] == "lda" and res["protocol"]["cv"] == 5 and res["protocol"]["n_boot"] == 0
    sources = res["config"]["sources"]
    assert sources["cv"] == "command line" and sources["head"] == "featx.toml [fit]" and sources["seed"] == "default"
    proc = featx("bench", "-s", small_store, "-f", "deep", "--out", tmp_path / "bench", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {c["head"] for c in res["cells"]} == {"logreg", "lda"} and res["protocol"]["cv"] == 4
    other = tmp_path / "other.toml"
    other.write_text('[fit]\nhead = "knn"\nbootstrap = 0\n')
    proc = featx("fit", "-s", small_store, "-f", "deep", "--config", other, "--out", tmp_path / "fit2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "fit2" / "results.json").read_text())["head"]["name"] == "knn"


def test_a_bad_featx_toml_is_a_usage_error_naming_the_file_and_the_key(small_store, tmp_path):
    (tmp_path / "featx.toml").write_text('[fit]\nhed = "lda"\n')
    assert_usage_error(
        featx("fit", "-s", small_store, "-f", "deep", cwd=tmp_path),
        "featx.toml [fit] hed:",
        "unknown setting. Did you mean 'head'?",
    )
    (tmp_path / "featx.toml").write_text("[fit]\ncv = 'three'\n")
    assert_usage_error(
        featx("fit", "-s", small_store, "-f", "deep", cwd=tmp_path),
        "featx.toml [fit] cv:",
        "expected an integer, got 'three'",
    )
    (tmp_path / "featx.toml").write_text("[extrakt]\nbatch_size = 4\n")
    assert_usage_error(
        featx("fit", "-s", small_store, "-f", "deep", cwd=tmp_path),
        "unknown section [extrakt]",
        "Did you mean 'extract'?",
    )
    assert_usage_error(featx("fit", "-s", small_store, cwd=tmp_path / ".."), "--features: required")
    assert_usage_error(
        featx("fit", "-s", small_store, "-f", "deep", "--config", tmp_path / "none.toml"),
        "--config: config file not found",
    )


def test_extract_takes_its_backbone_from_featx_toml_and_records_every_source(
    demo_subset, models_dir, resnet18_random, tmp_path
):
    (tmp_path / "featx.toml").write_text(
        f'[extract]\nbackbone = "resnet18"\nweights = "random"\nbatch_size = 4\nmodels_dir = "{models_dir}"\n'
    )
    proc = featx(
        "extract", "-m", demo_subset / "subset.csv", "-s", tmp_path / "f.h5", "--batch-size", "16", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    prov = stored(tmp_path / "f.h5", "resnet18.random").provenance
    config = prov["config"]
    assert config["values"]["backbone"] == "resnet18" and config["sources"]["backbone"] == "featx.toml [extract]"
    assert config["values"]["batch_size"] == 16 and config["sources"]["batch_size"] == "command line"
    assert config["sources"]["window"] == "default"
    assert prov["settings"]["interpolation"] == {"value": "bilinear", "source": "backbone spec"}
    assert prov["spec"]["weights_sha256"] is None and prov["onnx_sha256"] == resnet18_random[2].onnx_sha256
