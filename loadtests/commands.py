"""``priorsight loadtest queries | run | autoscale`` and ``priorsight bench capacity``.

The driver (this process) may start Ray, embedded Milvus and the Serve app and samples replica
counts from Serve; Locust always runs in its own processes (:mod:`loadtests.runner`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer
import yaml

from loadtests.runner import (
    DEFAULT_THRESHOLDS,
    LocustRun,
    check_thresholds,
    load_thresholds,
    parse_steps,
    run_locust,
    write_json,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
AUTOSCALE_OVERRIDES = HERE / "autoscale_overrides.yaml"
DEFAULT_SAMPLE = Path("data/loadtest-sample")
DEFAULT_OUT = Path("data/loadtest")

loadtest_app = typer.Typer(no_args_is_help=True, help="Locust load tests of the serving API (docs/loadtesting.md).")


# -- small parsers ---------------------------------------------------------------------------


def parse_duration(raw: str) -> float:
    """``90``, ``90s``, ``2m``, ``1m30s``, ``1h`` -> seconds."""
    s = raw.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", s)
    if not m or not any(m.groups()):
        raise typer.BadParameter(f"duration like 60s, 2m or 1m30s, got {raw!r}")
    h, mi, se = (int(g or 0) for g in m.groups())
    return float(h * 3600 + mi * 60 + se)


def parse_think(raw: str) -> tuple[float, float]:
    lo, _, hi = raw.partition(",")
    try:
        a, b = float(lo), float(hi or lo)
    except ValueError:
        raise typer.BadParameter(f"think time 'MIN,MAX' seconds, got {raw!r}") from None
    if a < 0 or b < a:
        raise typer.BadParameter(f"think time needs 0 <= MIN <= MAX, got {raw!r}")
    return a, b


def split_list(raw: str | None) -> list[str]:
    return [t.strip() for t in (raw or "").split(",") if t.strip()]


def scaling_overrides(config: Any, path: Path | str) -> Any:
    """``config`` (a ServeConfig) with the ``embedder`` / ``searcher`` / ``ingress`` settings of
    the YAML at ``path`` laid over its own (validated again)."""
    from priorsight.config import DeploymentScaling

    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(data) - {"embedder", "searcher", "ingress"}
    if unknown:
        raise ValueError(f"{path}: only embedder, searcher and ingress can be overridden, not {sorted(unknown)}")
    update = {
        name: DeploymentScaling.model_validate({**getattr(config, name).model_dump(), **(over or {})})
        for name, over in data.items()
    }
    return config.model_copy(update=update)


def _is_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


# -- the service under test ------------------------------------------------------------------


@dataclass
class Service:
    url: str
    started: bool  # this process started Serve (and can sample its replicas)
    config: Any = None  # the ServeConfig it serves (when started here)
    queries: Path | None = None  # the sample's query set (with --sample)


@contextlib.contextmanager
def service_under_test(
    url: str | None,
    serve_config: Path,
    sample: Path | None,
    port: int | None,
    overrides: Path | None = None,
    text: bool = True,
    always_start: bool = False,
) -> Iterator[Service]:
    """The service at ``url`` when it answers ``/readyz`` (and ``always_start`` is off); else
    start Ray, embedded Milvus and the Serve app here (from ``serve_config``, or the held-out
    sample under ``sample``) and stop what was started on exit."""
    from services.commands import read_serve_file

    sf = read_serve_file(serve_config)
    port = port or (urlparse(url).port if url else None) or sf.port
    target = url or f"http://{sf.host}:{port}"
    if not always_start and _is_ready(target):
        typer.echo(f"using the running service at {target}")
        yield Service(target, started=False)
        return
    if url and not sample and not always_start:
        raise RuntimeError(f"{url} does not answer /readyz (start it, or pass --sample DIR to start one here)")
    from ray import serve

    from priorsight.milvus import EmbeddedMilvus
    from services.app import resolve_paths
    from services.commands import start_serving

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"port {port} is taken (another service?): pass --port, or --url to load it") from None
    config = sf.config
    if overrides:
        config = scaling_overrides(config, overrides)
    queries = None
    milvus_dirs = [s.milvus.data_dir for s in resolve_paths(config).sources if s.milvus.target == "embedded"]
    if sample:
        milvus_dirs = [Path(sample).resolve() / "milvus"]
    running_before = {d for d in milvus_dirs if EmbeddedMilvus(d).status().running}
    try:
        if sample:
            from loadtests.sample import loadtest_sample

            config, queries = loadtest_sample(config, sample)
            config = config.model_copy(update={"text_queries": text})
        typer.echo(f"starting the service on 127.0.0.1:{port} ...")
        t0 = time.monotonic()
        started_url = start_serving(resolve_paths(config), "127.0.0.1", port, name=sf.name)
        typer.echo(f"service ready at {started_url} after {time.monotonic() - t0:.0f} s")
        try:
            yield Service(started_url, started=True, config=resolve_paths(config), queries=queries)
        finally:
            serve.shutdown()
            import ray

            ray.shutdown()
    finally:  # stop only the Milvus servers started here
        for d in set(milvus_dirs) - running_before:
            EmbeddedMilvus(d).stop()


def ensure_model_env() -> None:
    """Re-run this command with the malloc settings of model processes when they are missing:
    the in-process embed measurement would be ~3x slow without them (they must be set before
    the process starts; see cluster.ray_env.WORKER_ENV)."""
    from cluster.ray_env import WORKER_ENV

    missing = {k: v for k, v in WORKER_ENV.items() if os.environ.get(k) != v}
    if missing and "MALLOC_MMAP_THRESHOLD_" in missing:
        if not Path(sys.argv[0]).is_file():  # python -c / -m: the command line cannot be re-run as is
            typer.secho(f"warning: set {', '.join(missing)} before starting (see Makefile)", err=True)
            return
        typer.echo("restarting with the model processes' malloc settings ...")
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **WORKER_ENV})


def _queries_dir(queries: Path | None, svc: Service) -> Path:
    from loadtests.queries import read_query_set

    q = queries or svc.queries
    if q is None:
        raise RuntimeError(
            "no query set: pass --queries DIR (build one with `priorsight loadtest queries`) or --sample DIR"
        )
    read_query_set(q)  # fail early on a broken folder
    return q


def _out_dir(out: Path | None, kind: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return (out or DEFAULT_OUT / f"{kind}-{stamp}").resolve()


# -- priorsight loadtest queries -------------------------------------------------------------


@loadtest_app.command("queries")
def queries_cmd(
    corpus: str = typer.Argument(..., help="A corpus (split here by patent) or, with --no-split, its held-out part."),
    out: Path = typer.Option(..., "--out", help="The query-set folder to write."),
    split: bool = typer.Option(
        True,
        help="Split CORPUS by patent here and use its test side; "
        "--no-split: CORPUS is already held out (e.g. data/demo/splits/synthetic/test).",
    ),
    test_fraction: float = typer.Option(0.2, min=0.01, max=0.99),
    seed: int = typer.Option(0),
    catalog: str | None = typer.Option(None, help="The served manifest: ids for patent and image fetches."),
    max_patents: int = typer.Option(200, min=1),
) -> None:
    """Build the query set (images + queries.json) from a held-out split of a corpus."""
    from loadtests.queries import build_query_set
    from priorsight.corpus.split import split_corpus

    held_out = corpus
    if split:
        counts = split_corpus(corpus, str(out / "split"), test_fraction, seed)
        typer.echo(f"split: {counts}")
        held_out = str(out / "split" / "test")
        catalog = catalog or str(out / "split" / "train")
    typer.echo(json.dumps(build_query_set(held_out, out, catalog, max_patents, seed)))


# -- priorsight loadtest run ---------------------------------------------------------------


@loadtest_app.command("run")
def run_cmd(
    url: str | None = typer.Option(
        None, help="The service to load (default: the serve config's host:port); started here when it does not answer."
    ),
    serve_config: Path = typer.Option(
        Path(__file__).resolve().parent.parent / "services" / "serve_config.yaml",
        "--serve-config",
        help="Serve config YAML of a service started here.",
    ),
    sample: Path | None = typer.Option(None, help="Serve (and query) the held-out sample built under this folder."),
    queries: Path | None = typer.Option(None, help="Query-set folder (default with --sample: SAMPLE/queries)."),
    users: int = typer.Option(10, min=1, help="Concurrent examiners."),
    spawn_rate: float = typer.Option(2.0, min=0.1, help="Examiners started per second."),
    duration: str = typer.Option("60s", help="Run time: 30s, 2m, 1m30s."),
    think: str = typer.Option("1,4", help="Think time between an examiner's actions, 'MIN,MAX' seconds."),
    tags: str | None = typer.Option(
        None, help="Scenarios, comma-separated: search, single, multiview, text, filtered, browse, detail, image."
    ),
    exclude_tags: str | None = typer.Option(None, help="Scenarios to leave out."),
    workers: int = typer.Option(0, min=0, help="Distributed Locust: a master and N local worker processes."),
    thresholds: Path = typer.Option(DEFAULT_THRESHOLDS, help="Limits; exceeded -> exit code 1."),
    out: Path | None = typer.Option(None, help="Report folder (default data/loadtest/run-TIMESTAMP)."),
    port: int | None = typer.Option(None, help="Port of a service started here (default: the serve config's)."),
    text: bool = typer.Option(True, help="A sample service started here embeds words (text+image queries)."),
) -> None:
    """Run Locust headless against the service: CSV, HTML report and summary.json; exit 1 when
    a threshold is exceeded, 2 when the run itself fails."""
    from loadtests.replicas import ReplicaSampler, read_replicas, replica_range

    seconds = parse_duration(duration)
    out_dir = _out_dir(out, "run")
    try:
        limits = load_thresholds(thresholds)
        # --sample without --url: start the sample (its query set fits its catalog)
        with service_under_test(
            url, serve_config, sample, port, text=text, always_start=bool(sample and not url)
        ) as svc:
            q = _queries_dir(queries, svc)
            run = LocustRun(
                url=svc.url,
                queries=q,
                out_dir=out_dir,
                users=users,
                spawn_rate=spawn_rate,
                duration_s=seconds,
                think=parse_think(think),
                tags=split_list(tags),
                exclude_tags=split_list(exclude_tags),
                workers=workers,
            )
            typer.echo(
                f"locust: {users} users, +{spawn_rate:g}/s, {seconds:g} s, think {think} s"
                f"{', tags ' + tags if tags else ''}{f', {workers} workers' if workers else ''} -> {out_dir}"
            )
            sampler = ReplicaSampler(out_dir / "replicas.csv") if svc.started else contextlib.nullcontext()
            with sampler:
                summary = run_locust(run)
    except Exception as exc:  # noqa: BLE001 - starting Ray/Milvus/Serve or Locust failed: exit 2, not a traceback
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    if (out_dir / "replicas.csv").exists():
        summary["replicas"] = replica_range(read_replicas(out_dir / "replicas.csv"))
    violations = check_thresholds(summary, limits)
    summary["thresholds"] = {
        "file": str(thresholds),
        "limits": limits,
        "violations": violations,
        "passed": not violations,
    }
    write_json(out_dir / "summary.json", summary)
    typer.echo(format_summary(summary))
    typer.echo(f"report: {out_dir}/report.html, summary: {out_dir}/summary.json")
    if violations:
        for v in violations:
            typer.secho(f"threshold exceeded: {v}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo("thresholds: passed")


def format_summary(s: dict[str, Any]) -> str:
    def line(name: str, e: dict[str, Any]) -> str:
        return (
            f"{name[:44]:<44} {e['requests']:>7} {e['failures']:>6} {e['rps']:>8.2f} "
            f"{e['p50_ms'] or 0:>7.0f} {e['p95_ms'] or 0:>7.0f} {e['p99_ms'] or 0:>7.0f}"
        )

    rows = [f"{'request':<44} {'count':>7} {'fails':>6} {'rps':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]
    rows += [line(n, e) for n, e in sorted(s["by_request"].items())]
    rows.append(line("all requests", s))
    if s.get("locust_cores") is not None:
        rows.append(
            f"Locust used {s['locust_cpu_s']} CPU s in all, {s['locust_cores']} cores while loading; "
            f"the machine was {s.get('machine_cpu_pct')} % busy"
        )
    return "\n".join(rows)


# -- priorsight loadtest autoscale ---------------------------------------------------------


@loadtest_app.command("autoscale")
def autoscale_cmd(
    serve_config: Path = typer.Option(
        Path(__file__).resolve().parent.parent / "services" / "serve_config.yaml",
        "--serve-config",
        help="Serve config YAML (the production settings).",
    ),
    overrides: Path = typer.Option(
        AUTOSCALE_OVERRIDES,
        help="Scaling settings laid over the serve config's (shorter delays, for a demonstration of minutes).",
    ),
    sample: Path | None = typer.Option(DEFAULT_SAMPLE, help="Serve the held-out sample built under this folder."),
    queries: Path | None = typer.Option(None, help="Query-set folder (default: SAMPLE/queries)."),
    steps: str = typer.Option("20:1,80:16,90:1", help="Load steps 'SECONDS:USERS,...': quiet, load, quiet."),
    think: str = typer.Option("0,0.5", help="Think time 'MIN,MAX' seconds (short: the step must load)."),
    tags: str | None = typer.Option("search", help="Scenarios (default: searches only)."),
    out: Path | None = typer.Option(None, help="Folder (default data/loadtest/autoscale-TIMESTAMP)."),
    port: int = typer.Option(8013),
    text: bool = typer.Option(True, help="The sample service embeds words."),
    docs: bool = typer.Option(False, help="Also copy the PNG and JSON to docs/loadtesting/."),
) -> None:
    """A load step that pushes replicas up and a quiet period that brings them down: replica
    counts sampled from Serve every second, plotted with p50/p95 latency (autoscaling.png)."""
    from loadtests.plot import plot_autoscaling
    from loadtests.replicas import ReplicaSampler, read_replicas, replica_range
    from loadtests.runner import read_history

    out_dir = _out_dir(out, "autoscale")
    try:
        plan = parse_steps(steps)
        with service_under_test(
            None, serve_config, sample, port, overrides=overrides, text=text, always_start=True
        ) as svc:
            q = _queries_dir(queries, svc)
            config = svc.config
            run = LocustRun(
                url=svc.url,
                queries=q,
                out_dir=out_dir,
                steps=steps,
                think=parse_think(think),
                tags=split_list(tags),
                duration_s=sum(s for s, _ in plan),
            )
            typer.echo(f"steps {steps} (seconds:users) -> {out_dir}")
            with ReplicaSampler(out_dir / "replicas.csv") as sampler:
                time.sleep(2)  # a few samples before the load
                t_start = time.time()
                summary = run_locust(run)
                time.sleep(2)
            errors = sampler.errors
    except Exception as exc:  # noqa: BLE001 - starting Ray/Milvus/Serve or Locust failed: exit 2, not a traceback
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    history = read_history(run.csv_prefix)
    replicas = read_replicas(out_dir / "replicas.csv")
    if history:  # the steps start with Locust's run (its first history row), after its start-up
        t_start = float(history[0]["t"])
    markers, t = [], t_start
    for seconds, users in plan:
        markers.append((t, f"{users} user{'s' if users != 1 else ''}"))
        t += seconds
    png = plot_autoscaling(
        history,
        replicas,
        out_dir / "autoscaling.png",
        f"PriorSight autoscaling: steps {steps} (seconds:users), think {think} s",
        markers,
    )
    scaling = {name: getattr(config, name).model_dump() for name in ("embedder", "searcher", "ingress")}
    result = {
        "steps": steps,
        "think_s": think,
        "tags": tags,
        "overrides": str(overrides),
        "scaling": scaling,
        "replicas": replica_range(replicas),
        "replica_sample_errors": errors,
        "replica_timeline": _replica_changes(replicas, t_start),
        "phases": _phases(history, replicas, plan, t_start),
        "summary": summary,
        "png": str(png),
    }
    write_json(out_dir / "autoscaling.json", result)
    typer.echo(
        json.dumps(
            {"replicas": result["replicas"], "phases": result["phases"], "changes": result["replica_timeline"]},
            indent=1,
        )
    )
    typer.echo(f"plot: {png}")
    if docs:
        dest = Path("docs/loadtesting")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, dest / "autoscaling.png")
        slim = {k: v for k, v in result.items() if k not in ("png",)}
        slim["command"] = f"priorsight loadtest autoscale --steps {steps} --think {think}"
        write_json(dest / "autoscaling.json", slim)
        typer.echo(f"copied to {dest}/")


def _replica_changes(rows: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """Seconds after the load started when Serve decided to scale a deployment (a replica
    STARTING / STOPPING appears) and when its RUNNING count changed."""
    last: dict[str, dict[str, int]] = {}
    out = []
    for r in rows:
        name, prev = r["deployment"], last.get(r["deployment"])
        t = round(r["t"] - t0, 1)
        if prev is not None:
            if r["starting"] and not prev["starting"]:
                out.append({"t_s": t, "deployment": name, "event": "upscale decided (replica starting)"})
            if r["stopping"] and not prev["stopping"]:
                out.append({"t_s": t, "deployment": name, "event": "downscale decided (replica stopping)"})
            if r["running"] != prev["running"]:
                out.append({"t_s": t, "deployment": name, "event": f"running {prev['running']} -> {r['running']}"})
        last[name] = {"running": r["running"], "starting": r["starting"], "stopping": r["stopping"]}
    return out


def _phases(
    history: list[dict[str, Any]], replicas: list[dict[str, Any]], plan: list[tuple[float, int]], t0: float
) -> list[dict[str, Any]]:
    """Per load step: users, mean RPS, median of the 10-s p95, replicas at its end."""
    import statistics

    out, start = [], t0
    for seconds, users in plan:
        end = start + seconds
        h = [r for r in history if start <= r["t"] < end]
        rep = {}
        for r in replicas:
            if r["t"] < end:
                rep[r["deployment"]] = r["running"]
        p95 = [r["p95_ms"] for r in h if r["p95_ms"]]
        out.append(
            {
                "users": users,
                "seconds": seconds,
                "mean_rps": round(statistics.fmean([r["rps"] for r in h]), 2) if h else None,
                "median_p95_ms": statistics.median(p95) if p95 else None,
                "replicas_at_end": rep,
            }
        )
        start = end
    return out


# -- priorsight bench capacity -------------------------------------------------------------


def capacity_cmd(
    serve_config: Path = typer.Option(
        Path(__file__).resolve().parent.parent / "services" / "serve_config.yaml",
        "--serve-config",
        help="Serve config YAML (its scaling settings are used).",
    ),
    sample: Path = typer.Option(DEFAULT_SAMPLE, help="Serve the held-out sample built under this folder."),
    queries: Path | None = typer.Option(None, help="Query-set folder (default: SAMPLE/queries)."),
    users: str = typer.Option("1,2,3,4,6,8", help="User counts of the steps (closed loop, no think time)."),
    step_seconds: float = typer.Option(20.0, min=5),
    p99_ms: float = typer.Option(500.0, help="A step is sustainable when its p99 stays at or below this."),
    tags: str = typer.Option(
        "single", help="Scenarios (default: single-drawing searches, the in-process path's query)."
    ),
    inproc_queries: int = typer.Option(40, min=5, help="Queries of the in-process embed + search measurement."),
    port: int = typer.Option(8012),
    out: Path | None = typer.Option(None, help="Folder (default data/loadtest/capacity-TIMESTAMP)."),
) -> None:
    """Max sustainable RPS at p99 <= 500 ms, stepping users up, divided by the in-process embed +
    search throughput measured in the same run (-> docs/benchmarks.md, section capacity)."""
    from loadtests.replicas import replica_counts
    from priorsight.bench import markdown_table, record
    from services.serve_bench import bench_serve

    ensure_model_env()
    load_start = os.getloadavg()[0]
    if load_start > 2.5:  # before the service starts: other work
        typer.secho(
            f"warning: 1-minute load average {load_start:.1f} on {os.cpu_count()} CPUs: other work competes "
            "for the CPUs, the figures will be low",
            err=True,
        )
    steps = [int(u) for u in split_list(users)]
    out_dir = _out_dir(out, "capacity")
    rows: list[dict[str, Any]] = []
    try:
        with service_under_test(None, serve_config, sample, port, text=False, always_start=True) as svc:
            q = _queries_dir(queries, svc)
            config = svc.config
            typer.echo("in-process embed + search (and single-client HTTP, which warms the service) ...")
            inproc = bench_serve(svc.url, config, inproc_queries, warmup=5)
            limit_rps = 1000.0 / inproc["in_process"]["mean_ms"]
            typer.echo(f"in-process: {inproc['in_process']['mean_ms']:.1f} ms per query -> {limit_rps:.1f} queries/s")
            for u in steps:
                run = LocustRun(
                    url=svc.url,
                    queries=q,
                    out_dir=out_dir / f"users-{u:03d}",
                    users=u,
                    spawn_rate=u,
                    duration_s=step_seconds,
                    think=(0.0, 0.0),
                    tags=split_list(tags),
                )
                s = run_locust(run)
                machine_cpu = s["machine_cpu_pct"] or 0.0
                reps = {n: c["running"] for n, c in replica_counts().items()}
                row = {
                    "users": u,
                    "rps": s["rps"],
                    "p50_ms": s["p50_ms"],
                    "p95_ms": s["p95_ms"],
                    "p99_ms": s["p99_ms"],
                    "failures": s["failures"],
                    "requests": s["requests"],
                    "locust_cores": s["locust_cores"],
                    "machine_cpu_pct": machine_cpu,
                    "load_avg_1m": round(os.getloadavg()[0], 2),  # other work on the machine shows here
                    "replicas": reps,
                    "sustainable": bool(s["p99_ms"] is not None and s["p99_ms"] <= p99_ms and s["failures"] == 0),
                }
                rows.append(row)
                typer.echo(
                    f"{u:>3} users: {s['rps']:.1f} RPS, p50 {s['p50_ms'] or 0:.0f} ms, p99 {s['p99_ms'] or 0:.0f} ms, "
                    f"{s['failures']} failures, Locust {s['locust_cores']} cores, machine {machine_cpu:.0f} % "
                    f"CPU, replicas {reps}"
                )
                if not row["sustainable"] and len(rows) > 1 and not rows[-2]["sustainable"]:
                    break  # two in a row (one may be noise): closed loop, more users only queue longer
    except Exception as exc:  # noqa: BLE001 - starting Ray/Milvus/Serve or Locust failed: exit 2, not a traceback
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    good = [r for r in rows if r["sustainable"]]
    best = max(good, key=lambda r: r["rps"]) if good else None
    max_rps = best["rps"] if best else 0.0
    ratio = max_rps / limit_rps if limit_rps else 0.0
    res = {
        "p99_limit_ms": p99_ms,
        "load_avg_1m_at_start": round(load_start, 2),
        "step_seconds": step_seconds,
        "tags": tags,
        "steps": rows,
        "max_sustainable_rps": max_rps,
        "at_users": best["users"] if best else None,
        "in_process": inproc["in_process"],
        "in_process_limit_rps": limit_rps,
        "ratio": ratio,
        "goal_ratio": 0.7,
        "http_single_client": inproc["http"],
        "model": inproc["model"],
        "drawings_indexed": inproc["drawings_indexed"],
        "embed_threads": inproc["embed_threads"],
        "scaling": {n: getattr(config, n).model_dump() for n in ("embedder", "searcher", "ingress")},
        "embed_max_batch_size": config.embed_max_batch_size,
        "out": str(out_dir),
    }
    write_json(out_dir / "capacity.json", res)
    table = markdown_table(
        [
            {
                **r,
                "replicas": " ".join(f"{k[0]}{v}" for k, v in sorted(r["replicas"].items())),
                "sustainable": "yes" if r["sustainable"] else "no",
            }
            for r in rows
        ],
        [
            "users",
            "rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "failures",
            "locust_cores",
            "machine_cpu_pct",
            "load_avg_1m",
            "replicas",
            "sustainable",
        ],
    )
    md = (
        f"Max sustainable throughput at p99 <= {p99_ms:g} ms: **{max_rps:.1f} RPS** "
        f"({best['users'] if best else '-'} closed-loop user(s), no think time, single-drawing searches, "
        f"{step_seconds:g} s per step). In-process preprocess + embed + search in the same run: "
        f"{inproc['in_process']['mean_ms']:.1f} ms per query = **{limit_rps:.1f} queries/s**. "
        f"Ratio **{ratio:.2f}** (goal >= 0.7).\n\n"
        + table
        + "\nReplicas at the end of each step: I = Ingress, Q = QueryEmbedder, S = Searcher "
        "(services/serve_config.yaml scaling). `locust_cores`: CPU seconds of the Locust process per second "
        "while it loads (on this machine Locust competes with the service for the same cores); "
        "`machine_cpu_pct`: all cores busy over the same window; `load_avg_1m`: the 1-minute load average "
        "at the end of the step (the saturated service alone keeps it at 2-4 here; far above that, other "
        "jobs competed for the CPUs). "
        "What limits it: docs/loadtesting.md.\n"
    )
    cmd = f"priorsight bench capacity --users {users} --step-seconds {step_seconds:g}"
    record("capacity", res, md, cmd)
    typer.echo(md)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(loadtest_app, name="loadtest")
    bench_app.command("capacity")(capacity_cmd)
