"""``priorsight corpus ...`` commands: import corpora and print their statistics."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import typer
from tqdm import tqdm

from priorsight.manifest import FAILURES_FILE, MANIFEST_FILE, CorpusWriter
from priorsight.records import Drawing, ItemError
from priorsight.storage import NotFound, Storage, StorageError, join


def _progress(items: Iterable[Drawing | ItemError], desc: str) -> Iterator[Drawing | ItemError]:
    import sys

    bar = tqdm(desc=desc, unit=" drawings", dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10)
    failed = 0
    try:
        for it in items:
            if isinstance(it, Drawing):
                bar.update(1)
            elif it.severity == "error":
                failed += 1
                bar.set_postfix(failed=failed)
            yield it
    finally:
        bar.close()


def write_corpus(items: Iterable[Drawing | ItemError], out: str, storage: Storage, desc: str) -> CorpusWriter:
    """Stream items into ``out`` with a progress bar and print a summary."""
    with CorpusWriter(out, storage) as w:
        w.write_all(_progress(items, desc))
    typer.echo(f"{w.drawings} drawings -> {join(out, MANIFEST_FILE)}")
    if w.errors or w.warnings:
        typer.echo(f"{w.errors} skipped with an error, {w.warnings} kept with a warning -> {join(out, FAILURES_FILE)}")
    return w


def _run_import(ctx: typer.Context, items_factory, out: str, desc: str) -> None:
    from priorsight.cli import fail, settings_of

    settings = settings_of(ctx)
    storage = Storage(settings.storage)
    try:
        w = write_corpus(items_factory(storage, settings), out, storage, desc)
    except (FileNotFoundError, NotFound, StorageError) as exc:
        fail(str(exc))
        return
    if w.drawings == 0:
        fail("no drawing could be imported; see the failures table", code=1)


def register(corpus_app: typer.Typer) -> None:
    @corpus_app.command("import-uspto")
    def import_uspto(
        ctx: typer.Context,
        src: Path = typer.Argument(..., help="Folder of USPTO design grant folders (XML + TIFF), or one grant folder."),
        out: str = typer.Option(..., "--out", "-o", help="Corpus directory (local or s3://) to write."),
    ) -> None:
        """Import USPTO design grants: parse the XML, decode the 1-bit TIFF sheets to PNG."""
        from priorsight.corpus.uspto import read_uspto

        _run_import(ctx, lambda st, s: read_uspto(src, join(out, "images"), st, s.corpus.max_image_pixels),
                    out, "import-uspto")

    @corpus_app.command("import-deeppatent2")
    def import_deeppatent2(
        ctx: typer.Context,
        src: Path = typer.Argument(..., help="DeepPatent2 folder (design{YYYY}.json + PNG folders) or one JSON."),
        out: str = typer.Option(..., "--out", "-o", help="Corpus directory (local or s3://) to write."),
        locarno_csv: Path | None = typer.Option(None, help="CSV with columns patent_id,locarno_class."),
        copy_images: bool = typer.Option(False, help="Re-write images as PNG under OUT/images (default: reference in place)."),
    ) -> None:
        """Import DeepPatent2 figure records (streamed JSON) and their PNG drawings."""
        from priorsight.corpus.deeppatent2 import read_deeppatent2

        classes = None
        if locarno_csv is not None:
            with locarno_csv.open(newline="") as f:
                classes = {r["patent_id"]: r["locarno_class"] for r in csv.DictReader(f)}
        _run_import(ctx, lambda st, s: read_deeppatent2(src, join(out, "images") if copy_images else None, st,
                                                        classes, s.corpus.max_image_pixels),
                    out, "import-deeppatent2")

    @corpus_app.command("import-folder")
    def import_folder(
        ctx: typer.Context,
        src: Path = typer.Argument(..., help="Folder of images (a sub-folder per design groups its views)."),
        out: str = typer.Option(..., "--out", "-o", help="Corpus directory (local or s3://) to write."),
    ) -> None:
        """Import a plain folder of images without metadata."""
        from priorsight.corpus.folder import read_folder

        _run_import(ctx, lambda st, s: read_folder(src, None, st, s.corpus.max_image_pixels), out, "import-folder")

    @corpus_app.command("import-table")
    def import_table(
        ctx: typer.Context,
        src: Path = typer.Argument(..., help="Folder of images with a metadata table (metadata.csv or .parquet)."),
        out: str = typer.Option(..., "--out", "-o", help="Corpus directory (local or s3://) to write."),
        metadata: Path | None = typer.Option(None, help="The table, if not SRC/metadata.csv|parquet (relative to SRC or absolute)."),
        column: list[str] | None = typer.Option(None, "--column", metavar="FIELD=COLUMN",
                                                help="Read a drawing field from a named column (repeatable)."),
        source: str = typer.Option("table", help="The source name recorded on every drawing."),
        copy_images: bool = typer.Option(False, help="Re-write images as PNG under OUT/images (default: reference in place)."),
    ) -> None:
        """Import a folder of images plus one metadata table with a row per drawing."""
        from priorsight.cli import fail
        from priorsight.corpus.table import find_table, parse_column_options, read_table_folder, table_header

        try:  # check the table and the mapping before anything is written
            columns = parse_column_options(column or [])
            table = find_table(src, metadata)
            columns.resolve(table_header(table), table.name)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
            return
        _run_import(ctx, lambda st, s: read_table_folder(src, join(out, "images") if copy_images else None, st,
                                                         s.corpus.max_image_pixels, columns, metadata, source),
                    out, "import-table")

    @corpus_app.command("stats")
    def stats(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="Corpus directory or manifest (local or s3://)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        top: int = typer.Option(40, help="How many classes to list."),
        class_scheme: str | None = typer.Option(None, help="auto|locarno|uspc (default: corpus.class_scheme)."),
        class_level: str | None = typer.Option(None, help="auto|main|subclass (default: corpus.class_level)."),
    ) -> None:
        """Total drawings and patents, drawings per class (Locarno or US design class), and the head/medium/tail split."""
        from priorsight.cli import fail, settings_of
        from priorsight.corpus.stats import corpus_stats, format_stats

        settings = settings_of(ctx)
        try:
            s = corpus_stats(corpus, Storage(settings.storage), settings.corpus.head_share,
                             settings.corpus.tail_share, class_scheme or settings.corpus.class_scheme,
                             class_level or settings.corpus.class_level)
        except (NotFound, StorageError, FileNotFoundError, ValueError, KeyError) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(s.to_dict(), indent=2) if as_json else format_stats(s, top))
