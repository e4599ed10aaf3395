"""``priorsight index``: embed a corpus into a versioned Milvus collection (Ray Data job)."""

from __future__ import annotations

import dataclasses
import json

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("index")
    def index_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="Corpus directory or manifest (local or s3://), or a USPTO, table, "
                                               "DeepPatent2 or image folder (imported once into data/corpora/)."),
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
        from training.evaluate import imported_corpus_dir, resolve_corpus

        s = settings_of(ctx)
        try:
            corpus = resolve_corpus(corpus, workdir=imported_corpus_dir(corpus), reuse=True)
            r = index_corpus(corpus, checkpoint, s.milvus, s.storage, collection=collection, swap=swap,
                             embed_actors=embed_actors, writer_actors=writer_actors, batch_size=batch_size,
                             address=address, limit=limit)
        except (NotFound, StorageError, FileNotFoundError, MilvusUnavailable) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(dataclasses.asdict(r), indent=2))

    @bench_app.command("embed")
    def bench_embed_cmd(
        corpus: str = typer.Argument(..., help="Corpus directory or manifest."),
        checkpoint: str = typer.Option("data/demo/model"),
        drawings: int = typer.Option(512),
        batch_size: int = typer.Option(32),
        repeats: int = typer.Option(2),
        threads: int = typer.Option(2, help="torch threads per model (loop and actor alike)."),
    ) -> None:
        """Embedding throughput of the index job's Ray Data stage versus a plain torch loop."""
        from cluster.index_job import bench_embed
        from priorsight.bench import markdown_table, record

        r = bench_embed(corpus, checkpoint, drawings, batch_size, repeats, threads=threads)
        rows = [{"run": k, "drawings/s after the first batch": r[f"{k}_steady_drawings_per_s"],
                 "drawings/s with start-up": r[f"{k}_drawings_per_s"]} for k in ("loop", "ray")]
        md = (f"{r['drawings']} drawings of `{corpus}`, model `{checkpoint}`, batch {batch_size}, {threads} torch "
              f"threads, 1 actor; {repeats} alternating runs each. Throughput counts from each run's first "
              f"output batch: start-up (for Ray a worker process, imports and model loading; Ray's own start "
              f"not counted) is paid once per job whatever its size, and shown separately.\n\n"
              + markdown_table(rows) + f"\nRatio Ray/loop: **{r['ratio']:.2f}** (goal >= 0.9); with start-up "
              f"{r['ratio_with_startup']:.2f} on this {r['drawings']}-drawing run.\n")
        record("embed", r, md, f"priorsight bench embed {corpus} --checkpoint {checkpoint} --drawings {drawings} "
                                 f"--batch-size {batch_size} --repeats {repeats} --threads {threads}")
        typer.echo(md)
