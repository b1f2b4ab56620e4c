"""The fidelity gate: a reduced-precision engine computes features only when they match fp32's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import stored

from featx.engines.fidelity import Calibration, FidelityError, compare, row_cosines, row_floor
from featx.errors import ConfigError
from featx.extract.config import ExtractConfig
from featx.extract.run import run_extract


def test_row_cosines_zero_and_non_finite_rows():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
    np.testing.assert_allclose(row_cosines(a, b), [1.0, 1.0, 0.0, 0.0, -1.0])


def test_gate_needs_the_mean_and_every_row():
    rng = np.random.default_rng(0)
    want = rng.normal(size=(40, 16))
    ids = [f"s{i}" for i in range(40)]
    close = compare(want + 1e-3 * rng.normal(size=want.shape), want, ids, engine="e", reference="r")
    assert close.passed and close.check() is close and close.mean_cosine > 0.999
    # one destroyed row of 40 keeps the mean at 0.975 + ..., but the row floor refuses it
    bad_row = want.copy()
    bad_row[7] = rng.normal(size=16)
    one = compare(bad_row, want, ids, engine="bf16 engine", reference="fp32", min_fidelity=0.97)
    assert one.mean_cosine >= 0.97 and not one.passed and one.worst_sample == "s7"
    with pytest.raises(FidelityError, match=r"bf16 engine.*40 calibration images.*lowest .* at 's7'.*--precision fp32"):
        one.check()
    assert row_floor(0.99) == pytest.approx(0.9) and row_floor(0.5) == 0.0


def test_calibration_checks_an_engine_built_elsewhere():
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(6, 4)).astype(np.float32)
    cal = Calibration(batch, batch * 2.0, tuple("abcdef"), "fp32", 0.99, batch_size=4)
    assert cal.check(lambda x: x * 3.0, "scaled").passed  # cosine ignores scale
    with pytest.raises(FidelityError, match="scrambled"):
        cal.check(lambda x: x[::-1].copy(), "scrambled")


@pytest.mark.parametrize("value", [0.0, 1.5, -1])
def test_min_fidelity_must_be_a_cosine(value):
    with pytest.raises(ConfigError, match="min_fidelity"):
        ExtractConfig(backbone="resnet18", store="s.h5", min_fidelity=value)


def test_bf16_passes_on_real_weights_and_records_its_fidelity(demo_subset, models_dir, lite0, tmp_path):
    from helpers import featx

    store = tmp_path / "s.h5"
    args = ["-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", store, "--models-dir", models_dir]
    proc = featx("extract", *args, "--runtime", "torch", "--precision", "bf16")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "120 extracted" in text and "torch-cpu-bf16 against fp32 (torch-cpu-fp32) on 32 calibration images" in text

    fid = stored(store, "efficientnet_lite0").provenance["fidelity"]
    assert fid["passed"] and fid["n"] == 32 and fid["mean_cosine"] >= 0.99 and fid["min_cosine"] >= 0.9
    assert f"mean cosine {fid['mean_cosine']:.4f}" in text


class _CancellingNet:
    """A model whose bf16 engine is broken: a large bias added then removed leaves only rounding noise."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.conv = torch.nn.Conv2d(3, 8, 1)
                with torch.no_grad():
                    self.conv.bias.fill_(1e4)

            def forward(self, x):
                return (self.conv(x) - 1e4).mean(dim=(2, 3))

        return Net().eval()


def test_a_broken_bf16_engine_is_refused_before_any_row(demo_subset, models_dir, lite0, tmp_path, monkeypatch):
    from featx.backbones.resolve import ResolvedBackbone
    from featx.extract import run as run_module

    spec = dataclasses.replace(lite0[0], feature_dim=8, name="cancelling.test", arch="cancelling")
    monkeypatch.setattr(
        run_module, "resolve_backbone", lambda *a, **k: ResolvedBackbone(spec, _CancellingNet.build(), None, "registry")
    )
    monkeypatch.setattr(run_module, "check_backbone_name", lambda name: None)  # a test network, no registered name
    store = tmp_path / "s.h5"
    common = dict(manifest=demo_subset / "subset.csv", backbone="cancelling", store=store, models_dir=models_dir)
    with pytest.raises(FidelityError, match=r"torch-cpu-bf16 engine fails the fidelity gate .* mean cosine"):
        run_extract(ExtractConfig(**common, runtime="torch", precision="bf16"), progress=False)
    assert not store.exists()  # refused before the store was touched
    # the same network in fp32 is fine: the gate judges the engine, not the model
    assert run_extract(ExtractConfig(**common, runtime="torch"), progress=False).n_extracted == 120
