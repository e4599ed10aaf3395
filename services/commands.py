"""``priorsight serve`` and ``priorsight bench serve``, and :func:`serve_demo` for the demo.

Everything reads ONE Serve config YAML (``services/serve_config.yaml`` by default): its
``http_options`` (where Serve listens) and its application's ``args`` (a :class:`ServeConfig`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from priorsight.config import MilvusConfig, SearchSourceConfig, ServeConfig, serve_config_from_args
from priorsight.vectors import DEFAULT_WEIGHTS, FusionWeights
from services.app import resolve_paths
from training import DEFAULT_MODEL

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "serve_config.yaml"


@dataclass
class ServeFile:
    """The parts of a Serve config YAML that ``priorsight serve`` uses."""

    config: ServeConfig
    host: str = "127.0.0.1"
    port: int = 8000
    name: str = "priorsight"
    route_prefix: str = "/"


def read_serve_file(path: Path | str = DEFAULT_CONFIG) -> ServeFile:
    data = yaml.safe_load(Path(path).read_text()) or {}
    apps = data.get("applications") or []
    if len(apps) != 1:
        raise ValueError(f"{path}: expected exactly one application, found {len(apps)}")
    app = apps[0]
    http = data.get("http_options") or {}
    return ServeFile(serve_config_from_args(app.get("args") or {}), http.get("host", "127.0.0.1"),
                     int(http.get("port", 8000)), app.get("name", "priorsight"), app.get("route_prefix", "/"))


def start_embedded_sources(config: ServeConfig) -> None:
    from priorsight.milvus import EmbeddedMilvus

    for s in config.sources:
        if s.milvus.target == "embedded":
            st = EmbeddedMilvus.from_config(s.milvus).start()
            log.info("embedded Milvus of source %s on %s", s.name, st.uri)


def embedded_dirs(config: ServeConfig, sample: Path | None = None) -> list[Path]:
    """Data dirs of the embedded Milvus servers a command serving ``config`` (or a ``sample``
    built under that folder) starts."""
    if sample:
        return [sample.resolve() / "milvus"]
    return [s.milvus.data_dir for s in resolve_paths(config).sources if s.milvus.target == "embedded"]


@contextlib.contextmanager
def stop_started_servers(dirs: list[Path]) -> Iterator[None]:
    """On exit, stop the embedded Milvus servers under ``dirs`` that were not running on entry
    (a server someone started before is left running)."""
    from priorsight.milvus import EmbeddedMilvus

    before = {d for d in dirs if EmbeddedMilvus(d).status().running}
    try:
        yield
    finally:
        for d in set(dirs) - before:
            if EmbeddedMilvus(d).stop():
                log.info("stopped the embedded Milvus under %s", d)


def wait_ready(url: str, timeout_s: float = 300.0) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
            last = r.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s: {last[:300]}")


def serve_fast_path(api_open: bool, environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """Turn Serve's fast path on (``cluster.ray_env.SERVE_ENV``, before Ray starts) unless the
    API is open without keys on a non-loopback address: then requests are rate-limited per client
    address, which HAProxy does not pass on, so Serve's Python proxy stays. Returns what applies."""
    from cluster.ray_env import apply_serve_env

    if api_open:
        log.warning("keeping Serve's Python proxy: without API keys requests are rate-limited per client "
                    "address, which HAProxy (Serve's fast path) does not pass on (docs/serving.md)")
        return None
    applied = apply_serve_env(environ)
    log.info("Ray Serve settings: %s", applied)
    return applied


def start_serving(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, ray_address: str | None = None,
                  num_cpus: int | None = None, name: str = "priorsight", ready_timeout_s: float = 300.0) -> str:
    """Start (or join) Ray, the embedded Milvus of embedded sources if configured, and the Serve
    app; returns its URL once ``/readyz`` answers."""
    from ray import serve

    from services.app import build_app
    from services.auth import warn_if_open

    config = resolve_paths(config)
    is_open = warn_if_open(config.security, host)
    if config.start_embedded_milvus:
        start_embedded_sources(config)
    try:
        import ray

        from cluster.ray_env import init_ray

        if not ray_address and not ray.is_initialized():  # a local Ray started here
            serve_fast_path(is_open)
        init_ray(ray_address, num_cpus=num_cpus)
    except ImportError:  # pragma: no cover - the cluster stage is optional
        import ray

        ray.init(address=ray_address, num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(config), name=name, route_prefix="/", blocking=False)
    url = f"http://{host}:{port}"
    wait_ready(url, ready_timeout_s)
    log.info("PriorSight serving at %s (metrics: %s/metrics)", url, url)
    return url


