"""A folder of drawings plus one metadata table with a row per drawing, as patent offices hold them.

The table is ``metadata.csv`` (UTF-8, header row, RFC 4180 quoting) or ``metadata.parquet`` in
the folder, or any CSV/TSV/Parquet file named with ``metadata=``. Each row names its image by a
path relative to the folder. Which column feeds which :class:`Drawing` field is a
:class:`TableColumns` mapping whose defaults fit common names (``patent_id``, ``image``,
``title``, ``us_design_class``, ...), so a folder such as ``uspto-design-2007-first-figures``
imports with no mapping at all.

:func:`read_table_folder` checks the table and its columns when it is called (a missing table or
column is a :class:`FileNotFoundError` / :class:`ValueError` before any row is read) and then
streams one :class:`Drawing` or one error :class:`ItemError` per row, plus warnings for
metadata it had to drop (a malformed class, date or figure number). Image paths that leave the
folder, missing files and undecodable images are error items, never a crash.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from priorsight.corpus.figures import normalise_view, parse_figure_sentence
from priorsight.images import ImageError, decode_image
from priorsight.records import VIEWS, Drawing, ItemError, normalise_locarno, normalise_uspc, object_from_title
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)
STAGE = "import-table"
SOURCE = "table"
#: The table files a table folder holds, in the order they are looked for.
TABLE_FILES: tuple[str, ...] = ("metadata.csv", "metadata.parquet")
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_REQUIRED = ("patent_id", "image")


class TableError(ValueError):
    """The metadata table stopped being readable part-way (bad encoding, broken quoting, ...)."""


@dataclass(frozen=True)
class TableColumns:
    """Which table column feeds which :class:`Drawing` field.

    A field holds either one column name (set by the user: that column must exist) or a tuple of
    candidate names (the defaults: the first present one is used, matched case-insensitively,
    and the field stays empty when none is). ``patent_id`` and ``image`` are required; every
    other field is optional. ``image`` is the image path, relative to the table folder.
    """

    patent_id: str | tuple[str, ...] = ("patent_id",)
    image: str | tuple[str, ...] = ("image", "image_path", "file", "filename")
    drawing_id: str | tuple[str, ...] = ("drawing_id",)
    title: str | tuple[str, ...] = ("title",)
    us_class: str | tuple[str, ...] = ("us_class", "us_design_class")
    locarno_class: str | tuple[str, ...] = ("locarno_class", "locarno")
    view: str | tuple[str, ...] = ("view",)
    grant_date: str | tuple[str, ...] = ("grant_date",)
    figure_description: str | tuple[str, ...] = ("figure_description",)
    object_name: str | tuple[str, ...] = ("object_name",)
    caption: str | tuple[str, ...] = ("caption",)
    figure_number: str | tuple[str, ...] = ("figure_number",)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> TableColumns:
        """The defaults with some fields mapped to named columns ({"patent_id": "Number"}).

        Raises ``ValueError`` for a field name that is not one of :meth:`field_names` or an
        empty column name.
        """
        valid = cls.field_names()
        unknown = sorted(k for k in mapping if k not in valid)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))} in the column mapping; "
                             f"valid fields: {', '.join(valid)}")
        empty = sorted(k for k, v in mapping.items() if not str(v).strip())
        if empty:
            raise ValueError(f"empty column name for field(s) {', '.join(map(repr, empty))} in the column mapping")
        return replace(cls(), **{k: str(v).strip() for k, v in mapping.items()})

    def resolve(self, header: Iterable[str], table: str = "the table") -> dict[str, str]:
        """Field -> the actual column of ``header`` for every field that has one.

        Raises ``ValueError`` when a column set by the user does not exist or when no column
        is found for a required field (``patent_id``, ``image``).
        """
        header = list(header)
        by_lower: dict[str, str] = {}
        for name in header:
            by_lower.setdefault(name.strip().lower(), name)
        resolved: dict[str, str] = {}
        for name in self.field_names():
            spec = getattr(self, name)
            if isinstance(spec, str):
                if spec not in header:
                    raise ValueError(f"{table} has no column {spec!r} (mapped to field {name!r}); "
                                     f"its columns: {', '.join(header)}")
                resolved[name] = spec
                continue
            found = next((by_lower[c.lower()] for c in spec if c.lower() in by_lower), None)
            if found is not None:
                resolved[name] = found
            elif name in _REQUIRED:
                raise ValueError(f"{table} has no {name} column (looked for {', '.join(spec)}; its columns: "
                                 f"{', '.join(header) or 'none'}); map one with --column {name}=COLUMN")
        return resolved


def parse_column_options(values: Iterable[str]) -> TableColumns:
    """``["patent_id=Number", "image=File"]`` (the CLI's ``--column FIELD=COLUMN``) -> a mapping.

    Raises ``ValueError`` for a value without ``=`` or an unknown field.
    """
    mapping: dict[str, str] = {}
    for value in values:
        field_name, sep, column = value.partition("=")
        if not sep or not field_name.strip():
            raise ValueError(f"--column expects FIELD=COLUMN, got {value!r}")
        mapping[field_name.strip()] = column
    return TableColumns.from_mapping(mapping)


def is_table_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local directory holding ``metadata.csv`` or ``metadata.parquet``."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in TABLE_FILES)


def find_table(src: str | os.PathLike, metadata: str | os.PathLike | None = None) -> Path:
    """The metadata table of a folder: ``metadata`` (relative to ``src`` or absolute) or the first
    of :data:`TABLE_FILES` present. Raises ``FileNotFoundError`` naming what was looked for."""
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    if metadata is not None:
        path = Path(metadata) if Path(metadata).is_absolute() else root / metadata
        if not path.is_file():
            raise FileNotFoundError(f"no metadata table {path} (given with metadata=/--metadata)")
        return path
    present = [root / name for name in TABLE_FILES if (root / name).is_file()]
    if not present:
        raise FileNotFoundError(f"no metadata table in {root} (looked for {' and '.join(TABLE_FILES)}); "
                                "name another file with --metadata")
    if len(present) > 1:
        log.warning("%s holds %s; reading %s", root, " and ".join(p.name for p in present), present[0].name)
    return present[0]


def _table_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES or suffix in _PARQUET_SUFFIXES:
        return suffix
    raise ValueError(f"cannot read the metadata table {path}: expected a .csv, .tsv or .parquet file")


def table_header(path: Path) -> list[str]:
    """The column names of a CSV/TSV (its header row) or Parquet table. Raises ``ValueError``."""
    kind = _table_kind(path)
    if kind in _PARQUET_SUFFIXES:
        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"the metadata table {path} is not a readable Parquet file: {exc}") from exc
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=_CSV_SUFFIXES[kind]), None)
    except UnicodeDecodeError as exc:
        raise ValueError(f"the metadata table {path} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise ValueError(f"the metadata table {path} has an unreadable header row: {exc}") from exc
    if not header:
        raise ValueError(f"the metadata table {path} is empty (no header row)")
    return header


def _cell(value: Any) -> str:
    """A table cell as stripped text ("" for a missing value; 3.0 -> "3"; a date -> ISO)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN: pandas' missing value
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value).strip()


