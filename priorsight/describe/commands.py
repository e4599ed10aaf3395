"""``priorsight describe`` and ``priorsight bench describe``."""

from __future__ import annotations

import json
from enum import Enum, StrEnum

import typer

from priorsight.describe.config import DescribeConfig


class Backend(StrEnum):
    llama_cpp = "llama-cpp"
    openai = "openai"
    vllm = "vllm"
    none = "none"


class Truth(StrEnum):
    strict = "strict"
    lists = "lists"


def describe_config(ctx: typer.Context, **overrides) -> DescribeConfig:
    """``Settings.describe`` (once mounted) with the CLI flags given on top."""
    from priorsight.cli import settings_of

    base = settings_of(ctx).describe
    data = base.model_dump()
    backend = data["backend"]
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "backend":
            backend["kind"] = value.value if isinstance(value, Enum) else value
        elif key in ("base_url", "model", "api"):
            backend["openai"][key] = value.value if isinstance(value, Enum) else value
        elif key == "threads":
            backend["llama_cpp"]["n_threads"] = value
        else:
            data[key] = value.value if isinstance(value, Enum) else value
    return DescribeConfig.model_validate(data)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("describe")
    def describe(
        ctx: typer.Context,
        manifest: str = typer.Argument(..., help="Drawing manifest (corpus directory or manifest.parquet, local or s3://)."),
        out: str = typer.Option(..., "--out", "-o", help="Output directory: descriptions.parquet, failures.parquet, cache/."),
        k: int | None = typer.Option(None, "--k", help="Descriptions per drawing (entry 0 is metadata-only)."),
        backend: Backend | None = typer.Option(None, "--backend", help="LLM backend (default llama-cpp: Gemma 3 270M)."),
        llm_patents: int | None = typer.Option(None, "--llm-patents", help="LLM for the first N patents only; the rest metadata-only."),
        limit: int | None = typer.Option(None, "--limit", help="Describe the first N drawings only."),
        address: str | None = typer.Option(None, "--address", help="Join this Ray cluster ('auto', 'ray://host:10001'); default: a local Ray."),
        actors: int | None = typer.Option(None, "--actors", help="Ray actors generating (each loads the model once)."),
        actor_cpus: float | None = typer.Option(None, "--actor-cpus", help="CPUs reserved per actor (fractional)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Patents per map_batches batch."),
        cache_dir: str | None = typer.Option(None, "--cache", help="Cache directory (default OUT/cache)."),
        threads: int | None = typer.Option(None, "--threads", help="llama.cpp threads per actor."),
        base_url: str | None = typer.Option(None, "--base-url", help="openai backend: endpoint, e.g. http://host:8000/v1."),
        model: str | None = typer.Option(None, "--model", help="openai backend: model name."),
        local: bool = typer.Option(False, "--local", help="Generate in this process (plain loop) instead of on Ray."),
        sample: int = typer.Option(0, "--sample", help="Print N drawings with their descriptions afterwards."),
        truth: Truth | None = typer.Option(None, "--truth", help="LLM sentence filter: strict (every word in the "
                                           "metadata or generic; default) or lists (risky word lists only)."),
    ) -> None:
        """Write K descriptions of every drawing with an LLM (Ray Data job; cached, resumable)."""
        from cluster.describe_job import describe_corpus
        from priorsight.cli import fail, settings_of
        from priorsight.storage import NotFound, Storage, StorageError

        cfg = describe_config(ctx, k=k, backend=backend, llm_patents=llm_patents, actors=actors,
                              actor_cpus=actor_cpus, batch_size=batch_size, cache_dir=cache_dir, threads=threads,
                              base_url=base_url, model=model, truth=truth)
        storage = Storage(settings_of(ctx).storage)
        try:
            summary = describe_corpus(manifest, out, config=cfg, limit=limit, address=address, storage=storage,
                                      runner="local" if local else "ray")
        except (FileNotFoundError, NotFound, StorageError) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(summary, indent=2))
        if sample:
            from priorsight.describe.pipeline import format_sample

            typer.echo(format_sample(manifest, out, sample, storage))

    @bench_app.command("describe")
    def bench_describe(
        ctx: typer.Context,
        manifest: str = typer.Argument(..., help="Drawing manifest to take patents from."),
        patents: int = typer.Option(6, "--patents", help="Patents to describe in each run."),
        k: int = typer.Option(8, "--k", help="Descriptions per drawing (the LLM writes k - 1 - reserved templates)."),
        actors: int = typer.Option(1, "--actors"),
        threads: int | None = typer.Option(None, "--threads", help="llama.cpp threads per model (default CPUs / actors)."),
        repeats: int = typer.Option(1, "--repeats", help="Alternating runs of each (loop, ray, ray, loop, ...)."),
        address: str | None = typer.Option(None, "--address"),
        docs_dir: str = typer.Option("docs", "--docs-dir", help="Where docs/benchmarks.md lives."),
    ) -> None:
        """Descriptions/s and tokens/s: Ray Data job vs the same backend in a plain loop."""
        import sys

        from cluster.describe_job import bench_describe as run_bench
        from cluster.describe_job import bench_markdown
        from priorsight.bench import record

        cfg = describe_config(ctx, k=k, actors=actors, threads=threads)
        results = run_bench(manifest, patents, cfg, address, repeats=repeats)
        command = "priorsight bench describe " + " ".join(sys.argv[3:])
        path = record("describe", results, bench_markdown(results), command.strip(), docs_dir=docs_dir)
        typer.echo(bench_markdown(results))
        typer.echo(f"-> {path}")
