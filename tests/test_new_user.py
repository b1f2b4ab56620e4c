"""What a new user met (issue 28): startup, interruption, offline hubs, typos, exit codes, narrow terminals,
packaging. Each item is checked the way the user met it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib
from conftest import make_store
from helpers import FEATX, assert_usage_error, featx, featx_process

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "sklearn", "scipy", "torch", "onnxruntime", "openvino", "h5py", "typer", "rich", "featx.evaluate")


def _modules_after(*args) -> tuple[str, list[str]]:
    code = (
        "import sys; from featx.cli.app import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        "print('MODULES', sorted({m.split('.')[0] if not m.startswith('featx.') else '.'.join(m.split('.')[:2]) "
        "for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    text, _, mods = out.rpartition("MODULES ")
    return text, eval(mods)  # noqa: S307 - our own printed list


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_version_and_help_import_no_heavy_module(args):
    text, modules = _modules_after(*args)
    assert not [m for m in HEAVY if m in modules], modules
    assert ("featx " in text) if args == ["--version"] else ("Commands:" in text and "audit" in text)


def test_the_quick_command_list_says_what_the_app_has():
    import typer

    from featx.cli.app import COMMANDS, app

    cmd = typer.main.get_command(app)
    ctx = typer.Context(cmd)
    listed = {n: cmd.get_command(ctx, n).get_short_help_str(limit=1000) for n in cmd.list_commands(ctx)}
    assert dict(COMMANDS) == listed


def test_version_is_quick_as_a_process():
    t0 = time.perf_counter()
    proc = featx_process("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("featx ")
    assert time.perf_counter() - t0 < 2.0  # generous for a loaded CI machine; the imports are what is checked above


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.3, 1.5, 4.0])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(demo_subset, tmp_path, models_dir, after):
    """Sent during the imports, the model's load or export, and the extraction itself."""
    cmd = [FEATX, "extract", "-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", tmp_path / "s.h5"]
    cmd += ["--models-dir", models_dir, "--batch-size", "4"]
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it finished first: nothing to interrupt
        return
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1].startswith("interrupted:"), err


def test_an_unreachable_hub_switches_to_the_local_cache_at_once(monkeypatch):
    from featx.backbones import hub

    hub.hub_reachable.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there: refused at once
    t0 = time.perf_counter()
    assert hub.offline_unless_reachable() is True
    assert time.perf_counter() - t0 < 3 and os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's own choice is kept
    assert hub.offline_unless_reachable() is False
    hub.hub_reachable.cache_clear()