def iter_table_rows(path: Path, columns: Iterable[str]) -> Iterator[dict[str, str]]:
    """Stream the rows of a table as {column: text} for ``columns`` only ("" where empty).

    Raises :class:`TableError` when the file stops being readable part-way (the caller records it).
    """
    wanted = list(dict.fromkeys(columns))
    kind = _table_kind(path)
    if kind in _PARQUET_SUFFIXES:
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=wanted):
                for row in batch.to_pylist():
                    yield {c: _cell(row.get(c)) for c in wanted}
        except (pa.ArrowException, OSError) as exc:
            raise TableError(f"Parquet unreadable: {exc}") from exc
        return
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f, delimiter=_CSV_SUFFIXES[kind]):
                yield {c: _cell(row.get(c)) for c in wanted}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"CSV unreadable: {exc}") from exc


def _path_text(value: str) -> str:
    """An image path as written in the table, with Windows separators read as ``/``."""
    return value.strip().replace("\\", "/")


def stems_unique(values: Iterable[str]) -> bool:
    """Whether no two distinct image paths share a file stem (then stems serve as drawing ids)."""
    paths_by_stem: dict[str, str] = {}
    for value in values:
        text = _path_text(value)
        if not text:
            continue
        key = os.path.normpath(text)
        stem = PurePosixPath(text).stem
        if paths_by_stem.setdefault(stem, key) != key:
            return False
    return True


