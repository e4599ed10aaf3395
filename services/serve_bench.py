"""``priorsight bench serve``: single-client latency of ``POST /v1/search`` over HTTP against the
same preprocessing + embed + search in this process (the limit), where the difference goes, and
this host's transport floor.

- :func:`bench_serve` interleaves the two paths query by query and keeps, for each HTTP query,
  the timings of its search record (the endpoint's ``latency_ms``, the embedder's ``embed_ms``,
  Milvus's ``search_ms``), so :func:`overhead_breakdown` can split the overhead into the HTTP edge,
  the deployment calls and any slower embedding in the replica.
- :func:`transport_floor` measures what one call between two local processes costs on this host
  when the callee takes a while to answer (a raw gRPC round trip, the transport Serve uses
  between deployments in its high-throughput mode, with none of Serve's own work):
  :func:`floor_ratio` is the ratio the three-deployment design could reach here if each of its
  two deployment calls cost only that.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from priorsight.config import ServeConfig

log = logging.getLogger(__name__)

GOAL_RATIO = 1.2
FLOOR_METHOD = "/priorsight.bench.Floor/Call"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(seconds) * 1000, "p99_ms": percentile(seconds, 99) * 1000,
            "mean_ms": statistics.fmean(seconds) * 1000}


def overhead_breakdown(http: list[dict[str, float]], local: list[dict[str, float]]) -> dict[str, float]:
    """Medians (ms) of where each path's time goes, from per-query timings in ms.

    ``http`` rows: ``total`` (client's round trip), ``endpoint`` (the search record's
    ``latency_ms``: the Ingress's endpoint function), ``embed`` (the replica's model time),
    ``milvus`` (the slowest source's Milvus call, in the Searcher). ``local`` rows: ``total``,
    ``embed``, ``milvus`` of the in-process path. Medians of per-query differences, so they need
    not add up exactly."""
    def med(rows: list[dict[str, float]], f: Any) -> float:
        return float(statistics.median(f(r) for r in rows))

    out = {
        "edge_ms": med(http, lambda r: r["total"] - r["endpoint"]),
        "calls_and_endpoint_ms": med(http, lambda r: r["endpoint"] - r["embed"] - r["milvus"]),
        "embed_replica_ms": med(http, lambda r: r["embed"]),
        "milvus_replica_ms": med(http, lambda r: r["milvus"]),
        "embed_in_process_ms": med(local, lambda r: r["embed"]),
        "milvus_in_process_ms": med(local, lambda r: r["milvus"]),
        "rest_in_process_ms": med(local, lambda r: r["total"] - r["embed"] - r["milvus"]),
    }
    out["embed_gap_ms"] = out["embed_replica_ms"] - out["embed_in_process_ms"]
    return out


def floor_ratio(in_process_p50_ms: float, edge_ms: float, hops_ms: list[float]) -> float:
    """The p50 ratio if the HTTP edge stayed as measured and each deployment call cost only its
    transport floor (``hops_ms``): no work of Serve's, none of the endpoint's, the same model time."""
    return (in_process_p50_ms + edge_ms + sum(hops_ms)) / in_process_p50_ms


def bench_serve(url: str, config: ServeConfig, queries: int = 50, warmup: int = 5) -> dict[str, Any]:
    """Single-client latency of ``POST /v1/search`` over HTTP vs the same preprocessing + embed +
    search in this process (the limit), interleaved query by query, with the breakdown."""
    import httpx

    from priorsight.manifest import iter_drawings
    from priorsight.milvus import build_filter
    from priorsight.storage import Storage
    from services.backends import LocalBackend
    from services.commands import client_headers
    from services.embedding import QueryEncoder
    from services.search import FanOutSearcher

    storage = Storage()
    drawings = list(iter_drawings(config.manifest, storage))
    # only the drawings the queries use (cycled if there are fewer): not a whole corpus's images
    images = [(d.drawing_id, storage.read_bytes(d.image_uri)) for d in drawings[:warmup + queries]]
    encoder = QueryEncoder.load(config.checkpoint, config.model_version, text=False, threads=config.embed_threads,
                                weights=config.query_weights)
    searcher = FanOutSearcher.connect(config.sources)
    local = LocalBackend(encoder, searcher, config.candidates_per_query, config.max_image_pixels)
    k = 10
    http_s, local_s = [], []
    http_parts: list[dict[str, float]] = []
    local_parts: list[dict[str, float]] = []
    try:
        with httpx.Client(timeout=60) as client:
            for i in range(warmup + queries):
                name, data = images[i % len(images)]
                t0 = time.perf_counter()
                r = client.post(f"{url}/v1/search", files=[("images", (f"{name}.png", data, "image/png"))],
                                data={"k": str(k)}, headers=client_headers())
                t1 = time.perf_counter()
                r.raise_for_status()
                emb = local.embed_sync([(data, None)], None)
                out = local.search_sync(emb.vectors, k, build_filter(), config.fusion, config.rrf_k, True)
                t2 = time.perf_counter()
                if not out.patents:
                    raise RuntimeError("in-process search found nothing")
                if i < warmup:
                    continue
                rec = r.json()["record"]
                http_s.append(t1 - t0)
                local_s.append(t2 - t1)
                http_parts.append({"total": (t1 - t0) * 1000, "endpoint": rec["latency_ms"], "embed": rec["embed_ms"],
                                   "milvus": max(rec["search_ms"].values(), default=0.0)})
                local_parts.append({"total": (t2 - t1) * 1000, "embed": emb.seconds * 1000,
                                    "milvus": max(out.source_seconds.values(), default=0.0) * 1000})
    finally:
        searcher.close()

    h, inproc = summary_ms(http_s), summary_ms(local_s)
    return {"queries": queries, "warmup": warmup, "k": k, "http": h, "in_process": inproc,
            "overhead_ratio_p50": h["p50_ms"] / inproc["p50_ms"], "overhead_ratio_p99": h["p99_ms"] / inproc["p99_ms"],
            "goal_ratio": GOAL_RATIO, "breakdown": overhead_breakdown(http_parts, local_parts),
            "drawings_indexed": len(drawings), "model": encoder.info.name,
            "sources": [s.name for s in config.sources], "embed_threads": config.embed_threads}


def _floor_server(port_out: Any) -> None:
    """Child process: a gRPC server (asyncio, like a replica's) whose one method waits the
    microseconds named in the request's first 8 bytes, then answers how long it waited."""
    import grpc

    async def call(request: bytes, context: Any) -> bytes:
        t0 = time.perf_counter()
        wait_us = int.from_bytes(request[:8], "little")
        if wait_us:
            await asyncio.sleep(wait_us / 1e6)
        return int((time.perf_counter() - t0) * 1e6).to_bytes(8, "little") + request[8:]

    async def run() -> None:
        service, method = FLOOR_METHOD.strip("/").split("/")
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(call)}),))
        port_out.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def transport_floor(waits_ms: list[float], calls: int = 60, payload_bytes: int = 4096, warmup: int = 10,
                    start_timeout_s: float = 60.0) -> dict[str, Any]:
    """Median overhead (ms) of one gRPC call from an asyncio client in this process to a server
    in a fresh local process: answering at once (``no_wait_ms``), and after waiting each of
    ``waits_ms`` (``overhead_ms``: the round trip minus the server's own measured wait). The
    latter is what a deployment call that waits that long on a model or on Milvus costs at the
    least on this host."""
    import multiprocessing as mp

    import grpc

    ctx = mp.get_context("spawn")  # not fork: this process runs Ray's and gRPC's threads
    port_q = ctx.Queue()
    proc = ctx.Process(target=_floor_server, args=(port_q,), daemon=True, name="priorsight-transport-floor")
    proc.start()
    try:
        port = port_q.get(timeout=start_timeout_s)
        body = bytes(max(0, payload_bytes - 8))

        async def measure(wait_ms: float) -> tuple[float, float]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = channel.unary_unary(FLOOR_METHOD)
                request = int(wait_ms * 1000).to_bytes(8, "little") + body
                overheads, waited = [], []
                for i in range(warmup + calls):
                    t0 = time.perf_counter()
                    answer = await stub(request, timeout=30)
                    rt = time.perf_counter() - t0
                    if i >= warmup:
                        waited.append(int.from_bytes(answer[:8], "little") / 1000)
                        overheads.append(rt * 1000 - waited[-1])
                return float(statistics.median(overheads)), float(statistics.median(waited))

        no_wait = asyncio.run(measure(0.0))[0]
        waits = []
        for w in waits_ms:
            overhead, server_wait = asyncio.run(measure(w))
            waits.append({"wait_ms": w, "overhead_ms": overhead, "server_wait_ms": server_wait})
    finally:
        proc.terminate()
        proc.join(10)
    return {"calls": calls, "payload_bytes": payload_bytes, "no_wait_ms": no_wait, "waits": waits}


