"""Folders of images plus one metadata table (``priorsight corpus import-table``)."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from priorsight.cli import app
from priorsight.corpus.table import (
    TableColumns,
    image_file_name,
    is_table_folder,
    parse_column_options,
    parse_date,
    parse_figure_number,
    read_table_folder,
)
from priorsight.manifest import read_failures, read_manifest
from priorsight.records import Drawing, ItemError, uspc_main


def png(path: Path, size: tuple[int, int] = (40, 30), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def write_table(src: Path, rows: list[dict], name: str = "metadata.csv") -> Path:
    path = src / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    header = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    return path


def split(items) -> tuple[list[Drawing], list[ItemError], list[ItemError]]:
    items = list(items)
    drawings = [i for i in items if isinstance(i, Drawing)]
    errors = [i for i in items if isinstance(i, ItemError) and i.severity == "error"]
    warnings = [i for i in items if isinstance(i, ItemError) and i.severity == "warning"]
    assert len(drawings) + len(errors) + len(warnings) == len(items)
    return drawings, errors, warnings


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


# -- the real reference folder -------------------------------------------------------------


def test_shared_2007_folder_imports_with_no_flags(design_2007, tmp_path):
    out = tmp_path / "corpus"
    res = cli("corpus", "import-table", str(design_2007), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "601 drawings" in res.stdout
    rows = read_manifest(str(out)).to_pylist()
    assert len(rows) == 601
    assert len({r["patent_id"] for r in rows}) == 601
    assert read_failures(str(out)).num_rows == 0
    assert all(re.fullmatch(r"D\d+-\d+(\.\d+)?", r["us_class"] or "") for r in rows)
    assert len({uspc_main(r["us_class"]) for r in rows}) == 32
    assert all(r["title"].strip() for r in rows)
    assert all((r["width"], r["height"]) == (512, 512) for r in rows)
    first = next(r for r in rows if r["patent_id"] == "USD0534331")
    assert (first["drawing_id"], first["us_class"], first["title"]) == ("USD0534331", "D1-121", "Pet chew")
    assert first["object_name"] == "pet chew" and first["source"] == "table"
    assert first["image_uri"] == str((design_2007 / "images" / "USD0534331.png").resolve())
    assert is_table_folder(design_2007)


# -- small tables -------------------------------------------------------------------------


def small_rows(src: Path) -> list[dict]:
    png(src / "images" / "a1.png", (40, 30))
    png(src / "images" / "a2.png", (50, 20))
    png(src / "images" / "b1.png", (30, 30))
    return [
        {"patent_id": "USD0000001", "image": "images/a1.png", "title": 'Chair, folding "deluxe"',
         "us_design_class": "D6/334", "locarno": "0601", "view": "front view", "grant_date": "20070102",
         "figure_number": "1", "figure_description": "FIG. 1 is a front view of a chair"},
        {"patent_id": "USD0000001", "image": "images/a2.png", "title": 'Chair, folding "deluxe"',
         "us_design_class": "D6/334", "locarno": "0601", "view": "", "grant_date": "2007-01-02",
         "figure_number": "2", "figure_description": "FIG. 2 is a top plan view thereof"},
        {"patent_id": "USD0000002", "image": "images/b1.png", "title": "Lamp shade", "us_design_class": "D26 1",
         "locarno": "", "view": "Rear", "grant_date": "", "figure_number": "", "figure_description": ""},
    ]


@pytest.mark.parametrize("name", ["metadata.csv", "metadata.parquet"])
def test_csv_and_parquet_read_every_field(tmp_path, name):
    src = tmp_path / "src"
    write_table(src, small_rows(src), name)
    drawings, errors, warnings = split(read_table_folder(src))
    assert errors == [] and warnings == []
    a1, a2, b1 = drawings
    assert [d.drawing_id for d in drawings] == ["a1", "a2", "b1"]
    assert a1.title == 'Chair, folding "deluxe"' and a1.object_name == 'chair, folding "deluxe"'
    assert b1.object_name == "lamp shade"
    assert (a1.us_class, a1.locarno_class, a1.grant_date) == ("D6-334", "06-01", "2007-01-02")
    assert (a1.view, a1.view_text, a1.figure_number, a1.figure_label) == ("front", "front view", 1, "FIG. 1")
    assert (a2.view, a2.grant_date, a2.figure_number) == ("top", "2007-01-02", 2)  # view from the figure text
    assert (b1.view, b1.us_class, b1.locarno_class, b1.grant_date, b1.figure_number) == ("rear", "D26-1", None,
                                                                                         None, None)
    assert (a1.width, a1.height, a2.width, a2.height) == (40, 30, 50, 20)
    assert a1.image_uri == str((src / "images" / "a1.png").resolve()) and a1.source == "table"


def test_parquet_typed_columns(tmp_path):
    src = tmp_path / "src"
    png(src / "img" / "x.png")
    table = pa.table({"patent_id": ["USD0000009"], "file": ["img/x.png"],
                      "grant_date": pa.array([dt.date(2007, 3, 6)], pa.date32()),
                      "figure_number": pa.array([3], pa.int64())})
    pq.write_table(table, src / "metadata.parquet")
    (d,), errors, _ = split(read_table_folder(src, source="office"))
    assert errors == []
    assert (d.drawing_id, d.grant_date, d.figure_number, d.source) == ("x", "2007-03-06", 3, "office")


def test_custom_mapping_via_columns(tmp_path):
    src = tmp_path / "src"
    png(src / "pics" / "one.png")
    write_table(src, [{"Number": "USD0000003", "Picture": "pics/one.png", "Name": "Spoon",
                       "Cls": "D7-653", "title": "ignored"}], "table.csv")
    with pytest.raises(FileNotFoundError, match="looked for metadata.csv and metadata.parquet"):
        read_table_folder(src)
    mapping = {"patent_id": "Number", "image": "Picture", "title": "Name", "us_class": "Cls"}
    for columns in (mapping, TableColumns.from_mapping(mapping)):
        (d,), errors, _ = split(read_table_folder(src, columns=columns, metadata="table.csv"))
        assert errors == []
        assert (d.patent_id, d.drawing_id, d.title, d.us_class) == ("USD0000003", "one", "Spoon", "D7-653")
    (d,), _, _ = split(read_table_folder(src, columns=mapping, metadata=src / "table.csv"))  # absolute
    assert d.patent_id == "USD0000003"


def test_mapping_and_table_errors_are_clear(tmp_path):
    src = tmp_path / "src"
    png(src / "x.png")
    write_table(src, [{"patent": "USD1", "image": "x.png"}])
    with pytest.raises(ValueError, match=r"no patent_id column \(looked for patent_id"):
        read_table_folder(src)
    with pytest.raises(ValueError, match=r"no column 'Number' \(mapped to field 'patent_id'\)"):
        read_table_folder(src, columns={"patent_id": "Number"})
    with pytest.raises(ValueError, match=r"unknown field\(s\) 'colour'.*valid fields: patent_id, image"):
        read_table_folder(src, columns={"colour": "patent"})
    with pytest.raises(FileNotFoundError, match="no such directory"):
        read_table_folder(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no metadata table"):
        read_table_folder(src, metadata="other.csv")
    (d,), _, _ = split(read_table_folder(src, columns={"patent_id": "patent"}))
    assert d.patent_id == "USD1"
    with pytest.raises(ValueError, match="expects FIELD=COLUMN"):
        parse_column_options(["patent_id"])
    assert parse_column_options(["patent_id=Number", "image = File"]) == TableColumns(patent_id="Number",
                                                                                       image="File")


def test_bad_rows_become_items_and_no_row_is_dropped(tmp_path):
    src = tmp_path / "src"
    png(src / "images" / "good.png")
    png(src / "images" / "warn.png")
    (src / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    png(tmp_path / "outside.png")
    (src / "images" / "link.png").symlink_to(tmp_path / "outside.png")
    rows = [
        {"patent_id": "USD1", "image": "images/good.png", "us_class": "D1-1"},
        {"patent_id": "USD2", "image": "images/warn.png", "us_class": "428/221", "locarno_class": "99-01"},
        {"patent_id": "USD3", "image": "images/corrupt.png", "us_class": ""},
        {"patent_id": "USD4", "image": "images/missing.png", "us_class": ""},
        {"patent_id": "USD5", "image": "../../etc/passwd", "us_class": ""},
        {"patent_id": "USD6", "image": "/etc/passwd", "us_class": ""},
        {"patent_id": "USD7", "image": "images/link.png", "us_class": ""},
        {"patent_id": "", "image": "images/good.png", "us_class": ""},
        {"patent_id": "USD9", "image": "", "us_class": ""},
    ]
    write_table(src, rows)
    out = tmp_path / "corpus"
    res = cli("corpus", "import-table", str(src), "--out", str(out))
    assert res.exit_code == 0, res.output
    manifest = read_manifest(str(out)).to_pylist()
    failures = read_failures(str(out)).to_pylist()
    assert {r["patent_id"]: r["us_class"] for r in manifest} == {"USD1": "D1-1", "USD2": None}
    warned = [f for f in failures if f["severity"] == "warning"]
    assert sorted((f["patent_id"], f["reason"].split(":")[0]) for f in warned) == [
        ("USD2", "Locarno main class out of range 01-32"), ("USD2", "not a US design class (expected D<main>-<subclass>)")]
    errors = {int(f["item"].rsplit("#row", 1)[1]): f["reason"] for f in failures if f["severity"] == "error"}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9]  # rows 1 and 2 are in the manifest: all 9 accounted for
    assert errors[3].startswith("images/corrupt.png: cannot decode image")
    assert errors[4] == "image file not found: images/missing.png"
    assert "leaves the table folder" in errors[5] and "leaves the table folder" in errors[6]
    assert "resolves outside the table folder" in errors[7]
    assert errors[8].startswith("row has no patent id") and errors[9].startswith("row names no image")
    assert "2 drawings" in res.stdout and "7 skipped with an error, 2 kept with a warning" in res.stdout


def test_malformed_dates_figures_and_views_are_warnings(tmp_path):
    src = tmp_path / "src"
    png(src / "x.png")
    write_table(src, [{"patent_id": "USD1", "image": "x.png", "grant_date": "March 2007",
                       "figure_number": "three", "view": "sideways-ish"}])
    (d,), errors, warnings = split(read_table_folder(src))
    assert errors == []
    assert (d.grant_date, d.figure_number, d.view, d.view_text) == (None, None, "other", "sideways-ish")
    assert [w.reason.split(":")[0] for w in warnings] == ["not a date (expected YYYY-MM-DD or YYYYMMDD)",
                                                          "not a figure number", "view names no known view"]


def test_drawing_ids_stems_paths_or_column(tmp_path):
    src = tmp_path / "src"
    png(src / "p1" / "fig.png")
    png(src / "p2" / "fig.png")
    write_table(src, [{"patent_id": "P1", "image": "p1/fig.png"}, {"patent_id": "P2", "image": "p2\\fig.png"},
                      {"patent_id": "P2", "image": "./p2/fig.png"}])
    drawings, _, _ = split(read_table_folder(src))
    assert [d.drawing_id for d in drawings] == ["p1/fig", "p2/fig", "p2/fig"]  # the 3rd is a duplicate row
    write_table(src, [{"patent_id": "P1", "image": "p1/fig.png", "drawing_id": "P1-1"},
                      {"patent_id": "P2", "image": "p2/fig.png", "drawing_id": ""}])
    drawings, _, _ = split(read_table_folder(src))
    assert [d.drawing_id for d in drawings] == ["P1-1", "p2/fig"]
    assert image_file_name("a/b") == "a/b.png"
    assert re.fullmatch(r"_/_/etc/passwd-[0-9a-f]{8}\.png", image_file_name("../../etc/passwd"))


def test_cli_column_copy_images_and_source(tmp_path):
    src = tmp_path / "src"
    png(src / "raw" / "one.tif", (64, 48), 0)
    png(src / "raw" / "two.tif", (32, 32), 128)
    write_table(src, [{"Number": "USD10", "Path": "raw/one.tif", "Class": "D14/345"},
                      {"Number": "USD11", "Path": "raw/two.tif", "Class": "D14/346"}], "drawings.csv")
    out = tmp_path / "corpus"
    res = cli("corpus", "import-table", str(src), "--out", str(out), "--metadata", "drawings.csv",
              "--column", "patent_id=Number", "--column", "image=Path", "--column", "us_class=Class",
              "--source", "office", "--copy-images")
    assert res.exit_code == 0, res.output
    rows = read_manifest(str(out)).to_pylist()
    assert [(r["patent_id"], r["us_class"], r["source"]) for r in rows] == [("USD10", "D14-345", "office"),
                                                                            ("USD11", "D14-346", "office")]
    assert [r["image_uri"] for r in rows] == [str(out / "images" / "one.png"), str(out / "images" / "two.png")]
    with Image.open(out / "images" / "one.png") as img:
        assert (img.format, img.size) == ("PNG", (64, 48))
    assert sorted(p.name for p in (out / "images").iterdir()) == ["one.png", "two.png"]


def test_duplicate_drawing_id_keeps_the_first_image(tmp_path):
    src = tmp_path / "src"
    png(src / "a.png", (10, 10))
    png(src / "b.png", (20, 20))
    write_table(src, [{"patent_id": "P", "image": "a.png", "drawing_id": "d"},
                      {"patent_id": "P", "image": "b.png", "drawing_id": "d"}])
    out = tmp_path / "corpus"
    assert cli("corpus", "import-table", str(src), "--out", str(out), "--copy-images").exit_code == 0
    (row,) = read_manifest(str(out)).to_pylist()
    with Image.open(row["image_uri"]) as img:
        assert img.size == (row["width"], row["height"]) == (10, 10)
    (failure,) = read_failures(str(out)).to_pylist()
    assert failure["reason"] == "duplicate drawing_id d" and failure["item"] == str((src / "b.png").resolve())


@pytest.mark.parametrize("extra,message", [
    (["--metadata", "absent.csv"], "no metadata table"),
    (["--column", "patent_id=Number"], "no column 'Number' (mapped to field 'patent_id')"),
    (["--column", "patent_id"], "--column expects FIELD=COLUMN, got 'patent_id'"),
    (["--column", "colour=red"], "unknown field(s) 'colour' in the column mapping; valid fields: patent_id"),
])
def test_cli_clear_errors(tmp_path, extra, message):
    src = tmp_path / "src"
    png(src / "x.png")
    write_table(src, [{"patent_id": "USD1", "image": "x.png"}])
    res = cli("corpus", "import-table", str(src), "--out", str(tmp_path / "c"), *extra)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "c" / "manifest.parquet").exists()


def test_cli_folder_without_table(tmp_path):
    png(tmp_path / "src" / "x.png")
    res = cli("corpus", "import-table", str(tmp_path / "src"), "--out", str(tmp_path / "c"))
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        f"error: no metadata table in {tmp_path / 'src'} (looked for metadata.csv and metadata.parquet); "
        "name another file with --metadata"]
    assert not is_table_folder(tmp_path / "src") and not is_table_folder(tmp_path / "absent")


def test_parse_date_and_figure_number():
    assert parse_date("20070102") == parse_date("2007-01-02") == parse_date("2007-01-02T00:00:00") == "2007-01-02"
    assert parse_date("") is None
    with pytest.raises(ValueError):
        parse_date("20071302")
    assert (parse_figure_number("4"), parse_figure_number("4.0"), parse_figure_number("FIG. 4")) == (4, 4, 4)
    assert parse_figure_number(" ") is None
    with pytest.raises(ValueError):
        parse_figure_number("4a")


def test_truncated_and_oversized_images_are_error_items(tmp_path):
    src = tmp_path / "src"
    whole = png(src / "whole.png", (300, 200)).read_bytes()
    (src / "cut.png").write_bytes(whole[: len(whole) // 2])
    write_table(src, [{"patent_id": "P1", "image": "whole.png"}, {"patent_id": "P2", "image": "cut.png"}])
    drawings, errors, _ = split(read_table_folder(src))
    assert [d.patent_id for d in drawings] == ["P1"]
    assert [(e.patent_id, e.reason.split(":")[0]) for e in errors] == [("P2", "cut.png")]
    assert "cannot decode image" in errors[0].reason
    drawings, errors, _ = split(read_table_folder(src, max_pixels=1000))
    assert drawings == [] and [e.patent_id for e in errors] == ["P1", "P2"]
    assert "image too large: 300x200 pixels exceeds the limit of 1000" in errors[0].reason
