"""The README's demo, run exactly as a user runs it (slow: about a minute on 2 cores)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_demo_runs_offline_and_matches_readme(tmp_path):
    featx = str(Path(sys.executable).parent / "featx")
    proc = subprocess.run([featx, "demo", "--out", tmp_path / "demo"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout and "published reference" in proc.stdout
    res = json.loads((tmp_path / "demo" / "results" / "results.json").read_text())
    assert res["extract"]["n"] == 780 and res["extract"]["failed"] == 0
    assert res["n_dev"] == 624 and res["n_test"] == 156 and res["protocol"]["cv"] == 10
    assert res["provenance"]["spec"]["name"] == "efficientnet_lite0.tf_in1k"
    # the figures quoted in the README are the ones the demo produces
    quoted = re.search(r"\| featx demo\b[^|\n]*\| *([0-9.]+) *\| *([0-9.]+) *\|", README.read_text())
    assert quoted, "README must quote the demo's test AUC and accuracy"
    assert abs(res["test"]["auc"] - float(quoted.group(1))) < 0.005
    assert abs(res["test"]["accuracy"] - float(quoted.group(2))) < 0.01
    for f in ("report.html", "roc.png", "confusion.png"):
        assert (tmp_path / "demo" / "results" / f).is_file()
    # the radiomics row: the same images, head, folds and test split, whole-image masks
    rad = res["radiomics"]
    assert (rad["computed"], rad["failed"], rad["feature_set"]) == (780, 0, "radiomics.default")
    assert "whole image" in rad["masks"] and "radiomics row" in proc.stdout
    rad_res = json.loads((tmp_path / "demo" / "results_radiomics" / "results.json").read_text())
    assert rad_res["folds"] == res["folds"] and rad_res["provenance"]["mask"].startswith("the whole image")
    quoted = re.search(r"\| featx demo, radiomics row\b[^|\n]*\| *([0-9.]+) *\| *([0-9.]+) *\|", README.read_text())
    assert quoted, "README must quote the radiomics row's test AUC and accuracy"
    assert abs(rad["test"]["auc"] - float(quoted.group(1))) < 0.005
    assert abs(rad["test"]["accuracy"] - float(quoted.group(2))) < 0.01
    # the combined row: CNN + radiomics side by side, the same head, folds and test split
    both = res["combined"]
    assert both["feature_set"] == "efficientnet_lite0+radiomics.default" and both["n_features"] == 1280 + 102
    both_res = json.loads((tmp_path / "demo" / "results_combined" / "results.json").read_text())
    assert both_res["folds"] == res["folds"] and set(both_res["provenance"]["parts"]) == {
        "efficientnet_lite0",
        "radiomics.default",
    }
    assert "combined row" in proc.stdout
    quoted = re.search(r"\| featx demo, combined row\b[^|\n]*\| *([0-9.]+) *\| *([0-9.]+) *\|", README.read_text())
    assert quoted, "README must quote the combined row's test AUC and accuracy"
    assert abs(both["test"]["auc"] - float(quoted.group(1))) < 0.005
    assert abs(both["test"]["accuracy"] - float(quoted.group(2))) < 0.01
