"""`featx manifest check`: summary and every problem of a broken manifest in one run."""

import shutil

import SimpleITK as sitk
from conftest import SHARED
from helpers import featx
from PIL import Image

from featx.dataset.checks import check_manifest

BRAIN = SHARED / "pyradiomics_brain"


def _write(tmp_path, header, rows):
    p = tmp_path / "m.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def test_multi_sequence_summary_and_warnings(tmp_path):
    for i in range(6):
        Image.new("L", (8, 8), i).save(tmp_path / f"{i}.png")
    rows = [
        f"{i}.png,{'hgg' if p in ('p1', 'p2') else 'lgg'},{p},{seq}"
        for i, (p, seq) in enumerate(
            [("p1", "T1"), ("p1", "T2"), ("p2", "T1"), ("p2", "T2"), ("p3", "T1"), ("p4", "T2")]
        )
    ]
    rows[1] = rows[1].replace(",hgg,", ",lgg,")  # p1's T2 disagrees with its T1
    rep = check_manifest(_write(tmp_path, "path,label,subject,sequence", rows), cv=2, progress=False)
    assert rep.ok, rep.problems
    assert rep.images_per_label == {"hgg": 3, "lgg": 3} and rep.subjects_per_label == {"hgg": 2, "lgg": 3}
    assert rep.images_per_subject == (1, 1.5, 2) and rep.sequences == {"T1": 3, "T2": 3}
    assert rep.sequences_per_subject == {1: 2, 2: 2}
    assert any("2 subject(s) miss a sequence: p3 lacks T2; p4 lacks T1" in w for w in rep.warnings)
    assert any("1 subject(s) have images of more than one label: p1: hgg, lgg" in w for w in rep.warnings)


def test_every_problem_in_one_run(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "ok.png").read_bytes()[:20])
    shutil.copy(BRAIN / "breast1_image.nrrd", tmp_path / "vol.nrrd")
    sitk.WriteImage(sitk.ReadImage(str(BRAIN / "breast1_label.nrrd")) * 0, str(tmp_path / "empty.nrrd"))
    rows = [
        "a,ok.png,x,p1,,",
        "a,ok.png,x,p2,,",  # duplicate id
        "b,gone.png,x,p3,,",  # missing file
        "c,trunc.png,x,p4,,",  # unreadable
        "d,ok.png,,p5,,",  # no label
        "e,vol.nrrd,y,p6,empty.nrrd,3",  # empty mask
        "f,ok.png,x,p7,,notanumber",  # bad row
    ]
    csv = _write(tmp_path, "id,path,label,subject,mask,slice", rows)
    rep = check_manifest(csv, cv=3, labels=["x"], progress=False)
    text = " | ".join(rep.problems)
    for fragment in (
        "1 bad row(s): line 8: 'slice' must be an integer",
        "1 duplicate sample id(s): 'a' on lines 2, 3",
        "1 file(s) not found, e.g.",
        "gone.png",
        "1 row(s) without a label (line(s) 6)",
        "unknown label(s) ['y']",
        "fewer subjects than 3-fold CV needs: {'y': 1}",
        "1 unreadable file(s):",
        "trunc.png",
        "1 empty mask(s)",
        "empty.nrrd",
    ):
        assert fragment in text, fragment
    proc = featx("manifest", "check", csv, "--cv", "3")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.count("problem:") == len(rep.problems) - 1  # no --labels here: no unknown-label problem
    assert "error:" in proc.stderr and "problem(s), listed above" in proc.stderr


def test_check_ok_prints_summary(demo_subset):
    proc = featx("manifest", "check", demo_subset / "subset.csv", "--cv", "5")
    assert proc.returncode == 0, proc.stderr
    assert "normal_benign" in proc.stdout and "ok" in proc.stdout
    assert "have no subject" in proc.stdout  # BreastMNIST has no patient ids: a loud warning
