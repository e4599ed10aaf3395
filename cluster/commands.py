"""``priorsight index``: embed a corpus into a versioned Milvus collection (Ray Data job)."""

from __future__ import annotations

import dataclasses
import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="Corpus directory or manifest (local or s3://)."),
        checkpoint: str = typer.Option("data/demo/model", help="Training run dir or .pt checkpoint."),
        collection: str | None = typer.Option(None, help="Fill this collection (default: the version built "
                                                            "for this model, else a new one beside the live one)."),
        swap: bool = typer.Option(False, "--swap", help="Point the alias at the new collection when done."),
        embed_actors: int = typer.Option(1, help="Embedding actors (0.5 CPU each)."),
        writer_actors: int = typer.Option(1, help="Milvus writer actors."),
        batch_size: int = typer.Option(32),
        limit: int | None = typer.Option(None, help="Index only the first N drawings."),
        address: str | None = typer.Option(None, help="Existing Ray cluster (default: a local one)."),
    ) -> None:
        """Embed every drawing with the trained model and upsert it into Milvus (resumable, no duplicates)."""
        from cluster.index_job import index_corpus
        from priorsight.cli import fail, settings_of
        from priorsight.milvus import MilvusUnavailable
        from priorsight.storage import NotFound, StorageError

        s = settings_of(ctx)
        try:
            r = index_corpus(corpus, checkpoint, s.milvus, s.storage, collection=collection, swap=swap,
                             embed_actors=embed_actors, writer_actors=writer_actors, batch_size=batch_size,
                             address=address, limit=limit)
        except (NotFound, StorageError, FileNotFoundError, MilvusUnavailable) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(dataclasses.asdict(r), indent=2))
