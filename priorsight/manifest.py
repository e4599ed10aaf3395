"""The drawing manifest: one Parquet table keyed by ``drawing_id`` that every stage reads and
writes, plus the table of per-item failures written beside it.

A corpus directory looks like::

    DIR/manifest.parquet   drawings (schema below)
    DIR/failures.parquet   per-item failures and warnings (ItemError)
    DIR/images/...         the drawings themselves (PNG)

Writers stream: rows are buffered and flushed as Parquet row groups, never all in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.parquet as pq

from priorsight.records import Drawing, ItemError
from priorsight.storage import NotFound, Storage, is_s3, join

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.parquet"
FAILURES_FILE = "failures.parquet"
KEY = "drawing_id"

DRAWING_SCHEMA = pa.schema(
    [
        pa.field("drawing_id", pa.string(), nullable=False),
        pa.field("patent_id", pa.string(), nullable=False),
        pa.field("image_uri", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("figure_number", pa.int32()),
        pa.field("figure_label", pa.string()),
        pa.field("view", pa.string()),
        pa.field("view_text", pa.string()),
        pa.field("object_name", pa.string()),
        pa.field("locarno_class", pa.string()),
        pa.field("us_class", pa.string()),
        pa.field("grant_date", pa.string()),
        pa.field("title", pa.string()),
        pa.field("figure_description", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("cited_patents", pa.list_(pa.string())),
    ]
)

FAILURE_SCHEMA = pa.schema(
    [
        pa.field("item", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("drawing_id", pa.string()),
        pa.field("patent_id", pa.string()),
    ]
)


def manifest_uri(corpus: str) -> str:
    """``corpus`` may be a corpus directory or a manifest file."""
    return corpus if str(corpus).endswith(".parquet") else join(corpus, MANIFEST_FILE)


class _TableWriter:
    """Buffer rows and write them as row groups of a Parquet file."""

    def __init__(self, f, schema: pa.Schema, row_group_size: int):
        self.schema = schema
        self.row_group_size = row_group_size
        self.writer = pq.ParquetWriter(f, schema, compression="zstd")
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.count += len(self.rows)
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


class CorpusWriter:
    """Stream drawings and failures into ``DIR/manifest.parquet`` and ``DIR/failures.parquet``.

    Duplicate drawing ids are refused (recorded as failures), so the key stays unique.
    Both files appear only when the writer closes without error.
    """

    def __init__(self, out_dir: str, storage: Storage | None = None, row_group_size: int = 4096):
        self.out_dir = str(out_dir)
        self.storage = storage or Storage()
        self.row_group_size = row_group_size
        self._stack = ExitStack()
        self._seen: set[str] = set()
        self.drawings = 0
        self.errors = 0
        self.warnings = 0

    def __enter__(self) -> CorpusWriter:
        s = self._stack
        mf = s.enter_context(self.storage.open_write(join(self.out_dir, MANIFEST_FILE)))
        ff = s.enter_context(self.storage.open_write(join(self.out_dir, FAILURES_FILE)))
        self._manifest = _TableWriter(mf, DRAWING_SCHEMA, self.row_group_size)
        self._failures = _TableWriter(ff, FAILURE_SCHEMA, self.row_group_size)
        return self

    def write(self, item: Drawing | ItemError) -> None:
        if isinstance(item, ItemError):
            self._failures.add(item.to_row())
            if item.severity == "warning":
                self.warnings += 1
            else:
                self.errors += 1
            return
        if item.drawing_id in self._seen:
            self.write(ItemError(item.image_uri, "manifest", f"duplicate drawing_id {item.drawing_id}",
                                 drawing_id=item.drawing_id, patent_id=item.patent_id))
            return
        self._seen.add(item.drawing_id)
        self._manifest.add(item.to_row())
        self.drawings += 1

    def write_all(self, items: Iterable[Drawing | ItemError]) -> None:
        for it in items:
            self.write(it)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._manifest.close()
            self._failures.close()
        else:  # close the Parquet writers before their (discarded) files go
            for w in (self._manifest, self._failures):
                try:
                    w.writer.close()
                except Exception:  # noqa: BLE001 - the original exception is what matters
                    pass
        return self._stack.__exit__(exc_type, exc, tb)


def write_table(table: pa.Table, uri: str, storage: Storage | None = None) -> None:
    """Write any keyed table (descriptions, embeddings, ...) to a Parquet file by URI."""
    if KEY not in table.column_names:
        raise ValueError(f"every PriorSight table is keyed by {KEY!r}; got columns {table.column_names}")
    with (storage or Storage()).open_write(uri) as f:
        pq.write_table(table, f, compression="zstd")


def read_table(uri: str, storage: Storage | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet table (manifest, failures, descriptions, ...) from a path or ``s3://``."""
    storage = storage or Storage()
    if not is_s3(uri):
        try:
            return pq.read_table(uri, columns=columns)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {uri}") from exc
    with storage.open_read(uri) as f:
        return pq.read_table(f, columns=columns)


def read_manifest(corpus: str, storage: Storage | None = None, columns: list[str] | None = None) -> pa.Table:
    return read_table(manifest_uri(corpus), storage, columns)


def iter_drawings(corpus: str, storage: Storage | None = None, batch_size: int = 4096) -> Iterator[Drawing]:
    """Stream the drawings of a manifest, one row group batch at a time."""
    uri = manifest_uri(corpus)
    storage = storage or Storage()
    with storage.open_read(uri) as f:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                yield Drawing.from_row(row)


def read_failures(corpus: str, storage: Storage | None = None) -> pa.Table:
    return read_table(join(corpus, FAILURES_FILE), storage)


def concat_manifests(corpora: list[str], out: str, storage: Storage | None = None) -> int:
    """One manifest of several corpora (drawing ids must stay unique). Returns its row count."""
    tables = [read_manifest(c, storage).cast(DRAWING_SCHEMA) for c in corpora]
    table = pa.concat_tables(tables)
    ids = table.column(KEY)
    if len(ids.unique()) != len(ids):
        raise ValueError(f"drawing ids collide between {corpora}")
    write_table(table, manifest_uri(out), storage)
    return table.num_rows
