"""The DeepPatent2 reader on a small fixture written from the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from priorsight.corpus.deeppatent2 import read_deeppatent2
from priorsight.records import Drawing, ItemError


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("1", (120, 90), 1)
    ImageDraw.Draw(img).rectangle([10 + seed, 10, 80, 60 + seed], outline=0)
    img.save(path)


def _records() -> list[dict]:
    recs = []
    for patent, obj in [("USD0891234-20200728", "chair"), ("USD0891235-20200728", "lamp")]:
        for f, aspect in enumerate(["perspective", "front", "top plan", "underside"], 1):
            recs.append({
                "id": f"{patent}-D0000{f}-1", "patentID": patent, "patentdate": "20200728", "figid": str(f),
                "caption": f"FIG. {f} is a {aspect} view of a {obj}", "object": obj, "aspect": aspect,
                "figure_file": f"{patent}-D0000{f}.png", "subfigure_file": f"{patent}-D0000{f}-1.png",
                "object_title": obj.title(), "bbox": [0, 0, 10, 10],
            })
    return recs


@pytest.fixture(params=["list", "object", "lines"])
def dp2(tmp_path, request) -> Path:
    root = tmp_path / "dp2"
    recs = _records()
    for i, r in enumerate(recs):
        _png(root / "2020" / "Segmented" / r["subfigure_file"], i)
    # damage: one record with a missing image, one with a corrupt PNG, one without patentID
    recs.append({**recs[0], "id": "missing-img", "subfigure_file": "nope.png", "figure_file": "nope2.png"})
    (root / "2020" / "Segmented" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    recs.append({**recs[0], "id": "corrupt", "subfigure_file": "corrupt.png"})
    recs.append({**recs[0], "id": "nopatent", "patentID": ""})
    jf = root / "2020" / "design2020.json"
    if request.param == "list":
        jf.write_text(json.dumps(recs))
    elif request.param == "object":
        jf.write_text(json.dumps({r["id"]: {k: v for k, v in r.items() if k != "id"} for r in recs}))
    else:
        jf.write_text("\n".join(json.dumps(r) for r in recs))
    return root


def test_reads_all_records_and_reports_bad_ones(dp2):
    items = list(read_deeppatent2(dp2, locarno_by_patent={"USD0891234-20200728": "0601"}))
    drawings = [i for i in items if isinstance(i, Drawing)]
    errors = [i for i in items if isinstance(i, ItemError)]
    assert len(drawings) == 8
    assert [d.view for d in drawings[:4]] == ["perspective", "front", "top", "bottom"]
    first = drawings[0]
    assert first.drawing_id == "USD0891234-20200728-D00001-1"
    assert (first.patent_id, first.object_name, first.grant_date, first.figure_number) == (
        "USD0891234-20200728", "chair", "2020-07-28", 1)
    assert first.locarno_class == "06-01" and drawings[4].locarno_class is None
    assert (first.width, first.height) == (120, 90)
    reasons = sorted(e.reason for e in errors)
    assert len(errors) == 3
    assert any("image file not found" in r for r in reasons)
    assert any("cannot decode image" in r for r in reasons)
    assert any("no patentID" in r for r in reasons)


def test_copy_images(dp2, tmp_path):
    out = tmp_path / "imgs"
    drawings = [i for i in read_deeppatent2(dp2, images_out=str(out)) if isinstance(i, Drawing)]
    assert all(Path(d.image_uri).is_file() and d.image_uri.startswith(str(out)) for d in drawings)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="design"):
        list(read_deeppatent2(tmp_path))
