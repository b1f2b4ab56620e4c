from pathlib import Path

import pytest
from PIL import Image

from featx.dataset.manifest import Manifest
from featx.errors import ManifestError


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 7).save(path)
    return path


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_relative_paths_resolve_against_csv_folder(tmp_path):
    _img(tmp_path / "data" / "a.png")
    _img(tmp_path / "data" / "sub dir" / "b ü.png")
    m = Manifest.from_csv(_csv(tmp_path / "data" / "m.csv", "path,label,subject\na.png,x,p1\nsub dir/b ü.png,y,p2\n"))
    assert [s.sample_id for s in m] == ["a.png", "sub dir/b ü.png"]
    assert m[1].path == tmp_path / "data" / "sub dir" / "b ü.png"
    assert m.classes == ["x", "y"] and m.has_subjects and m.has_labels


def test_id_split_and_slice_columns(tmp_path):
    _img(tmp_path / "a.png")
    m = Manifest.from_csv(
        _csv(tmp_path / "m.csv", "id,path,label,split,slice\ns1,a.png,x,Test,3\ns2,a.png,x,train,4\n")
    )
    assert [(s.sample_id, s.split, s.slice) for s in m] == [("s1", "test", 3), ("s2", "train", 4)]


def test_default_id_includes_slice(tmp_path):
    _img(tmp_path / "a.png")
    m = Manifest.from_csv(_csv(tmp_path / "m.csv", "path,slice\na.png,1\na.png,2\n"))
    assert [s.sample_id for s in m] == ["a.png#1", "a.png#2"]


def test_missing_csv(tmp_path):
    with pytest.raises(ManifestError, match="Manifest not found"):
        Manifest.from_csv(tmp_path / "nope.csv")


def test_no_path_column(tmp_path):
    with pytest.raises(ManifestError, match="no 'path' column .*found: file, label"):
        Manifest.from_csv(_csv(tmp_path / "m.csv", "file,label\na.png,x\n"))


def test_all_missing_files_reported_at_once(tmp_path):
    _img(tmp_path / "ok.png")
    text = "path,label\nok.png,x\n" + "".join(f"gone{i}.png,x\n" for i in range(12))
    with pytest.raises(ManifestError) as err:
        Manifest.from_csv(_csv(tmp_path / "m.csv", text))
    msg = str(err.value)
    assert "12 file(s) not found" in msg and "gone0.png" in msg and "and 2 more" in msg


def test_duplicate_ids(tmp_path):
    _img(tmp_path / "a.png")
    with pytest.raises(ManifestError, match="1 duplicate sample id.*a.png"):
        Manifest.from_csv(_csv(tmp_path / "m.csv", "path,label\na.png,x\na.png,y\n"))


def test_bad_rows_collected(tmp_path):
    _img(tmp_path / "a.png")
    with pytest.raises(ManifestError, match=r"2 bad row\(s\): line 2: empty 'path'; line 3: 'split' must be one of"):
        Manifest.from_csv(_csv(tmp_path / "m.csv", "path,split\n,train\na.png,holdout\n"))


def test_header_only(tmp_path):
    with pytest.raises(ManifestError, match="no rows"):
        Manifest.from_csv(_csv(tmp_path / "m.csv", "path,label\n"))


def test_excel_bom_and_case_insensitive_header(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "m.csv").write_bytes("\ufeffPath,Label\na.png,x\n".encode("utf-8"))
    assert Manifest.from_csv(tmp_path / "m.csv")[0].label == "x"


def test_no_subject_column_warns(tmp_path, caplog):
    _img(tmp_path / "a.png")
    Manifest.from_csv(_csv(tmp_path / "m.csv", "path,label\na.png,x\n"))
    assert "no 'subject' column" in caplog.text


def test_folder_of_class_subfolders(tmp_path):
    for p in ("benign/1.png", "benign/deep/2.PNG", "malignant/3.jpg"):
        _img(tmp_path / p)
    (tmp_path / "malignant" / "notes.txt").write_text("not an image")
    m = Manifest.load(tmp_path)
    assert [(s.sample_id, s.label) for s in m] == [
        ("benign/1.png", "benign"),
        ("benign/deep/2.PNG", "benign"),
        ("malignant/3.jpg", "malignant"),
    ]


def test_empty_folder(tmp_path):
    with pytest.raises(ManifestError, match="no images found"):
        Manifest.from_folder(tmp_path)


def test_csv_round_trip(tmp_path):
    _img(tmp_path / "img" / "a.png")
    m = Manifest.from_csv(_csv(tmp_path / "m.csv", "id,path,label,subject,split\ni1,img/a.png,x,p1,val\n"))
    out = m.to_csv(tmp_path / "copy.csv")
    assert "i1,img/a.png,x,p1,val" in out.read_text()
    assert list(Manifest.from_csv(out)) == list(m)
