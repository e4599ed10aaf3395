"""``priorsight milvus start|stop|status`` and ``priorsight bench index``."""

from __future__ import annotations

import shlex
import sys
import typing
from pathlib import Path

import typer


def _milvus_config(ctx: typer.Context, data_dir: Path | None = None, port: int | None = None):
    from priorsight.cli import settings_of

    cfg = settings_of(ctx).milvus
    updates = {}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    if port is not None:
        updates["port"] = port
    return cfg.model_copy(update=updates) if updates else cfg


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    milvus_app = typer.Typer(no_args_is_help=True, help="Run and inspect the Milvus drawing index.")
    app.add_typer(milvus_app, name="milvus")

    data_dir_opt = typer.Option(None, "--data-dir", help="Embedded server data dir (default: milvus.data_dir).")

    @milvus_app.command("start")
    def start(ctx: typer.Context, data_dir: Path | None = data_dir_opt,
              port: int | None = typer.Option(None, help="Fixed gRPC port (default: 19530 or the next free).")) -> None:
        """Start the embedded Milvus server in the background (idempotent)."""
        from priorsight.cli import fail
        from priorsight.milvus import EmbeddedMilvus, MilvusUnavailable

        cfg = _milvus_config(ctx, data_dir, port)
        try:
            st = EmbeddedMilvus.from_config(cfg).start()
        except MilvusUnavailable as exc:
            fail(str(exc), code=1)
        typer.echo(f"running: uri {st.uri} pid {st.pid} (milvus pid {st.server_pid}) data {st.data_dir}")

    @milvus_app.command("stop")
    def stop(ctx: typer.Context, data_dir: Path | None = data_dir_opt) -> None:
        """Stop the embedded Milvus server cleanly and wait until it is gone."""
        from priorsight.milvus import EmbeddedMilvus

        cfg = _milvus_config(ctx, data_dir)
        stopped = EmbeddedMilvus.from_config(cfg).stop()
        typer.echo("stopped" if stopped else f"not running (data dir {cfg.data_dir})")

    @milvus_app.command("status")
    def status(ctx: typer.Context, data_dir: Path | None = data_dir_opt) -> None:
        """Server state, port, pids, collections with row counts and aliases."""
        from pymilvus import MilvusException

        from priorsight.cli import fail
        from priorsight.milvus import EmbeddedMilvus, MilvusUnavailable, collection_rows, connect

        cfg = _milvus_config(ctx, data_dir)
        if cfg.target == "embedded":
            st = EmbeddedMilvus.from_config(cfg).status()
            typer.echo(f"embedded: {st.state} data {st.data_dir}")
            if not st.running:
                raise typer.Exit(3 if st.state == "stopped" else 1)
            typer.echo(f"uri {st.uri} pid {st.pid} milvus pid {st.server_pid} since {st.started_at}")
        else:
            typer.echo(f"{cfg.target}: {cfg.uri}")
        try:
            client = connect(cfg)
            aliases = {}
            for name in sorted(client.list_collections()):
                listed = client.list_aliases(name)
                names = listed.get("aliases", []) if isinstance(listed, dict) else list(listed)
                aliases[name] = names
                alias_txt = f" (alias: {', '.join(names)})" if names else ""
                typer.echo(f"  {name}: {collection_rows(client, name):,} rows{alias_txt}")
            if not aliases:
                typer.echo("  no collections")
            client.close()
        except (MilvusUnavailable, MilvusException) as exc:
            fail(str(exc), code=1)

    @bench_app.command("index")
    def bench_index(
        ctx: typer.Context,
        rows: int = typer.Option(1_000_000, "--rows", min=1000, help="Drawings to index."),
        dim: int = typer.Option(256, help="Vector dimension."),
        queries: int = typer.Option(1000, help="Queries for latency and recall."),
        k: int = typer.Option(10, help="Top-k."),
        efs: str = typer.Option("16,32,64,128,256", "--breadths", "--efs",
                                help="Search breadths to sweep (comma-separated): HNSW's ef, or SCANN's nprobe."),
        index_type: str | None = typer.Option(None, "--index-type",
                                              help="auto, HNSW or SCANN (default: milvus.index_type)."),
        batch: int = typer.Option(10_000, help="Upsert batch size."),
        seed: int = typer.Option(0),
        keep: bool = typer.Option(False, help="Keep the benchmark collection (default: drop it)."),
        reuse: bool = typer.Option(False, help="Search the collection a --keep run built (same --rows, --dim, "
                                                "--seed and index settings) instead of building one."),
        data_dir: Path | None = data_dir_opt,
    ) -> None:
        """Index N synthetic embeddings into the embedded server; insert rate, index build, RSS,
        latency p50/p99 with/without a Locarno filter, recall@k vs exact search."""
        from pymilvus import MilvusException

        from priorsight.bench_index import run_index_bench
        from priorsight.cli import fail
        from priorsight.milvus import MilvusUnavailable

        cfg = _milvus_config(ctx, data_dir)
        if index_type is not None:  # the config's own choices, in any case
            from priorsight.config import MilvusConfig

            allowed = typing.get_args(MilvusConfig.model_fields["index_type"].annotation)
            chosen = next((a for a in allowed if a.lower() == index_type.lower()), None)
            if chosen is None:
                fail(f"--index-type must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {index_type!r}")
            cfg = cfg.model_copy(update={"index_type": chosen})
        try:
            ef_list = tuple(sorted({int(x) for x in efs.split(",") if x.strip()}))
        except ValueError:
            fail(f"--breadths must be comma-separated integers, got {efs!r}")
        command = "priorsight " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        try:
            r = run_index_bench(cfg, rows=rows, dim=dim, n_queries=queries, k=k, breadths=ef_list, batch=batch,
                                seed=seed, keep=keep, reuse=reuse, command=command)
        except (MilvusUnavailable, MilvusException, ValueError) as exc:
            fail(str(exc), code=1)
        if r.get("reused_collection"):
            typer.echo(f"searched the kept collection {r['reused_collection']}, "
                       f"milvus RSS peak {r['milvus_rss_peak_mib']:.0f} MiB")
        else:
            typer.echo(f"insert {r['insert_rows_per_s']:,.0f} rows/s, {r['index']['type']} build {r['index_build_s']:.1f} s, "
                       f"milvus RSS peak {r['milvus_rss_peak_mib']:.0f} MiB")
        knob = r["index"]["search_knob"]
        for row in r["sweep"]:
            typer.echo(f"  {knob}={row[knob]:<4} filter={row['filter']:<13} recall@{k}={row[f'recall@{k}']:.3f} "
                       f"p50={row['p50_ms']:.2f} ms p99={row['p99_ms']:.2f} ms")
