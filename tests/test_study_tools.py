"""The capabilities the study recipes needed: slice-level (leaky) splits for comparison, one fine-tuned model
per sequence on shared folds (and their fusion), and ``featx compare``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_store

from featx.api import bench as run_bench
from featx.api import extract
from featx.api import finetune as run_finetune
from featx.api import fit as run_fit
from featx.errors import ConfigError, FeatxError
from featx.store.open import open_store


def _multi_sequence(tmp_path, n_subjects=12, per=3, signal=1.0, seed=0):
    """Subjects with two sequences; each subject has its own strong offset (what a leak can memorise)."""
    rng = np.random.default_rng(seed)
    X, labels, subjects, seqs = [], [], [], []
    for s in range(n_subjects):
        y = s % 2
        look = rng.normal(0, 3, 8)
        for q in ("T1", "T2"):
            for _ in range(per):
                X.append(look + signal * y + rng.normal(0, 0.3, 8))
                labels.append("HGG" if y else "LGG")
                subjects.append(f"p{s:02d}")
                seqs.append(q)
    return make_store(tmp_path / "f.h5", "cnn", np.array(X), labels, subjects=subjects, sequences=seqs)


def test_split_by_image_ignores_subjects_and_is_recorded(tmp_path):
    store = _multi_sequence(tmp_path, signal=0.0)  # no class signal at all: only the subjects' own looks
    honest = run_fit(store, "cnn", head="knn", cv=3, bootstrap=0)
    leaky = run_fit(store, "cnn", head="knn", cv=3, bootstrap=0, split_by="image")
    assert honest.protocol.grouped_by_subject and honest.protocol.split_by == "subject"
    assert not leaky.protocol.grouped_by_subject and leaky.protocol.split_by == "image" and leaky.protocol.leaky
    # the leaky split puts a subject's images in several folds; the honest one never does
    folds_of = {}
    for i, (f,) in leaky.folds["fold_of"].items():  # ids s0000.. in subject order, 6 rows per subject
        folds_of.setdefault(int(i[1:]) // 6, set()).add(f)
    assert any(len(f) > 1 for f in folds_of.values())
    # with labels carried only by subject identity, the leak scores far above chance; the honest split does not
    assert leaky.cv.pooled.accuracy > 0.9 > honest.cv.pooled.accuracy + 0.2
    with pytest.raises(ConfigError, match="split_by: unknown value 'slice'. Choose one of: subject, image"):
        run_fit(store, "cnn", cv=3, bootstrap=0, split_by="slice")


def test_compare_rows_from_fit_fused_bench_and_leaky_runs(tmp_path):
    from featx.report.compare import compare_rows, write_compare

    store = _multi_sequence(tmp_path)
    run_fit(store, "cnn", head="logreg", cv=3, bootstrap=0, fuse="vote", out=tmp_path / "runs" / "fused")
    run_fit(store, "cnn", head="logreg", cv=3, bootstrap=0, split_by="image", out=tmp_path / "runs" / "leaky")
    run_fit(
        store,
        "cnn",
        head="logreg",
        split="fixed",
        test_size=0.3,
        repeats=4,
        bootstrap=0,
        out=tmp_path / "runs" / "splits",
    )
    run_bench(store, ["cnn"], ["logreg", "lda"], cv=3, bootstrap=0, out=tmp_path / "runs" / "bench")
    rows = compare_rows([tmp_path / "runs"])
    by = {(r["run"], r["sequence"], r["model"]): r for r in rows}
    assert {k[:2] for k in by} == {
        ("fused", "T1"),
        ("fused", "T2"),
        ("fused", "fused (vote)"),
        ("leaky", ""),
        ("splits", ""),
        ("bench", ""),
    }
    fused = json.loads((tmp_path / "runs" / "fused" / "results.json").read_text())
    row = by[("fused", "T1", "cnn + logreg")]
    assert row["auc"] == fused["sequences"]["T1"]["cv"]["pooled"]["auc"]  # read, never refitted
    assert by[("fused", "fused (vote)", "cnn + logreg")]["level"].startswith("subject")
    assert by[("leaky", "", "cnn + logreg")]["split"] == "3-fold CV by image [image-level: leaky]"
    splits = by[("splits", "", "cnn + logreg")]
    assert splits["split"] == "4 x 70/30 splits by subject"
    values = json.loads((tmp_path / "runs" / "splits" / "results.json").read_text())
    fold_auc = values["cv"]["per_fold"]["auc"]["values"]
    assert splits["auc_fold_mean"] == pytest.approx(np.mean(fold_auc))
    assert splits["auc_fold_var"] == pytest.approx(np.var(fold_auc, ddof=1))
    assert values["seconds"] > 0 and splits["seconds"] == values["seconds"]
    assert {k[2] for k in by if k[0] == "bench"} == {"cnn + logreg", "cnn + lda"}
    paths = write_compare(rows, tmp_path / "summary")
    md = paths["md"].read_text()
    assert md.count("\n") == len(rows) + 2 and "leaky" in md
    with pytest.raises(FeatxError, match="No results.json"):
        compare_rows([tmp_path / "summary"])


def test_compare_cli(tmp_path):
    from helpers import assert_one_line_error, featx

    store = _multi_sequence(tmp_path)
    run_fit(store, "cnn", head="logreg", cv=3, bootstrap=0, out=tmp_path / "runs" / "a")
    proc = featx("compare", tmp_path / "runs", "--out", tmp_path / "summary")
    assert proc.returncode == 0, proc.stderr
    assert "cnn + logreg" in (tmp_path / "summary" / "compare.md").read_text() and "1 model(s)" in proc.stdout
    assert (tmp_path / "summary" / "compare.csv").is_file()
    assert_one_line_error(featx("compare", tmp_path / "nothing-here"), "nothing-here", "no such file")


def test_finetune_per_sequence_on_shared_folds(tmp_path):
    from PIL import Image

    from featx.dataset.manifest import Manifest, Sample

    rng = np.random.default_rng(0)
    samples = []
    for s in range(8):
        for q in ("T1", "T2"):
            for k in range(2):
                path = tmp_path / "img" / f"p{s}_{q}_{k}.png"
                path.parent.mkdir(exist_ok=True)
                Image.fromarray((rng.random((24, 24)) * 80 + 120 * (s % 2)).astype(np.uint8)).save(path)
                samples.append(
                    Sample(sample_id=path.stem, path=path, label="b" if s % 2 else "a", subject=f"p{s}", sequence=q)
                )
    man = Manifest(samples)
    kw = dict(weights="random", epochs=1, batch_size=4, val_fraction=0, cv=2, input_size=32, bootstrap=0, gradcam=0)
    one = run_finetune(man, "resnet18", tmp_path / "t2", sequence="T2", **kw)
    assert one.sequence == "T2" and one.n_dev == 16
    index = run_finetune(man, "resnet18", tmp_path / "each", sequence="each", **kw)
    assert set(index.sequences) == {"T1", "T2"}
    assert json.loads((tmp_path / "each" / "sequences.json").read_text())["type"] == "finetune-sequences"
    t1 = json.loads((tmp_path / "each" / "T1" / "results.json").read_text())
    t2 = json.loads((tmp_path / "each" / "T2" / "results.json").read_text())
    assert t2["folds"] == one.folds  # T2 alone or beside T1: the same folds
    # the same subjects in the same folds for both sequence models
    fold = lambda r: {i.split("_")[0]: f[0] for i, f in r["folds"]["fold_of"].items()}  # noqa: E731
    assert fold(t1) == fold(t2)
    fused = run_finetune(man, "resnet18", tmp_path / "fused", fuse="vote", **kw)
    assert fused.protocol.fuse == "vote" and set(fused.sequences) == {"T1", "T2"}
    assert fused.cv.level.startswith("subject") and fused.cv.n_tested == 8
    assert {r.sequence for r in fused.finetune.runs} == {"T1", "T2"}
    assert (tmp_path / "fused" / "T1" / "curves.png").is_file() and (tmp_path / "fused" / "report.html").is_file()
    with pytest.raises(ConfigError, match="sequence: 'FLAIR' is not in the manifest's 'sequence' column"):
        run_finetune(man, "resnet18", tmp_path / "x", sequence="FLAIR", **kw)
    with pytest.raises(ConfigError, match="export: exports one model"):
        run_finetune(man, "resnet18", tmp_path / "x", sequence="each", export="both", **kw)


def test_extract_interpolation_and_resize_overrides(demo_subset, tmp_path):
    from featx.dataset.manifest import Manifest

    man = Manifest(list(Manifest.from_csv(demo_subset / "subset.csv"))[:6])
    store = tmp_path / "f.h5"
    kw = dict(weights="random", runtime="torch")
    extract(man, "resnet18", store, name="plain", **kw)
    extract(man, "resnet18", store, name="bicubic", interpolation="bicubic", resize_to_input=True, **kw)
    with open_store(store) as st:
        plain, bicubic = st.load("plain"), st.load("bicubic")
        prov = st.provenance("bicubic")
    assert (
        prov["spec"]["interpolation"] == "bicubic" and prov["spec"]["resize_size"] == prov["spec"]["crop_size"] == 224
    )
    config = prov["config"]["values"]  # the whole config is recorded: predict repeats it
    assert config["interpolation"] == "bicubic" and config["resize_to_input"] is True
    assert prov["settings"]["interpolation"] == {"value": "bicubic", "source": "argument"}
    assert st_provenance_of(store, "plain")["settings"]["interpolation"] == {
        "value": "bilinear",
        "source": "backbone spec",
    }
    assert "resize short side 224 (bicubic" in prov["preprocessing"]
    assert not np.allclose(plain.X, bicubic.X)  # other pixels in, other features out
    with pytest.raises(ConfigError, match="interpolation: unknown value 'lanczos'. Choose one of: bilinear, bicubic"):
        extract(man, "resnet18", store, name="x", interpolation="lanczos", **kw)


def st_provenance_of(store, name):

    with open_store(store) as st:
        return st.provenance(name)
