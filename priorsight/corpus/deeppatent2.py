"""DeepPatent2 (Ajayi et al. 2023): per year a ``design{YYYY}.json`` of figure records plus PNG
folders (``Original/`` figures, ``Segmented/`` sub-figures).

Per-figure fields: ``id, patentID, patentdate, figid, caption, object, aspect (viewpoint),
figure_file, subfigure_file, object_title`` (+ bounding boxes, ignored here). The JSON is
streamed with ijson (top-level list, or an object keyed by id, or JSON lines) so a 2.7M-record
year never sits in memory. DeepPatent2 carries no Locarno class: pass ``locarno_by_patent``
(e.g. from the grant XMLs) to fill it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from priorsight.corpus.figures import normalise_view
from priorsight.images import ImageError, decode_image
from priorsight.records import Drawing, ItemError, normalise_locarno
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)
STAGE = "import-deeppatent2"
SOURCE = "deeppatent2"
IMAGE_DIRS = ("", "Segmented", "Original", "segmented", "original")


def json_files(src: str | Path) -> list[Path]:
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.exists():
        raise FileNotFoundError(f"no such directory: {src}")
    files = sorted(src.glob("design*.json")) + sorted(src.glob("*/design*.json"))
    if not files:
        raise FileNotFoundError(f"no design{{YYYY}}.json under {src}")
    return files


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Stream figure records from a DeepPatent2 JSON file (list, id-keyed object or JSON lines)."""
    with path.open("rb") as f:
        head = f.read(64).lstrip()
        f.seek(0)
        if head.startswith(b"["):
            yield from ijson.items(f, "item", use_float=True)
        elif head.startswith(b"{") and _is_json_lines(path):
            for line in f:
                if line.strip():
                    yield json.loads(line)
        elif head.startswith(b"{"):
            for key, rec in ijson.kvitems(f, "", use_float=True):
                if isinstance(rec, dict):
                    rec.setdefault("id", key)
                    yield rec
        else:
            raise ValueError(f"{path}: not a JSON list, object or JSON lines file")


def _is_json_lines(path: Path) -> bool:
    with path.open("rb") as f:
        first = f.readline()
    try:
        rec = json.loads(first)
    except ValueError:
        return False
    # a JSON-lines file holds one figure record per line; an id-keyed object holds records as values
    return isinstance(rec, dict) and ("patentID" in rec or "figure_file" in rec)


def _date(v: Any) -> str | None:
    s = str(v or "").strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(s[:10] if "-" in s or "/" in s else s[:8], fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _find_image(root: Path, year_dir: Path, name: str) -> Path | None:
    if not name:
        return None
    for base in (year_dir, root):
        for sub in IMAGE_DIRS:
            p = base / sub / name if sub else base / name
            if p.is_file():
                return p
    return None


def record_to_drawing(rec: dict[str, Any], image_uri: str, width: int, height: int,
                      locarno_by_patent: dict[str, str] | None = None) -> Drawing:
    patent = str(rec.get("patentID") or "").strip()
    figid = str(rec.get("figid") or "").strip()
    sub = Path(str(rec.get("subfigure_file") or "")).stem
    drawing_id = str(rec.get("id") or "").strip() or (f"{patent}-{sub}" if sub else f"{patent}-{figid}")
    aspect = str(rec.get("aspect") or "").strip()
    view, _ = normalise_view(aspect)
    number = None
    m = re.search(r"\d+", figid)
    if m:
        number = int(m.group())
    locarno = None
    if locarno_by_patent and patent in locarno_by_patent:
        locarno = normalise_locarno(locarno_by_patent[patent])
    return Drawing(
        drawing_id=drawing_id,
        patent_id=patent,
        image_uri=image_uri,
        source=SOURCE,
        figure_number=number,
        figure_label=f"FIG. {figid}" if figid else "",
        view=view,
        view_text=aspect,
        object_name=str(rec.get("object") or "").strip(),
        locarno_class=locarno,
        grant_date=_date(rec.get("patentdate")),
        title=str(rec.get("object_title") or "").strip(),
        figure_description=str(rec.get("caption") or "").strip(),
        width=width,
        height=height,
    )


def read_deeppatent2(src: str | Path, images_out: str | None = None, storage: Storage | None = None,
                     locarno_by_patent: dict[str, str] | None = None,
                     max_pixels: int = 80_000_000) -> Iterator[Drawing | ItemError]:
    """Stream drawings from a DeepPatent2 folder (or one ``design{YYYY}.json``).

    With ``images_out`` each image is decoded (validated) and re-written as PNG there; without,
    it is still decoded once to validate and measure it, and referenced in place.
    """
    storage = storage or Storage()
    root = Path(src) if Path(src).is_dir() else Path(src).parent
    for jf in json_files(src):
        try:
            records = iter_records(jf)
            for i, rec in enumerate(records):
                yield from _one(rec, f"{jf}#{i}", root, jf.parent, images_out, storage, locarno_by_patent, max_pixels)
        except (ijson.JSONError, ValueError) as exc:
            yield ItemError(str(jf), STAGE, f"JSON unreadable, stopped at this file: {exc}")


def _one(rec: Any, where: str, root: Path, year_dir: Path, images_out: str | None, storage: Storage,
         locarno_by_patent: dict[str, str] | None, max_pixels: int) -> Iterator[Drawing | ItemError]:
    if not isinstance(rec, dict):
        yield ItemError(where, STAGE, "record is not a JSON object")
        return
    patent = str(rec.get("patentID") or "").strip()
    if not patent:
        yield ItemError(where, STAGE, "record has no patentID", drawing_id=str(rec.get("id") or "") or None)
        return
    names = [str(rec.get(k) or "") for k in ("subfigure_file", "figure_file")]
    image = next((p for p in (_find_image(root, year_dir, n) for n in names) if p), None)
    if image is None:
        yield ItemError(where, STAGE, f"image file not found: {names[0] or names[1] or '(none named)'}",
                        patent_id=patent, drawing_id=str(rec.get("id") or "") or None)
        return
    try:
        img = decode_image(image.read_bytes(), max_pixels=max_pixels)
    except (ImageError, OSError) as exc:
        yield ItemError(str(image), STAGE, str(exc), patent_id=patent, drawing_id=str(rec.get("id") or "") or None)
        return
    image_uri = str(image.resolve())
    try:
        drawing = record_to_drawing(rec, image_uri, img.width, img.height, locarno_by_patent)
    except ValueError as exc:
        yield ItemError(where, STAGE, str(exc), patent_id=patent)
        return
    if images_out is not None:
        drawing.image_uri = join(images_out, drawing.patent_id, f"{drawing.drawing_id}.png")
        with storage.open_write(drawing.image_uri) as f:
            img.save(f, format="PNG")
    if drawing.view == "other" and drawing.view_text:
        yield ItemError(where, STAGE, f"aspect names no known view: {drawing.view_text!r}; view set to 'other'",
                        severity="warning", drawing_id=drawing.drawing_id, patent_id=patent)
    yield drawing
