"""The USPTO design grant reader, on the real shared sample and on damaged copies of it."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from priorsight.corpus.uspto import assign_figures, parse_grant, read_uspto
from priorsight.manifest import CorpusWriter, read_failures, read_manifest
from priorsight.records import VIEWS, Drawing, ItemError, object_from_title

SPOON = "USD0909824-20210209"


def _split(items):
    drawings = [i for i in items if isinstance(i, Drawing)]
    errors = [i for i in items if isinstance(i, ItemError)]
    return drawings, errors


def test_whole_shared_sample(uspto_sample, tmp_path):
    drawings, errors = _split(list(read_uspto(uspto_sample, str(tmp_path / "images"))))
    assert [e for e in errors if e.severity == "error"] == []
    assert len({d.patent_id for d in drawings}) == 22
    assert len(drawings) == 197 == len(list(uspto_sample.glob("*/*.TIF")))
    assert all(re.fullmatch(r"\d\d-\d\d", d.locarno_class) for d in drawings)
    assert len({d.locarno_class.split("-")[0] for d in drawings}) == 12
    assert all(d.view in VIEWS for d in drawings)
    # every figure the text names has a recognised view, and it reaches a drawing
    for folder in sorted(p for p in uspto_sample.iterdir() if p.is_dir()):
        grant = parse_grant(next(folder.glob("*.XML")).read_bytes())
        assert all(f.named_view for f in grant.figures), [f.text for f in grant.figures if not f.named_view]
    assert all(d.view != "other" for d in drawings)
    assert all(Path(d.image_uri).is_file() for d in drawings)
    spoon = {d.drawing_id: d for d in drawings if d.patent_id == "USD0909824"}
    assert spoon[f"{SPOON}-D00000"].view == "perspective"  # the front page shows FIG. 1
    assert spoon[f"{SPOON}-D00000"].locarno_class == "07-03"
    assert spoon[f"{SPOON}-D00000"].title == "Sport spoon"
    # the US design class from classification-national ("D 7654" in the XML)
    assert spoon[f"{SPOON}-D00000"].us_class == "D7-654"
    assert all(re.fullmatch(r"D\d{1,2}-\d+(\.\d+)?", d.us_class) for d in drawings)
    assert {d.us_class for d in drawings if d.patent_id == "USD0907292"} == {"D28-47"}  # "D28 47"
    assert "USD151600" in spoon[f"{SPOON}-D00000"].cited_patents
    assert spoon[f"{SPOON}-D00001"].grant_date == "2021-02-09"
    assert "sport spoon" in spoon[f"{SPOON}-D00001"].caption  # from captions.csv


def test_views_of_a_one_figure_per_sheet_patent(uspto_sample):
    drawings, _ = _split(list(read_uspto(uspto_sample / "USD0917867-20210504")))
    views = [(d.figure_label, d.view) for d in drawings]
    assert views == [("FIG. 1", "perspective"), ("FIG. 1", "perspective"), ("FIG. 2", "left"),
                     ("FIG. 3", "right"), ("FIG. 4", "perspective"), ("FIG. 5", "top")]


def test_assign_figures_spreads_figures_over_sheets():
    figs = list(range(7))
    assert assign_figures(3, figs) == [[0, 1], [2, 3], [4, 5, 6]]
    assert assign_figures(3, figs[:3]) == [[0], [1], [2]]
    assert assign_figures(3, figs[:2]) == [[0], [1], []]


def test_object_from_title():
    assert object_from_title("Display screen or portion thereof with a graphical user interface") == "display screen"
    assert object_from_title("Sport spoon") == "sport spoon"
    assert object_from_title("Heat dissipating device for batteries or electric devices") == "heat dissipating device"


@pytest.fixture()
def damaged(uspto_sample, tmp_path) -> Path:
    """Copies of real grants, each damaged in one way."""
    root = tmp_path / "src"
    for name in (SPOON, "USD0929296-20210831", "USD0917867-20210504", "USD0939223-20211228"):
        shutil.copytree(uspto_sample / name, root / name)
    # 1. a truncated TIFF
    tif = root / SPOON / f"{SPOON}-D00002.TIF"
    tif.write_bytes(tif.read_bytes()[:700])
    # 2. an XML without any design class (no Locarno, no US class)
    x = root / "USD0929296-20210831" / "USD0929296-20210831.XML"
    text = re.sub(r"<classification-locarno>.*?</classification-locarno>", "", x.read_text(), flags=re.S)
    x.write_text(re.sub(r"<classification-national>.*?</classification-national>", "", text, count=1, flags=re.S))
    # 3. a figure text that names no view
    x = root / "USD0917867-20210504" / "USD0917867-20210504.XML"
    x.write_text(x.read_text().replace("is an opposite side view thereof", "shows the shoe in use"))
    # 4. an unreadable drawing file (a directory where the TIFF should be)
    bad = root / "USD0939223-20211228" / "USD0939223-20211228-D00002.TIF"
    bad.unlink()
    bad.mkdir()
    return root


def test_bad_input_gives_per_item_records_not_a_crash(damaged, tmp_path):
    out = tmp_path / "corpus"
    with CorpusWriter(str(out)) as w:
        w.write_all(read_uspto(damaged, str(out / "images")))
    failures = read_failures(str(out)).to_pylist()
    by_id = {f["drawing_id"]: f for f in failures}
    assert "cannot decode image" in by_id[f"{SPOON}-D00002"]["reason"]
    wheel = [f for f in failures if f["drawing_id"] and f["drawing_id"].startswith("USD0929296")]
    assert len(wheel) == 3 and all("no design class" in f["reason"] for f in wheel)
    assert by_id["USD0917867-20210504-D00003"]["severity"] == "warning"
    assert "names no view" in by_id["USD0917867-20210504-D00003"]["reason"]
    assert "USD0939223-20211228-D00002" in by_id
    # nothing silently dropped: every TIFF is in the manifest or has an error record
    manifest = read_manifest(str(out)).to_pylist()
    kept = {r["drawing_id"] for r in manifest}
    errored = {f["drawing_id"] for f in failures if f["severity"] == "error"}
    all_tiffs = {p.stem for p in damaged.glob("*/*.TIF")}
    assert kept | errored == all_tiffs and not kept & errored
    shoe3 = next(r for r in manifest if r["drawing_id"] == "USD0917867-20210504-D00003")
    assert shoe3["view"] == "other"
    counts = Counter(f["severity"] for f in failures)
    assert (w.errors, w.warnings) == (counts["error"], counts["warning"])


def test_a_grant_with_only_a_us_class_is_kept_with_a_warning(uspto_sample, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(uspto_sample / SPOON, root / SPOON)
    x = root / SPOON / f"{SPOON}.XML"
    x.write_text(re.sub(r"<classification-locarno>.*?</classification-locarno>", "", x.read_text(), flags=re.S))
    drawings, errors = _split(list(read_uspto(root)))
    assert len(drawings) == 4 and all(d.locarno_class is None and d.us_class == "D7-654" for d in drawings)
    assert [(e.severity, e.patent_id) for e in errors] == [("warning", "USD0909824")]
    assert "no Locarno class" in errors[0].reason