def resolve_image(root: Path, value: str) -> tuple[Path, str]:
    """The image file a row names and its path relative to ``root`` (POSIX, with suffix).

    ``root`` must be absolute. Raises ``ValueError`` for a path that leaves ``root`` (``..``, an
    absolute path elsewhere, or a symbolic link out of it) and ``FileNotFoundError`` when the
    file does not exist (an ``OSError`` for a name the filesystem refuses, e.g. too long).
    """
    text = _path_text(value)
    lexical = Path(os.path.normpath(root / text))  # root / an absolute path is that path
    try:
        rel = lexical.relative_to(root)
    except ValueError:
        raise ValueError(f"image path {value!r} leaves the table folder; refused") from None
    real = lexical.resolve()
    if not real.is_relative_to(root.resolve()):
        raise ValueError(f"image path {value!r} resolves outside the table folder (symbolic link); refused")
    if not real.is_file():
        raise FileNotFoundError(f"image file not found: {value}")
    return lexical, rel.as_posix()


def parse_date(value: str) -> str | None:
    """An ISO date (``2007-01-02``, a timestamp's date part) or ``YYYYMMDD`` as ISO; None when
    empty. Raises ``ValueError`` for anything else."""
    s = value.strip()
    if not s:
        return None
    try:
        if re.fullmatch(r"\d{8}", s):
            return dt.datetime.strptime(s, "%Y%m%d").date().isoformat()
        if re.match(r"\d{4}-\d{2}-\d{2}(?:$|[T ])", s):
            return dt.date.fromisoformat(s[:10]).isoformat()
    except ValueError:
        pass
    raise ValueError(f"not a date (expected YYYY-MM-DD or YYYYMMDD): {value!r}")