def serve_markdown(res: dict[str, Any]) -> str:
    """The ``serve`` section of docs/benchmarks.md from :func:`bench_serve`'s result (with
    ``floor`` from :func:`transport_floor` when measured)."""
    from priorsight.bench import markdown_table

    rows = [{"path": "HTTP /v1/search (Ray Serve)", **res["http"]},
            {"path": "in-process preprocess + embed + search", **res["in_process"]}]
    md = (markdown_table(rows, ["path", "p50_ms", "p99_ms", "mean_ms"])
          + f"\nOverhead ratio HTTP/in-process: p50 {res['overhead_ratio_p50']:.2f}, "
            f"p99 {res['overhead_ratio_p99']:.2f} (goal <= {res['goal_ratio']:g}). Single client, "
            f"{res['queries']} queries after {res['warmup']} warm-up, k={res['k']}, model {res['model']}, "
            f"{res['drawings_indexed']} drawings indexed, sources {res['sources']}, embedder threads "
            f"{res['embed_threads']}.\n")
    b = res["breakdown"]
    parts = [
        {"part": "HTTP edge: HAProxy, HTTP, multipart, JSON answer (round trip - endpoint)", "ms": b["edge_ms"]},
        {"part": "the two deployment calls + the endpoint's own work", "ms": b["calls_and_endpoint_ms"]},
        {"part": "embedding in the QueryEmbedder replica", "ms": b["embed_replica_ms"]},
        {"part": "Milvus, called by the Searcher replica", "ms": b["milvus_replica_ms"]},
        {"part": "in-process: embedding", "ms": b["embed_in_process_ms"]},
        {"part": "in-process: Milvus", "ms": b["milvus_in_process_ms"]},
        {"part": "in-process: the rest (fusion, the pool's thread)", "ms": b["rest_in_process_ms"]},
    ]
    md += "\nWhere the time goes (medians of per-query values, ms):\n\n" + markdown_table(parts, ["part", "ms"])
    floor = res.get("floor")
    if floor:
        hops = ", ".join(f"{w['overhead_ms']:.2f} ms after a {w['wait_ms']:.1f}-ms wait" for w in floor["waits"])
        md += (f"\nTransport floor on this host (a raw gRPC call between two local processes, asyncio both "
               f"sides, {floor['payload_bytes']} B): {floor['no_wait_ms']:.2f} ms answering at once, {hops}. "
               f"With the edge as measured and each deployment call costing only that, the p50 ratio would be "
               f"{res['floor_ratio_p50']:.2f}.\n")
    return md