@pytest.mark.slow
def test_a_timm_name_without_network_fails_in_seconds_with_featx_message(tmp_path):
    env = {"HF_ENDPOINT": "https://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env_all = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | env
    t0 = time.perf_counter()
    proc = subprocess.run(
        [FEATX, "backbones", "--describe", "timm:convnext_tiny"], capture_output=True, text=True, env=env_all
    )
    assert time.perf_counter() - t0 < 30  # the imports of timm and torch; no minute of retries
    assert proc.returncode == 1 and "not on this machine" in proc.stderr and "Traceback" not in proc.stderr


def test_a_misspelt_manifest_column_gets_did_you_mean_and_extract_warns_without_labels(tmp_path, demo_subset):
    image = next((demo_subset / "images").rglob("*.png"))
    (tmp_path / "m.csv").write_text(f"path,lable\n{image},benign\n")
    proc = featx("manifest", "check", tmp_path / "m.csv", "--cv", "2")
    assert "unknown column 'lable'; Did you mean 'label'?" in proc.stderr
    proc = featx("extract", "-m", tmp_path / "m.csv", "-b", "resnet18", "-s", tmp_path / "s.h5", "--weights", "random")
    assert "no row of the manifest has a label" in proc.stderr


def test_an_unknown_backbone_is_a_usage_error_found_before_the_manifest(tmp_path):
    proc = featx("extract", "-m", tmp_path / "missing.csv", "-b", "efficientnet_lite9", "-s", tmp_path / "s.h5")
    assert_usage_error(proc, "--backbone", "Unknown backbone 'efficientnet_lite9'", "Did you mean")


def test_a_feature_set_name_gets_the_closest_names_and_the_command_that_makes_it(tmp_path):
    store = make_store(tmp_path / "f.h5", "radiomics.default", np.zeros((4, 2)), ["a", "b"] * 2, kind="radiomics")
    proc = featx("fit", "-s", store, "-f", "radiomics")
    assert proc.returncode == 1
    assert "Did you mean 'radiomics.default'?" in proc.stderr and "Run 'featx radiomics'" in proc.stderr
    proc = featx("fit", "-s", store, "-f", "resnet50")
    assert "Run 'featx extract'" in proc.stderr


def test_at_80_columns_names_are_never_split_and_the_folds_line_is_whole(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    y = np.array(["neg", "pos"] * 30)
    X = rng.normal(size=(60, 4)) + (y == "pos")[:, None]
    store = make_store(tmp_path / "f.h5", "efficientnet_lite0_long_name", X, y)
    monkeypatch.setenv("COLUMNS", "80")
    proc = featx("bench", "-s", store, "-f", "efficientnet_lite0_long_name", "--heads", "logreg,knn", "--cv", "3")
    assert proc.returncode == 0, proc.stderr
    assert "efficientnet_lite0_long_name" in proc.stdout  # in one piece in the table
    assert "folds: 3-fold StratifiedKFold, NOT grouped (no subject ids), seed 0" in proc.stdout
    assert "…" not in proc.stdout
    proc = featx("fit", "-s", store, "-f", "efficientnet_lite0_long_name", "--cv", "3")
    assert "folds: 3-fold StratifiedKFold, NOT grouped (no subject ids), seed 0" in proc.stdout


def test_the_package_supports_what_it_declares_and_pins_torch_only_for_development():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.10"
    deps = meta["dependencies"]
    assert not [d for d in deps if re.match(r"torch(vision)?\s*==", d)], "the package pins torch exactly"
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in deps)
    config = (ROOT / "featx" / "config.py").read_text()
    assert "import tomli as tomllib" in config and "sys.version_info >= (3, 11)" in config
    assert "torch==" in (ROOT / "constraints.txt").read_text()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    # nothing else newer than 3.10 in the package: ruff checks it against target py310
    assert 'target-version = "py310"' in (ROOT / "pyproject.toml").read_text()


def test_degenerate_decisions_are_flagged_in_the_cli_and_the_report(tmp_path):
    from featx.results.metrics import Metrics, degenerate_decisions

    assert degenerate_decisions(Metrics(n=100, classes=("a", "b"), confusion_matrix=((70, 0), (29, 1))))
    assert not degenerate_decisions(Metrics(n=100, classes=("a", "b"), confusion_matrix=((70, 0), (20, 10))))
    assert not degenerate_decisions(Metrics(n=100, classes=("a", "b"), confusion_matrix=((90, 0), (10, 0))))
    rng = np.random.default_rng(0)
    y = np.array(["tumour"] * 45 + ["none"] * 15)  # pure noise, 25% minority: shrunk logreg calls all 'tumour'
    store = make_store(tmp_path / "f.h5", "noise", rng.normal(size=(60, 50)), y)
    args = ["-s", store, "-f", "noise", "--head", "logreg", "--cv", "3", "--bootstrap", "0"]
    proc = featx("fit", *args, "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert "degenerate decisions" in proc.stderr and "'tumour'" in proc.stderr
    assert "degenerate decisions" in (tmp_path / "r" / "report.html").read_text()
    proc = featx("bench", "-s", store, "-f", "noise", "--heads", "logreg,knn", "--cv", "3", "--bootstrap", "0")
    assert "degenerate decisions" in proc.stderr and "noise + logreg" in proc.stderr


def test_auto_times_in_proportion_to_the_job_says_what_it_chose_and_measures_nothing_on_a_rerun(
    demo_subset, tmp_path, models_dir, monkeypatch
):
    from featx.engines import choose as engines

    cands = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    assert engines.auto_plan(None, cands) == (cands, "")
    assert engines.auto_plan(10_000, cands) == (cands, "")
    kept, why = engines.auto_plan(2_000, cands)
    assert kept == [("onnx", "fp32"), ("openvino", "fp32")] and "int8" in why
    assert engines.auto_plan(64, cands)[0] == [("onnx", "fp32")]
    timed = []
    monkeypatch.setattr(engines, "_rate", lambda *a, **k: timed.append(a) or 1.0)
    args = ["extract", "-m", demo_subset / "subset.csv", "-b", "efficientnet_lite0", "-s", tmp_path / "s.h5"]
    args += ["--models-dir", tmp_path / "models", "--precision", "auto"]
    proc = featx(*args)
    assert proc.returncode == 0, proc.stderr
    assert "--precision auto chose onnx fp32 (nothing timed); 120 rows to compute" in proc.stdout and not timed
    proc = featx(*args)  # nothing left: the recorded engine, nothing measured
    assert proc.returncode == 0, proc.stderr
    assert "0 extracted" in proc.stdout and "nothing left to compute, nothing measured" in proc.stdout
    assert not timed
    info = featx("store", "info", tmp_path / "s.h5")
    assert "onnx fp32 (chosen by --precision auto)" in info.stdout


def test_a_ctrl_c_that_surfaces_as_another_exception_is_still_an_interruption(monkeypatch, capsys):
    """An extension module interrupted while it initialises raises ImportError, not KeyboardInterrupt."""
    import typer

    from featx.cli import interrupt
    from featx.cli.common import handle_errors

    def command():
        raise ImportError("initialization failed")

    monkeypatch.setattr(interrupt.State, "seen", True)
    monkeypatch.setattr(interrupt.State, "reported", False)
    with pytest.raises(typer.Exit) as exit_:
        handle_errors(command)()
    assert exit_.value.exit_code == 130 and interrupt.State.reported
    monkeypatch.setattr(interrupt.State, "seen", False)  # without a Ctrl-C it is what it is: a featx bug
    with pytest.raises(typer.Exit) as exit_:
        handle_errors(command)()
    assert exit_.value.exit_code == 1