def parse_figure_number(value: str) -> int | None:
    """A figure ordinal ("3", "3.0", "FIG. 3"); None when empty. Raises ``ValueError``."""
    s = value.strip()
    if not s:
        return None
    m = re.fullmatch(r"(?:fig(?:ure)?s?\.?\s*)?(\d{1,9})(?:\.0+)?", s, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a figure number: {value!r}")
    return int(m.group(1))


def _view_of(view_text: str, figure_description: str) -> tuple[str, str, bool]:
    """(view, view_text, recognised) from a view column, else from a figure sentence."""
    if view_text:
        if view_text.lower() in VIEWS:
            return view_text.lower(), view_text, True
        view, named = normalise_view(view_text)
        return view, view_text, named
    fig = parse_figure_sentence(figure_description, 1) if figure_description else None
    if fig is not None and fig.named_view:
        return fig.view, fig.view_text, True
    return "other", "", True  # nothing names a view: nothing to warn about


def image_file_name(drawing_id: str) -> str:
    """A safe relative PNG path for a drawing id: ``/`` keeps sub-folders, other characters
    outside ``[\\w.-]`` and ``.``/``..`` parts become ``_``; a short hash keeps altered ids
    distinct."""
    parts = [re.sub(r"[^\w.-]", "_", p) for p in drawing_id.split("/")]
    parts = ["_" if p in ("", ".", "..") else p for p in parts]
    safe = "/".join(parts)
    if safe != drawing_id:
        safe += "-" + hashlib.sha1(drawing_id.encode()).hexdigest()[:8]
    return f"{safe}.png"


def read_table_folder(src: str | Path, images_out: str | None = None, storage: Storage | None = None,
                      max_pixels: int = 80_000_000, columns: TableColumns | Mapping[str, str] | None = None,
                      metadata: str | Path | None = None, source: str = SOURCE) -> Iterator[Drawing | ItemError]:
    """Stream the drawings of a folder of images plus one metadata table (see module docstring).

    Raises ``FileNotFoundError`` / ``ValueError`` at once (before any row) when there is no
    table, it cannot be read, or a column is missing. Then yields, per row, one
    :class:`Drawing` or one error :class:`ItemError`, plus warnings for dropped metadata. With
    ``images_out`` each decoded image is written there as PNG; without, it is referenced in
    place (still decoded once, to validate and measure it).
    """
    cols = columns if isinstance(columns, TableColumns) else TableColumns.from_mapping(columns or {})
    table = find_table(src, metadata)
    mapping = cols.resolve(table_header(table), table.name)
    log.info("reading %s with columns %s", table, ", ".join(f"{k}<-{v}" for k, v in mapping.items()))
    return _read_rows(Path(os.path.abspath(src)), table, mapping, images_out, storage or Storage(),
                      max_pixels, source)


def _read_rows(root: Path, table: Path, mapping: dict[str, str], images_out: str | None, storage: Storage,
               max_pixels: int, source: str) -> Iterator[Drawing | ItemError]:
    try:
        by_stem = stems_unique(r[mapping["image"]] for r in iter_table_rows(table, [mapping["image"]]))
    except TableError:
        by_stem = False  # the main pass reaches the same fault and records it
    log.info("drawing ids: %s", "image file stems" if by_stem else "image paths relative to the folder")
    copied: set[str] = set()
    n = 0
    try:
        for n, row in enumerate(iter_table_rows(table, mapping.values()), start=1):
            values = {name: row[col] for name, col in mapping.items()}
            yield from _row(values, f"{table}#row{n}", root, by_stem, images_out, storage, max_pixels, source,
                            copied)
    except TableError as exc:
        yield ItemError(str(table), STAGE, f"table unreadable after row {n}, stopped here: {exc}")


def _row(values: dict[str, str], where: str, root: Path, by_stem: bool, images_out: str | None,
         storage: Storage, max_pixels: int, source: str, copied: set[str]) -> Iterator[Drawing | ItemError]:
    """One table row -> warnings (if any) and one Drawing, or one error item."""
    get = values.get
    patent = get("patent_id", "")
    image_value = get("image", "")
    given_id = get("drawing_id", "") or None
    if not patent:
        yield ItemError(where, STAGE, f"row has no patent id; skipped (image {image_value or 'none'})",
                        drawing_id=given_id)
        return
    if not image_value:
        yield ItemError(where, STAGE, "row names no image; skipped", drawing_id=given_id, patent_id=patent)
        return
    try:
        path, rel = resolve_image(root, image_value)
    except (ValueError, OSError) as exc:  # OSError: not found, or a name the filesystem refuses
        yield ItemError(where, STAGE, str(exc)[:500], drawing_id=given_id, patent_id=patent)
        return
    drawing_id = given_id or (PurePosixPath(rel).stem if by_stem else str(PurePosixPath(rel).with_suffix("")))
    try:
        img = decode_image(path.read_bytes(), max_pixels=max_pixels)
    except (ImageError, OSError) as exc:
        yield ItemError(where, STAGE, f"{rel}: {exc}", drawing_id=drawing_id, patent_id=patent)
        return

    def warn(reason: str) -> ItemError:
        return ItemError(where, STAGE, reason, severity="warning", drawing_id=drawing_id, patent_id=patent)

    us_class = locarno = grant_date = figure_number = None
    try:
        us_class = normalise_uspc(get("us_class"))
    except ValueError as exc:
        yield warn(f"{exc}; kept without a US class")
    try:
        locarno = normalise_locarno(get("locarno_class"))
    except ValueError as exc:
        yield warn(f"{exc}; kept without a Locarno class")
    try:
        grant_date = parse_date(get("grant_date", ""))
    except ValueError as exc:
        yield warn(f"{exc}; kept without a grant date")
    try:
        figure_number = parse_figure_number(get("figure_number", ""))
    except ValueError as exc:
        yield warn(f"{exc}; kept without a figure number")
    title = get("title", "")
    description = get("figure_description", "")
    view, view_text, named = _view_of(get("view", ""), description)
    if not named:
        yield warn(f"view names no known view: {view_text!r}; view set to 'other'")

    image_uri = str(path.resolve())
    if images_out is not None and drawing_id not in copied:  # a duplicate id keeps its source path
        copied.add(drawing_id)
        image_uri = join(images_out, image_file_name(drawing_id))
        with storage.open_write(image_uri) as f:
            img.save(f, format="PNG")
    yield Drawing(
        drawing_id=drawing_id,
        patent_id=patent,
        image_uri=image_uri,
        source=source,
        figure_number=figure_number,
        figure_label=f"FIG. {figure_number}" if figure_number is not None else "",
        view=view,
        view_text=view_text,
        object_name=get("object_name", "") or object_from_title(title),
        locarno_class=locarno,
        us_class=us_class,
        grant_date=grant_date,
        title=title,
        figure_description=description,
        caption=get("caption", ""),
        width=img.width,
        height=img.height,
    )
