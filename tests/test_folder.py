"""Plain folders of images."""

from __future__ import annotations

from PIL import Image

from priorsight.corpus.folder import read_folder
from priorsight.records import Drawing, ItemError


def test_folder_groups_by_subfolder_and_reports_non_images(tmp_path):
    for design in ("cup", "vase"):
        for view in ("a", "b"):
            (tmp_path / design).mkdir(exist_ok=True)
            Image.new("L", (40, 30), 255).save(tmp_path / design / f"{view}.png")
    Image.new("L", (20, 20), 0).save(tmp_path / "loose.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "cup" / "broken.png").write_bytes(b"not a png")
    items = list(read_folder(tmp_path))
    drawings = [i for i in items if isinstance(i, Drawing)]
    errors = [i for i in items if isinstance(i, ItemError)]
    assert sorted((d.patent_id, d.drawing_id) for d in drawings) == [
        ("cup", "cup/a"), ("cup", "cup/b"), ("loose", "loose"), ("vase", "vase/a"), ("vase", "vase/b")]
    assert sorted(e.reason.split(" (")[0].split(":")[0] for e in errors) == ["cannot decode image", "not an image file type"]
