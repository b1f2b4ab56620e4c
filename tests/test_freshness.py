"""A rerun never keeps stale rows: a file overwritten in place, an id that now names another file (a second
site's manifest with the same relative names), a changed mask; a moved folder or a touched file keeps its rows."""

import os
import shutil

import numpy as np
import SimpleITK as sitk
from conftest import SHARED
from helpers import featx, stored

from featx.api import extract
from featx.api import radiomics as run_radiomics
from featx.dataset.manifest import Manifest, Sample
from featx.store.journal import RowDone
from featx.store.open import open_store
from featx.store.store import OK, TODO
from featx.store.writer import store_writer

LITE0 = "efficientnet_lite0"
BRAIN = SHARED / "pyradiomics_brain"


def _site(demo_subset, folder, start):
    """Six demo images under ``folder`` as a.png ... f.png, with a manifest of relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    images = sorted((demo_subset).rglob("*.png"))[start : start + 6]
    for name, src in zip("abcdef", images):
        shutil.copyfile(src, folder / f"{name}.png")
    (folder / "m.csv").write_text(
        "id,path,label\n" + "".join(f"{n},{n}.png,{'xy'[i % 2]}\n" for i, n in enumerate("abcdef"))
    )
    return folder / "m.csv"


def _features(store, name=LITE0):
    with open_store(store) as st:
        fs = st.load(name)
        return dict(zip(fs.ids.tolist(), fs.X))


def test_changed_file_and_reused_ids_are_recomputed_and_named(demo_subset, models_dir, lite0, tmp_path):
    site_a = _site(demo_subset, tmp_path / "a", 0)
    store = tmp_path / "f.h5"
    first = extract(site_a, LITE0, store, models_dir=models_dir)
    assert (first.n_extracted, first.stale) == (6, [])
    before = _features(store)

    # the same images copied elsewhere (a moved folder) and a file touched: nothing is recomputed
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "a", moved)
    os.utime(moved / "c.png", ns=(1, 1))
    again = extract(moved / "m.csv", LITE0, store, models_dir=models_dir)
    assert (again.n_extracted, again.n_already, again.stale) == (0, 6, [])

    # an image overwritten in place: that row alone is recomputed, and its new features are those of the new file
    shutil.copyfile(moved / "e.png", moved / "b.png")
    changed = extract(moved / "m.csv", LITE0, store, models_dir=models_dir)
    assert (changed.n_extracted, changed.n_already) == (1, 5)
    assert [x.sample_id for x in changed.stale] == ["b"] and "b.png changed" in changed.stale[0].reason
    after = _features(store)
    np.testing.assert_allclose(after["b"], before["e"], atol=1e-5)
    assert all(np.array_equal(after[k], before[k]) for k in "acdef")

    # site B: the same relative names, other images -> every row recomputed, paths and hashes are site B's
    site_b = _site(demo_subset, tmp_path / "b", 20)
    proc = featx("extract", "-m", site_b, "-b", LITE0, "-s", store, "--models-dir", models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "6 extracted (of which 6 recomputed: their files changed)" in proc.stdout
    assert f"recomputed a: it was computed from {moved / 'a.png'}" in proc.stdout
    reference = tmp_path / "ref.h5"
    extract(site_b, LITE0, reference, models_dir=models_dir)
    site_b_alone = _features(reference)
    assert all(np.allclose(_features(store)[k], site_b_alone[k], atol=1e-5) for k in "abcdef")
    with open_store(store) as st:
        src = st.sources(LITE0)
        assert src["source"].tolist() == [str(tmp_path / "b" / f"{n}.png") for n in "abcdef"]
        assert st.status(LITE0).tolist() == [OK] * 6


def test_stale_rows_are_forgotten_at_once_so_an_interrupted_rerun_cannot_serve_them(tmp_path):
    """The check runs in the rerun's first transaction: a rerun killed before it recomputes leaves them to do."""
    img = tmp_path / "x.png"
    img.write_bytes(b"one")
    man = Manifest([Sample(sample_id="x", path=img, label="a")])
    with store_writer(tmp_path / "s.h5") as w:
        todo, _, stale = w.register(man, "f", 2, {}, "id", "cnn")
        j = w.start_journal("f", "id", 2)
        j.append([RowDone(todo[0][0], "x", "sha-of-one")], np.ones((1, 2), np.float32), [])
    img.write_bytes(b"two")  # another size: the cheap check fails, then the hash differs
    with store_writer(tmp_path / "s.h5") as w:
        todo, _, stale = w.register(man, "f", 2, {}, "id", "cnn")
    assert [x.sample_id for x in stale] == ["x"] and len(todo) == 1
    got = stored(tmp_path / "s.h5", "f")
    assert not got.filled[0] and got.status[0] == TODO and np.isnan(got.X[0]).all()


def test_radiomics_recomputes_a_row_whose_mask_changed(tmp_path):
    lab = sitk.ReadImage(str(BRAIN / "brain1_label.nrrd"))
    mask = tmp_path / "mask.nrrd"
    sitk.WriteImage(lab, str(mask))
    man = Manifest([Sample(sample_id="brain1", path=BRAIN / "brain1_image.nrrd", mask=mask, label="y")])
    first = run_radiomics(man, tmp_path / "f.h5", jobs=1)
    assert first.n_computed == 1
    arr = sitk.GetArrayFromImage(lab)
    z = np.flatnonzero((arr == 1).any(axis=(1, 2)))
    arr[: z[len(z) // 2]] = 0  # the lesion's lower half gone
    smaller = sitk.GetImageFromArray(arr)
    smaller.CopyInformation(lab)
    sitk.WriteImage(smaller, str(mask))
    again = run_radiomics(man, tmp_path / "f.h5", jobs=1)
    assert again.n_computed == 1 and "its mask mask.nrrd changed" in again.stale[0].reason
    with open_store(tmp_path / "f.h5") as st:
        names = st.column_names(first.feature_set)
        voxels = st.load(first.feature_set).X[0][names.index("original_shape_VoxelVolume")]
    assert voxels < first_volume(lab) * 0.9


def first_volume(lab) -> float:
    spacing = np.prod(lab.GetSpacing())
    return float((sitk.GetArrayFromImage(lab) == 1).sum() * spacing)


def test_predict_with_a_kept_store_scores_the_changed_image_not_its_old_features(
    demo_subset, models_dir, lite0, tmp_path
):
    import csv

    from featx.api import fit, predict

    train = _site(demo_subset, tmp_path / "train", 0)
    extract(train, LITE0, tmp_path / "train.h5", models_dir=models_dir)
    fit(tmp_path / "train.h5", LITE0, head="logreg", cv=2, save=tmp_path / "m.skops", bootstrap=0)
    new = _site(demo_subset, tmp_path / "new", 30)
    kept = tmp_path / "kept.h5"

    def scores(out):
        predict(tmp_path / "m.skops", new, tmp_path / out, store=kept, models_dir=models_dir)
        with open(tmp_path / out) as fh:
            return {r["id"]: r["p_y"] for r in csv.DictReader(fh)}

    before = scores("p1.csv")
    shutil.copyfile(tmp_path / "new" / "f.png", tmp_path / "new" / "a.png")  # a.png now shows f's image
    after = scores("p2.csv")
    assert after["a"] == after["f"] == before["f"] and after["a"] != before["a"]
    assert {k: v for k, v in after.items() if k != "a"} == {k: v for k, v in before.items() if k != "a"}
