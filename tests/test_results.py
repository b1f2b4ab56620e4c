"""Typed results: results.json files of earlier featx versions still load, re-render and compare; new ones
round-trip through JSON unchanged; a newer format is refused with what to do."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import featx

from featx.errors import FeatxError
from featx.report.compare import compare_rows
from featx.results.bench import BenchResult
from featx.results.io import FORMAT, load_results, result_from_json, result_to_json
from featx.results.runs import FitResult

LEGACY = Path(__file__).resolve().parent / "data" / "results_v1"  # written by featx at commit 38c4628
RUNS = ("fit", "fit_vote", "bench", "bench_fixed", "finetune")


@pytest.mark.parametrize("name", RUNS)
def test_a_legacy_results_file_loads_typed_and_loses_nothing(name):
    raw = json.loads((LEGACY / f"{name}.json").read_text())
    res = load_results(LEGACY / f"{name}.json")
    assert isinstance(res, BenchResult if raw["type"] == "bench" else FitResult) and "format" not in raw
    back = result_to_json(res)
    assert back["format"] == FORMAT
    _same(raw, back)
    assert result_to_json(result_from_json(back)) == back


def _same(old, new, path=""):
    """Every key and value of the old file is in the new one."""
    if isinstance(old, dict):
        for k, v in old.items():
            if k == "format":
                continue
            assert k in new, f"{path}.{k} lost"
            _same(v, new[k], f"{path}.{k}")
    elif isinstance(old, list):
        assert len(old) == len(new), path
        for i, (a, b) in enumerate(zip(old, new)):
            _same(a, b, f"{path}[{i}]")
    else:
        # a NaN of an old file is written as null now: results never hold a bare NaN
        assert old == new or (old != old and new is None), (path, old, new)


@pytest.mark.parametrize("name", RUNS)
def test_featx_report_re_renders_a_legacy_results_file(name, tmp_path):
    run = tmp_path / name
    run.mkdir()
    shutil.copy(LEGACY / f"{name}.json", run / "results.json")
    proc = featx("report", run / "results.json")
    assert proc.returncode == 0, proc.stderr
    page = (run / "report.html").read_text()
    res = load_results(run / "results.json")
    assert "Provenance" in page and "data:image/png;base64," in page and res.featx_version in page
    if isinstance(res, BenchResult):
        best = res.cells[0]
        assert f"{best.cv.pooled.auc:.3f}" in page and "Pairwise comparisons" in page
    else:
        assert f"{res.cv.pooled.auc:.3f}" in page and res.protocol.folds in page
        if res.finetune:
            assert "Fine-tuning" in page and (run / "curves.png").is_file()
        if res.sequences:
            assert "Per-sequence models and the fused one" in page


def test_featx_compare_reads_legacy_runs(tmp_path):
    for name in RUNS:
        (tmp_path / name).mkdir()
        shutil.copy(LEGACY / f"{name}.json", tmp_path / name / "results.json")
    rows = compare_rows([tmp_path])
    by_run = {r["run"] for r in rows}
    assert by_run == set(RUNS)
    fused = [r for r in rows if r["run"] == "fit_vote"]
    assert [r["sequence"] for r in fused] == ["FLAIR", "T1", "T2", "fused (vote)"]  # sorted, then the fused one
    ft = next(r for r in rows if r["run"] == "finetune")
    assert ft["model"] == "resnet18.ft-freeze3 (fine-tuned, linear head)" and 0 <= ft["best_acc"] <= 1


def test_a_newer_or_foreign_file_is_refused_with_what_to_do(tmp_path):
    raw = json.loads((LEGACY / "fit.json").read_text())
    with pytest.raises(FeatxError, match="newer than this featx reads.*upgrade featx"):
        result_from_json({**raw, "format": "featx-results/9"})
    with pytest.raises(FeatxError, match="not a fit, bench or finetune result"):
        result_from_json({"type": "finetune-sequences"})
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(FeatxError, match="Cannot read"):
        load_results(tmp_path / "r.json")
    with pytest.raises(FeatxError, match="a malformed fit result"):
        result_from_json({**raw, "cv": {"pooled": "oops"}})


FLAT = Path(__file__).resolve().parent / "data" / "results_v2"  # written by the flat evaluate/ layout (509087a)


@pytest.mark.parametrize("name", ("fit", "fit_knn", "bench"))
def test_results_of_the_flat_evaluate_layout_re_render_unchanged(name, tmp_path):
    from featx.report.write import rerender

    raw = json.loads((FLAT / f"{name}.json").read_text())
    res = load_results(FLAT / f"{name}.json")
    assert raw["format"] == "featx-results/2" and res.target.kind == "classification"
    _same(raw, result_to_json(res))  # every key and value, as written then
    (tmp_path / "results.json").write_text(json.dumps(raw))
    page = rerender(tmp_path / "results.json").read_text()
    best = res.cells[0].cv.pooled.auc if isinstance(res, BenchResult) else res.cv.pooled.auc
    assert f"{best:.3f}" in page and "data:image/png;base64," in page
    if isinstance(res, BenchResult):
        assert res.learning and "Label efficiency" in page


def test_models_saved_by_the_flat_evaluate_layout_load_and_predict_the_same():
    from featx.evaluate.models.saved import load_model

    expected = json.loads((FLAT / "expected_proba.json").read_text())
    for name, rows in (("fit", "X_new"), ("knn", "R_new")):
        model = load_model(FLAT / f"{name}.skops")
        head = next(iter(model.models.values()))
        assert type(head).__module__.startswith("featx.evaluate.heads.")  # the class of the new layout
        np.testing.assert_array_equal(head.predict_proba(np.load(FLAT / f"{rows}.npy")), expected[name])
    assert list(load_model(FLAT / "bench.skops").models) == ["cnnfeat + logreg"]