def client_headers() -> dict[str, str]:
    """The API key of this client, from ``PRIORSIGHT_API_KEY`` (never from a file in the repo)."""
    import os

    key = os.environ.get("PRIORSIGHT_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def example_query(url: str, manifest: str, k: int = 5) -> dict[str, Any]:
    """POST the first drawing of the manifest to ``/v1/search`` (with ``PRIORSIGHT_API_KEY`` if
    set); returns the JSON answer."""
    import httpx

    from priorsight.manifest import iter_drawings
    from priorsight.storage import Storage

    storage = Storage()
    drawing = next(iter(iter_drawings(manifest, storage)))
    data = storage.read_bytes(drawing.image_uri)
    r = httpx.post(f"{url}/v1/search", files=[("images", (Path(drawing.image_uri).name, data))],
                   data={"k": str(k)}, headers=client_headers(), timeout=60)
    r.raise_for_status()
    return {"query_drawing": drawing.drawing_id, "response": r.json()}


def _block_until_interrupted() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def serve_demo(checkpoint: str, manifest: str, collection_alias: str, milvus_config: MilvusConfig,
               block: bool = False, port: int = 8000, weights: FusionWeights | None = None) -> str:
    """Serve a checkpoint over one index, run one example query over HTTP and print it; with
    ``block`` keep serving until Ctrl-C. Returns the URL."""
    from ray import serve

    config = ServeConfig(checkpoint=checkpoint, manifest=manifest, query_weights=weights or DEFAULT_WEIGHTS,
                         start_embedded_milvus=milvus_config.target == "embedded",
                         sources=[SearchSourceConfig(name="local", milvus=milvus_config, collection=collection_alias)])
    url = start_serving(config, port=port)
    typer.echo(f"PriorSight is serving at {url}  (examiner page: {url}/, API: {url}/docs)")
    ex = example_query(url, manifest)
    res = ex["response"]
    typer.echo(f"example query with drawing {ex['query_drawing']}: "
               f"{res['record']['latency_ms']:.0f} ms, model {res['record']['model']['version']}")
    for i, p in enumerate(res["results"], 1):
        typer.echo(f"  {i}. {p['patent_id']}  {p['score']:.3f}  {p['locarno_class'] or p.get('us_class') or '-'}  "
                   f"{p['title'][:60]}")
    if block:
        typer.echo("Ctrl-C stops serving.")
        _block_until_interrupted()
        serve.shutdown()
    return url


def _sample(config: ServeConfig, sample_dir: Path, model: str = "demo-small") -> ServeConfig:
    """Build (once) a sample corpus, a checkpoint of the ``model`` architecture (pretrained
    backbone, untrained heads: the compute of a trained one) and an embedded-Milvus index under
    ``sample_dir``."""
    from services.sample import ensure_indexed, write_random_checkpoint, write_sample_corpus

    sample_dir = sample_dir.resolve()
    milvus = MilvusConfig(target="embedded", data_dir=sample_dir / "milvus", alias="drawings")
    corpus, ckpt = sample_dir / "corpus", sample_dir / "model" / "sample.pt"
    if not (corpus / "manifest.parquet").exists():
        write_sample_corpus(corpus, n_patents=8)
    if not ckpt.exists():
        write_random_checkpoint(ckpt, model)
    ensure_indexed(str(corpus), str(ckpt), milvus)
    return config.model_copy(update={
        "checkpoint": str(ckpt), "manifest": str(corpus), "start_embedded_milvus": True,
        "sources": [SearchSourceConfig(name="sample", milvus=milvus, collection="drawings")]})


DEFAULT_KEY_FILE = "data/api-keys.yaml"


def key_file_of(file: Path | None, config_file: Path) -> Path:
    """The key file: ``--file``, else the Serve config's (or env's) ``security.api_keys_file``,
    else ``data/api-keys.yaml``."""
    if file is not None:
        return file
    configured = read_serve_file(config_file).config.security.api_keys_file
    return Path(configured or DEFAULT_KEY_FILE)


def register_apikey(app: typer.Typer) -> None:
    from services.auth import SCOPES, add_key, read_key_file, revoke_key

    keys_app = typer.Typer(no_args_is_help=True, help="API keys of the query API (only hashes are stored).")
    app.add_typer(keys_app, name="apikey")
    file_opt = typer.Option(None, "--file", help="Key file (default: the Serve config's security.api_keys_file, "
                                                  f"else {DEFAULT_KEY_FILE}).")
    config_opt = typer.Option(DEFAULT_CONFIG, "--serve-config", help="Serve config YAML.")

    @keys_app.command("create")
    def create_cmd(
        name: str = typer.Argument(..., help="Who or what uses the key (letters, digits, _ . @ -)."),
        scope: list[str] = typer.Option(["search"], "--scope", help="search and/or admin (repeat the option)."),
        rate_limit: float | None = typer.Option(None, "--rate-limit", help="Requests/s for this key "
                                                                             "(0: unlimited; default: the server's)."),
        file: Path | None = file_opt,
        config_file: Path = config_opt,
    ) -> None:
        """Create a key: print it ONCE on stdout, store only its SHA-256 in the key file."""
        bad = sorted(set(scope) - set(SCOPES))
        if bad:
            raise typer.BadParameter(f"unknown scope(s) {bad}; use {list(SCOPES)}", param_hint="--scope")
        path = key_file_of(file, config_file)
        try:
            key = add_key(path, name, scope, rate_limit)
        except ValueError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from exc
        typer.echo(f"key {name!r} ({', '.join(sorted(set(scope)))}) added to {path} (hash only); "
                   "copy it now, it is not shown again:", err=True)
        typer.echo(key)

    @keys_app.command("list")
    def list_cmd(file: Path | None = file_opt, config_file: Path = config_opt) -> None:
        """Names, scopes and creation times of the keys (never the keys)."""
        path = key_file_of(file, config_file)
        for k in read_key_file(path):
            limit = "" if k.rate_limit_per_s is None else f"  rate {k.rate_limit_per_s:g}/s"
            typer.echo(f"{k.name}\t{','.join(k.scopes)}\t{k.created_at or '-'}{limit}")

    @keys_app.command("revoke")
    def revoke_cmd(name: str = typer.Argument(...), file: Path | None = file_opt,
                   config_file: Path = config_opt) -> None:
        """Remove a key (servers re-read the key file within seconds)."""
        path = key_file_of(file, config_file)
        if not revoke_key(path, name):
            typer.secho(f"error: no key named {name!r} in {path}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2)
        typer.echo(f"revoked {name!r}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    register_apikey(app)

    @app.command("serve")
    def serve_cmd(
        config_file: Path = typer.Option(DEFAULT_CONFIG, "--serve-config", help="Serve config YAML."),
        host: str | None = typer.Option(None, help="Override http_options.host (default 127.0.0.1)."),
        port: int | None = typer.Option(None, help="Override http_options.port."),
        ray_address: str | None = typer.Option(None, help="Join this Ray cluster instead of starting one."),
        sample: Path | None = typer.Option(None, help="Serve a generated sample (corpus, untrained model, "
                                                       "embedded-Milvus index) built under this folder."),
        example: bool = typer.Option(True, help="Run one example query and print it."),
    ) -> None:
        """Start Ray, embedded Milvus (if configured) and the Serve app; print the URL; serve until Ctrl-C."""
        from ray import serve

        from services.auth import KeyStore

        sf = read_serve_file(config_file)
        with stop_started_servers(embedded_dirs(sf.config, sample)):  # Ctrl-C stops what this started
            config = _sample(sf.config, sample) if sample else sf.config
            url = start_serving(config, host or sf.host, port or sf.port, ray_address, name=sf.name)
            typer.echo(f"PriorSight is serving at {url}  (examiner page: {url}/, API docs: {url}/docs, "
                       f"metrics: {url}/metrics)")
            if example and KeyStore(config.security).enabled and not client_headers():
                typer.echo("API keys are on: no example query (set PRIORSIGHT_API_KEY to run one).")
            elif example:
                ex = example_query(url, resolve_paths(config).manifest)
                typer.echo(json.dumps({"query_drawing": ex["query_drawing"],
                                       "top": [(p["patent_id"], round(p["score"], 3))
                                               for p in ex["response"]["results"]],
                                       "latency_ms": ex["response"]["record"]["latency_ms"]}))
            typer.echo("Ctrl-C stops serving.")
            try:
                _block_until_interrupted()
            finally:
                serve.shutdown()

    @bench_app.command("serve")
    def bench_serve_cmd(
        config_file: Path = typer.Option(DEFAULT_CONFIG, "--serve-config", help="Serve config YAML."),
        sample: Path | None = typer.Option(None, help="Benchmark a generated sample built under this folder."),
        queries: int = typer.Option(50, min=5),
        warmup: int = typer.Option(5, min=0),
        port: int = typer.Option(8011, help="Port of the Serve app started for the benchmark."),
        model: str = typer.Option(DEFAULT_MODEL, help="With --sample: the model architecture served "
                                                      "(shipped config name or JSON path)."),
        floor: bool = typer.Option(True, help="Also measure this host's transport floor (a raw gRPC call "
                                              "between two local processes) and the ratio it allows."),
    ) -> None:
        """Latency p50/p99 of /v1/search over HTTP vs the same embed + search in-process, where the
        difference goes, and this host's transport floor."""
        from ray import serve

        from priorsight.bench import record
        from services.serve_bench import bench_serve, floor_ratio, serve_markdown, transport_floor

        if sample:  # one sample (corpus, checkpoint, index) per architecture
            sample = sample / Path(model).stem
        sf = read_serve_file(config_file)
        with stop_started_servers(embedded_dirs(sf.config, sample)):
            config = resolve_paths(_sample(sf.config, sample, model) if sample else sf.config)
            url = start_serving(config, "127.0.0.1", port)
            try:
                res = bench_serve(url, config, queries, warmup)
                if floor:  # with the app up and idle, as the calls found the host
                    b = res["breakdown"]
                    res["floor"] = transport_floor([b["embed_replica_ms"], b["milvus_replica_ms"]])
                    res["floor_ratio_p50"] = floor_ratio(res["in_process"]["p50_ms"], b["edge_ms"],
                                                         [w["overhead_ms"] for w in res["floor"]["waits"]])
            finally:
                serve.shutdown()
        md = serve_markdown(res)
        cmd = "priorsight bench serve" + (f" --sample {sample.parent} --model {model}" if sample else "") \
            + f" --queries {queries}" + ("" if floor else " --no-floor")
        record("serve", res, md, cmd)
        typer.echo(md)
