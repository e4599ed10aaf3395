"""USPTO design grants: one folder per patent with the grant XML (us-patent-grant DTD v4.5) and
its 1-bit TIFF drawing sheets.

:func:`read_uspto` streams :class:`Drawing` records (and :class:`ItemError` records for what
failed) patent by patent; with ``images_out`` each decoded sheet is written as a PNG.

Sheets and figures: ``D00000`` is the front-page drawing (the representative figure, FIG. 1);
sheets ``D00001..`` hold the figures in order. When there are as many sheets as figures each
sheet is one figure; when a sheet holds several figures, figures are spread over the sheets in
order and the drawing takes the first figure's view (all its figures' texts are kept).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from priorsight.corpus.figures import Figure, parse_figure_descriptions
from priorsight.images import ImageError, decode_image
from priorsight.records import Drawing, ItemError, normalise_locarno, normalise_uspc, object_from_title
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)
STAGE = "import-uspto"
SOURCE = "uspto"


class GrantError(ValueError):
    """A grant XML is unusable (unparseable or missing a required field)."""


@dataclass
class Grant:
    patent_id: str  # "USD0909824"
    title: str
    locarno_class: str | None  # "CC-SS"; None when the grant has none (its US class then suffices)
    grant_date: str | None
    figures: list[Figure]
    sheets: list[str]  # TIFF file names in document order
    cited_patents: list[str] = field(default_factory=list)
    us_class: str | None = None  # "D14-345" (classification-national), None when absent or unreadable


def _text(el: ET.Element | None) -> str:
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip() if el is not None else ""


def _iso_date(yyyymmdd: str) -> str | None:
    try:
        return dt.datetime.strptime(yyyymmdd.strip(), "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def parse_grant(xml_bytes: bytes, name: str = "") -> Grant:
    """Parse a design grant XML. Raises :class:`GrantError` with the reason."""
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise GrantError(f"XML does not parse: {exc}") from exc
    bib = root.find("us-bibliographic-data-grant")
    if bib is None:
        raise GrantError("not a us-patent-grant document (no us-bibliographic-data-grant)")
    doc = bib.find("publication-reference/document-id")
    number = _text(doc.find("doc-number")) if doc is not None else ""
    country = _text(doc.find("country")) if doc is not None else "US"
    if not number:
        raise GrantError("no publication doc-number")
    locarno_raw = _text(bib.find("classification-locarno/main-classification"))
    try:
        locarno = normalise_locarno(locarno_raw)
    except ValueError as exc:
        raise GrantError(str(exc)) from exc
    us_class = _us_class(bib)
    if locarno is None and us_class is None:
        raise GrantError("no design class: neither a Locarno class (classification-locarno) nor a US design "
                         "class (classification-national)")
    title = _text(bib.find("invention-title"))
    if not title:
        raise GrantError("no invention-title")
    cited = []
    for cit in bib.iterfind("us-references-cited/us-citation/patcit/document-id"):
        c, n = _text(cit.find("country")), _text(cit.find("doc-number"))
        if n:
            cited.append(f"{c or 'US'}{n}")
    paragraphs = [_text(p) for p in root.iterfind("description/description-of-drawings/p")]
    if not paragraphs:
        paragraphs = [_text(p) for p in root.iterfind(".//description-of-drawings/p")]
    sheets = [img.get("file", "") for img in root.iterfind("drawings/figure/img") if img.get("file")]
    return Grant(
        patent_id=f"{country}{number}",
        title=title,
        locarno_class=locarno,
        grant_date=_iso_date(_text(doc.find("date")) if doc is not None else ""),
        figures=parse_figure_descriptions(paragraphs),
        sheets=sheets,
        cited_patents=cited,
        us_class=us_class,
    )


def _us_class(bib: ET.Element) -> str | None:
    """The grant's US design class (``classification-national/main-classification``, fixed width:
    ``"D14487"``, ``"D 7654"``) as ``D<main>-<subclass>``; None when absent or not a design class."""
    el = bib.find("classification-national/main-classification")
    raw = "".join(el.itertext()) if el is not None else ""
    try:
        return normalise_uspc(raw)
    except ValueError:
        log.warning("unreadable US class %r", raw)
        return None


def assign_figures(n_sheets: int, figures: list[Figure]) -> list[list[Figure]]:
    """Figures on each sheet ``D00001..D000{n}``, in order (see module docstring)."""
    if n_sheets <= 0:
        return []
    f = len(figures)
    if f == 0:
        return [[] for _ in range(n_sheets)]
    if f <= n_sheets:
        return [[figures[i]] if i < f else [] for i in range(n_sheets)]
    return [figures[(i * f) // n_sheets:((i + 1) * f) // n_sheets] for i in range(n_sheets)]


def load_captions(src: Path) -> dict[str, str]:
    """``captions.csv`` beside the patent folders (image captions by a vision-language model)."""
    path = src / "captions.csv"
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["id"].strip(): row.get("caption", "").strip() for row in csv.DictReader(f) if row.get("id")}


def patent_folders(src: str | Path) -> list[Path]:
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"no such directory: {src}")
    if list(src.glob("*.XML")) or list(src.glob("*.xml")):
        return [src]  # a single patent folder
    return sorted(p for p in src.iterdir() if p.is_dir())


def read_uspto(src: str | Path, images_out: str | None = None, storage: Storage | None = None,
               max_pixels: int = 80_000_000) -> Iterator[Drawing | ItemError]:
    """Stream the drawings of a folder of USPTO design grants (or of one grant folder)."""
    storage = storage or Storage()
    folders = patent_folders(src)
    captions = load_captions(Path(src))
    for folder in folders:
        yield from read_grant_folder(folder, images_out, storage, max_pixels, captions)


def read_grant_folder(folder: Path, images_out: str | None, storage: Storage,
                      max_pixels: int = 80_000_000,
                      captions: dict[str, str] | None = None) -> Iterator[Drawing | ItemError]:
    xmls = sorted([*folder.glob("*.XML"), *folder.glob("*.xml")])
    tiffs = sorted([*folder.glob("*.TIF"), *folder.glob("*.tif"), *folder.glob("*.TIFF"), *folder.glob("*.tiff")])
    if not xmls:
        yield ItemError(str(folder), STAGE, f"no grant XML in folder; {len(tiffs)} drawing(s) skipped")
        return
    xml_path = xmls[0]
    try:
        grant = parse_grant(xml_path.read_bytes(), xml_path.name)
    except (GrantError, OSError) as exc:
        for t in tiffs:  # never drop a drawing silently: one record per drawing
            yield ItemError(str(t), STAGE, f"grant XML {xml_path.name} unusable: {exc}", drawing_id=t.stem)
        if not tiffs:
            yield ItemError(str(xml_path), STAGE, f"grant XML unusable: {exc}")
        return

    if grant.locarno_class is None:
        yield ItemError(str(xml_path), STAGE, f"no Locarno class; kept with its US class {grant.us_class}",
                        severity="warning", patent_id=grant.patent_id)
    caption = (captions or {}).get(grant.patent_id.removeprefix("US"), "")
    on_disk = {t.name: t for t in tiffs}
    sheet_names = [s for s in grant.sheets if s in on_disk] + sorted(set(on_disk) - set(grant.sheets))
    for missing in (s for s in grant.sheets if s not in on_disk):
        yield ItemError(str(folder / missing), STAGE, "drawing named in the XML is missing from the folder",
                        patent_id=grant.patent_id, drawing_id=Path(missing).stem)
    front_page = [s for s in sheet_names if re.search(r"D0+\.TIFF?$", s, re.IGNORECASE)]
    body = [s for s in sheet_names if s not in front_page]
    per_sheet = assign_figures(len(body), grant.figures)
    plan: list[tuple[str, list[Figure]]] = [(s, grant.figures[:1]) for s in front_page]
    plan += list(zip(body, per_sheet))

    for name, figs in plan:
        path = on_disk[name]
        drawing_id = path.stem
        try:
            img = decode_image(path.read_bytes(), max_pixels=max_pixels)
        except (ImageError, OSError) as exc:
            yield ItemError(str(path), STAGE, str(exc), drawing_id=drawing_id, patent_id=grant.patent_id)
            continue
        image_uri = str(path.resolve())
        if images_out is not None:
            image_uri = join(images_out, grant.patent_id, f"{drawing_id}.png")
            with storage.open_write(image_uri) as f:
                img.save(f, format="PNG", optimize=False)
        first = figs[0] if figs else None
        if first is None:
            yield ItemError(str(path), STAGE, "no figure description names this sheet; view set to 'other'",
                            severity="warning", drawing_id=drawing_id, patent_id=grant.patent_id)
        elif not first.named_view:
            yield ItemError(str(path), STAGE, f"figure text names no view: {first.text!r}; view set to 'other'",
                            severity="warning", drawing_id=drawing_id, patent_id=grant.patent_id)
        yield Drawing(
            drawing_id=drawing_id,
            patent_id=grant.patent_id,
            image_uri=image_uri,
            source=SOURCE,
            figure_number=first.number if first else None,
            figure_label=", ".join(f.label for f in figs),
            view=first.view if first else "other",
            view_text=first.view_text if first else "",
            object_name=object_from_title(grant.title),
            locarno_class=grant.locarno_class,
            us_class=grant.us_class,
            grant_date=grant.grant_date,
            title=grant.title,
            figure_description=" ".join(f.text for f in figs),
            caption=caption,
            width=img.width,
            height=img.height,
            cited_patents=grant.cited_patents,
        )


