"""Domain records and the Parquet manifest."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from priorsight.manifest import DRAWING_SCHEMA, CorpusWriter, iter_drawings, read_failures, read_manifest
from priorsight.records import Drawing, ItemError, group_patents, normalise_locarno, normalise_uspc, uspc_main


@pytest.mark.parametrize("raw,expected", [("2803", "28-03"), ("28-03", "28-03"), ("7-03", "07-03"),
                                          ("0703", "07-03"), (" 14 04 ", "14-04"), ("", None), (None, None)])
def test_normalise_locarno(raw, expected):
    assert normalise_locarno(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "3303", "123456", "28-3"])
def test_normalise_locarno_rejects(raw):
    with pytest.raises(ValueError):
        normalise_locarno(raw)


@pytest.mark.parametrize("raw,expected", [
    # as people write it
    ("D14-345", "D14-345"), ("D14/345", "D14-345"), ("d2 969", "D2-969"), ("D24-110.6", "D24-110.6"),
    ("D7-044", "D7-44"),
    # the grant XML's fixed-width classification-national (main class in 2 places, subclass in 3)
    ("D14487", "D14-487"), ("D 7654", "D7-654"), ("D28 47", "D28-47"), ("D 5 46", "D5-46"),
    ("D18  46", "D18-46"), (" D74012", "D7-401.2"), ("D99 28", "D99-28"), ("", None), (None, None)])
def test_normalise_uspc(raw, expected):
    assert normalise_uspc(raw) == expected


@pytest.mark.parametrize("raw", ["428/221", "X12-3", "D40-1", "D", "D14-abc"])
def test_normalise_uspc_rejects(raw):
    with pytest.raises(ValueError):
        normalise_uspc(raw)


def test_uspc_main():
    assert uspc_main("D14-345") == "D14" and uspc_main(None) is None


def _drawing(i: int, patent: str = "P1", **kw) -> Drawing:
    return Drawing(drawing_id=f"{patent}-D{i}", patent_id=patent, image_uri=f"/x/{i}.png", source="test",
                   figure_number=i, view="front", locarno_class="07-03", title="Cup", cited_patents=["USD1"], **kw)


def test_drawing_validates_view():
    with pytest.raises(ValueError, match="view"):
        Drawing(drawing_id="a", patent_id="p", image_uri="u", source="s", view="sideways")


def test_manifest_round_trip_streams_row_groups(tmp_path):
    drawings = [_drawing(i, f"P{i // 3}") for i in range(10)]
    with CorpusWriter(str(tmp_path), row_group_size=4) as w:
        w.write_all(drawings)
        w.write(ItemError("bad.tif", "test", "truncated", drawing_id="bad"))
        w.write(ItemError("odd.tif", "test", "no view", severity="warning"))
    pf = pq.ParquetFile(tmp_path / "manifest.parquet")
    assert pf.metadata.num_row_groups == 3
    assert pf.schema_arrow.equals(DRAWING_SCHEMA)
    back = list(iter_drawings(str(tmp_path), batch_size=3))
    assert back == drawings
    patents = list(group_patents(back))
    assert [p.patent_id for p in patents] == ["P0", "P1", "P2", "P3"]
    assert [len(p.drawings) for p in patents] == [3, 3, 3, 1]
    failures = read_failures(str(tmp_path)).to_pylist()
    assert [f["severity"] for f in failures] == ["error", "warning"]
    assert (w.drawings, w.errors, w.warnings) == (10, 1, 1)


def test_duplicate_drawing_ids_are_refused_and_recorded(tmp_path):
    with CorpusWriter(str(tmp_path)) as w:
        w.write(_drawing(1))
        w.write(_drawing(1))
    assert read_manifest(str(tmp_path)).num_rows == 1
    (fail,) = read_failures(str(tmp_path)).to_pylist()
    assert "duplicate drawing_id P1-D1" in fail["reason"]


def test_failed_import_leaves_no_partial_manifest(tmp_path):
    with pytest.raises(RuntimeError):
        with CorpusWriter(str(tmp_path)) as w:
            w.write(_drawing(1))
            raise RuntimeError("crash")
    assert not (tmp_path / "manifest.parquet").exists()
