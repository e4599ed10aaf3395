"""``priorsight bench index``: the drawing index at scale on the embedded Milvus server.

No trained model exists yet, so the vectors are synthetic but shaped like image embeddings:
a clustered mixture. Locarno classes get Zipf-distributed frequencies; each class has a centre
(plus a shared "dataset mean" direction, as real embeddings are anisotropic); each patent a
centre around its class centre; each drawing (1-10 per patent, a few views) is its patent
centre plus a per-view direction plus noise, L2-normalised. Queries are new drawings of
existing patents (fresh noise), so their true neighbours are the patent's other drawings, then
same-class patents.

Measured: insert (upsert) rate, HNSW build time, load time, RSS of the milvus process,
single-client top-k latency p50/p99 with and without a Locarno filter, and recall@k against
exact (numpy, chunked) search, for a sweep of ``ef``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from priorsight import bench
from priorsight.config import MilvusConfig
from priorsight.records import VIEWS

log = logging.getLogger(__name__)


@dataclass
class SyntheticCorpus:
    vectors: np.ndarray  # (n, dim) float32, unit norm
    patent: np.ndarray  # (n,) int
    class_idx: np.ndarray  # (n,) int into classes
    classes: list[str]  # Locarno "CC-SS"
    view_idx: np.ndarray  # (n,) int into VIEWS
    grant_date: np.ndarray  # (n,) int YYYYMMDD
    patent_centres: np.ndarray  # (n_patents, dim) float32
    view_dirs: np.ndarray  # (len(VIEWS), dim) float32


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def synthetic_corpus(n: int, dim: int = 256, seed: int = 0, n_classes: int = 400, zipf_s: float = 1.07,
                     patent_spread: float = 0.8, drawing_noise: float = 0.45, view_weight: float = 0.25,
                     chunk: int = 100_000) -> SyntheticCorpus:
    rng = np.random.default_rng(seed)
    codes: set[str] = set()
    while len(codes) < n_classes:
        codes.add(f"{rng.integers(1, 33):02d}-{rng.integers(1, 20):02d}")
    classes = sorted(codes)
    weights = 1.0 / np.arange(1, n_classes + 1) ** zipf_s
    weights /= weights.sum()
    order = rng.permutation(n_classes)  # which code gets which frequency rank
    mean_dir = _unit(rng.standard_normal(dim))
    class_centres = _unit(_unit(rng.standard_normal((n_classes, dim))) + 0.5 * mean_dir).astype(np.float32)
    view_dirs = _unit(rng.standard_normal((len(VIEWS), dim))).astype(np.float32)

    per_patent = np.clip(1 + rng.poisson(3.0, size=n // 2 + 2), 1, 10)
    n_patents = int(np.searchsorted(np.cumsum(per_patent), n) + 1)
    per_patent = per_patent[:n_patents]
    patent = np.repeat(np.arange(n_patents), per_patent)[:n]
    patent_class = order[rng.choice(n_classes, size=n_patents, p=weights)]
    patent_centres = np.empty((n_patents, dim), dtype=np.float32)
    for i in range(0, n_patents, chunk):
        j = min(i + chunk, n_patents)
        g = rng.standard_normal((j - i, dim), dtype=np.float32) / np.sqrt(dim)
        patent_centres[i:j] = _unit(class_centres[patent_class[i:j]] + patent_spread * g)
    days = rng.integers(0, 35 * 365, size=n_patents)
    base = dt.date(1990, 1, 1).toordinal()
    dates = np.array([int(dt.date.fromordinal(base + int(d)).strftime("%Y%m%d")) for d in days], dtype=np.int64)
    # first drawing of a patent is the perspective view; the others are random views
    first = np.r_[True, patent[1:] != patent[:-1]]
    view_idx = np.where(first, 0, rng.integers(1, len(VIEWS), size=n))
    vectors = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        g = rng.standard_normal((j - i, dim), dtype=np.float32) / np.sqrt(dim)
        vectors[i:j] = _unit(patent_centres[patent[i:j]] + view_weight * view_dirs[view_idx[i:j]]
                             + drawing_noise * g)
    return SyntheticCorpus(vectors, patent, patent_class[patent], classes, view_idx, dates[patent],
                           patent_centres, view_dirs)


def make_queries(corpus: SyntheticCorpus, n_queries: int, seed: int = 1, drawing_noise: float = 0.45,
                 view_weight: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """New drawings of existing patents: (query vectors, the row each query was drawn beside)."""
    rng = np.random.default_rng(seed)
    dim = corpus.vectors.shape[1]
    rows = rng.choice(len(corpus.vectors), size=n_queries, replace=False)
    view_dirs = corpus.view_dirs
    g = rng.standard_normal((n_queries, dim), dtype=np.float32) / np.sqrt(dim)
    q = _unit(corpus.patent_centres[corpus.patent[rows]] + view_weight * view_dirs[rng.integers(0, len(VIEWS), n_queries)]
              + drawing_noise * g).astype(np.float32)
    return q, rows


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 32_768,
               candidates: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k rows by inner product (= cosine on unit vectors), chunked over rows.
    ``candidates``: restrict to these row indices."""
    idx_all = np.arange(len(vectors)) if candidates is None else candidates
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for i in range(0, len(idx_all), chunk):
        idx = idx_all[i:i + chunk]
        s = queries @ vectors[idx].T
        cat_s = np.concatenate([best_s, s], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(idx, s.shape)], axis=1)
        kk = min(k, cat_s.shape[1])
        part = np.argpartition(-cat_s, kk - 1, axis=1)[:, :kk]
        best_s = np.take_along_axis(cat_s, part, axis=1)
        best_i = np.take_along_axis(cat_i, part, axis=1)
    return best_i


def _row_of(drawing_id: str) -> int:
    return int(drawing_id[4:])


def _rows(corpus: SyntheticCorpus, i: int, j: int, model_version: str) -> list[dict[str, Any]]:
    vecs = corpus.vectors[i:j].tolist()
    return [{
        "drawing_id": f"SYN-{r:08d}", "patent_id": f"SYNP{int(corpus.patent[r]):07d}",
        "locarno_class": corpus.classes[corpus.class_idx[r]], "us_class": "", "view": VIEWS[corpus.view_idx[r]],
        "grant_date": int(corpus.grant_date[r]), "source": "synthetic", "model_version": model_version,
        "embedding": vecs[r - i],
    } for r in range(i, j)]


class _RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.proc, self.every_s = psutil.Process(pid), every_s
        self.peak = 0
        self._stop_event = threading.Event()

    def current(self) -> int:
        try:
            return self.proc.memory_info().rss
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            self.peak = max(self.peak, self.current())

    def stop(self) -> None:
        self._stop_event.set()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process (the Milvus binary)."""
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def wait_until_idle(pid: int, cores: float = 0.15, window_s: float = 5.0, timeout_s: float = 900.0,
                    clock=time.monotonic, sleep=time.sleep, cpu=cpu_seconds) -> tuple[float, float]:
    """Wait until process ``pid`` uses less than ``cores`` CPUs over a ``window_s`` window (a
    freshly built index keeps Milvus busy with compaction and index rebuilds for minutes; search
    latency measured meanwhile is latency under that load). Returns (seconds waited, the last
    window's cores); stops waiting after ``timeout_s``."""
    start = clock()
    used = float("inf")
    while clock() - start < timeout_s:
        before, t0 = cpu(pid), clock()
        sleep(window_s)
        used = (cpu(pid) - before) / max(clock() - t0, 1e-9)
        if used < cores:
            break
    return clock() - start, used


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def _build(client: Any, name: str, corpus: SyntheticCorpus, config: MilvusConfig, batch: int,
           model_version: str) -> dict[str, float]:
    """Upsert the corpus into a new collection, flush, build its indexes, load it: timings."""
    from priorsight import milvus as pm

    rows, dim = corpus.vectors.shape
    pm.create_drawing_collection(client, name, dim, config, model_version=model_version, build_index=False)
    t = time.perf_counter()
    for i in range(0, rows, batch):
        client.upsert(name, _rows(corpus, i, min(i + batch, rows), model_version), timeout=120)
        if (i // batch) % 20 == 0:
            log.info("upserted %d/%d", min(i + batch, rows), rows)
    upsert_s = time.perf_counter() - t
    client.flush(name, timeout=600)
    insert_s = time.perf_counter() - t
    log.info("upsert %.1f s + flush: %.1f s", upsert_s, insert_s)

    t = time.perf_counter()
    pm.create_indexes(client, name, config)
    while True:
        info = client.describe_index(name, pm.VECTOR_FIELD)
        if info.get("state") == "Finished" and int(info.get("indexed_rows", 0)) >= rows:
            break
        if info.get("state") == "Failed":
            raise RuntimeError(f"index build failed: {info}")
        time.sleep(1.0)
    index_s = time.perf_counter() - t
    log.info("indexes built in %.1f s", index_s)
    t = time.perf_counter()
    client.load_collection(name, timeout=600)
    return {"upsert_s": upsert_s, "insert_and_flush_s": insert_s, "insert_rows_per_s": rows / insert_s,
            "index_build_s": index_s, "load_s": time.perf_counter() - t}


def reusable(client: Any, alias: str, rows: int, model_version: str, config: MilvusConfig) -> str | None:
    """The collection behind ``alias`` if a kept run (``--keep``) built it from the same
    vectors (rows, dimension and seed) with the same vector index and parameters; else None."""
    import json

    from priorsight import milvus as pm

    name = pm.live_collection(client, alias)
    if name is None:
        return None
    try:
        desc = json.loads(client.describe_collection(name).get("description") or "{}")
    except ValueError:
        return None
    same = (desc.get("model_version") == model_version and pm.collection_rows(client, name) == rows
            and pm.vector_index_matches(client, name, config, rows))
    return name if same else None


def run_index_bench(config: MilvusConfig, rows: int = 1_000_000, dim: int = 256, n_queries: int = 1000, k: int = 10,
                    breadths: tuple[int, ...] = (16, 32, 64, 128, 256), batch: int = 10_000, seed: int = 0,
                    keep: bool = False, reuse: bool = False, target_recall: float = 0.97,
                    command: str = "priorsight bench index", record: bool = True,
                    settle_timeout_s: float = 900.0) -> dict[str, Any]:
    """Run the benchmark against the embedded server (started here if it is not running, and
    stopped again at the end in that case). ``breadths``: the search breadths swept (HNSW's ef,
    or SCANN's nprobe with the configured ``search_reorder_k``). ``keep`` keeps the collection
    (behind the alias ``bench_drawings``); ``reuse`` searches such a kept collection instead of
    building another when it holds the same vectors and index parameters (build figures are then
    those of the run that built it, not measured again). Returns the results (also recorded)."""
    from priorsight import milvus as pm

    if config.target != "embedded":
        raise ValueError("bench index runs on the embedded Milvus server only (milvus.target=embedded)")
    load_start = os.getloadavg()
    server = pm.EmbeddedMilvus.from_config(config)
    started_here = not server.status().running
    st = server.start()
    client = pm.connect(config)
    milvus_pid = st.server_pid
    rss = _RssSampler(milvus_pid)
    rss.start()
    alias = "bench_drawings"
    model_version = f"synthetic-{dim}d-seed{seed}"
    reused = reusable(client, alias, rows, model_version, config) if reuse else None
    name = reused or pm.next_version_name(client, alias)
    try:
        t = time.perf_counter()
        corpus = synthetic_corpus(rows, dim, seed)
        gen_s = time.perf_counter() - t
        log.info("generated %d synthetic vectors in %.1f s (%d patents, %d classes)", rows, gen_s,
                 len(corpus.patent_centres), len(corpus.classes))
        if reused:
            log.info("reusing the kept collection %s (same vectors and index parameters)", reused)
            if config.scalar_indexes:
                log.info("scalar indexes added: %s", pm.add_scalar_indexes(client, name, timeout=600) or "none")
            client.load_collection(name, timeout=600)
            build: dict[str, Any] = {"reused_collection": reused}
        else:
            build = _build(client, name, corpus, config, batch, model_version)
            pm.swap_alias(client, alias, name)
        scalar = sorted(set(client.list_indexes(name)) & set(pm.SCALAR_INDEXES))

        queries, qrows = make_queries(corpus, n_queries, seed + 1)
        t = time.perf_counter()
        truth = [set(t.tolist()) for t in exact_topk(corpus.vectors, queries, k)]
        qclass = corpus.class_idx[qrows]
        truth_f: list[set[int]] = [set() for _ in range(n_queries)]
        for c in np.unique(qclass):  # exact search within the query's class (it may hold < k rows)
            sel = np.nonzero(qclass == c)[0]
            top = exact_topk(corpus.vectors, queries[sel], k, candidates=np.nonzero(corpus.class_idx == c)[0])
            for qi, nearest in zip(sel, top, strict=True):
                truth_f[qi] = set(nearest.tolist())
        exact_s = time.perf_counter() - t
        filters = [pm.build_filter(locarno_classes=[corpus.classes[c]]) for c in qclass]

        quiesce_s, idle_cores = wait_until_idle(milvus_pid, timeout_s=settle_timeout_s)
        log.info("milvus settled after %.0f s (%.2f cores in the last window)", quiesce_s, idle_cores)
        index_type, index_params = pm.vector_index(config, rows)  # what was built (or reused: the same)
        knob = "nprobe" if index_type == "SCANN" else "ef"
        for q in queries[:50]:  # warm-up
            pm.search(client, alias, q, k=k, params=pm.search_params(config, k, **{knob: breadths[0]}))
        sweep = []
        for breadth in breadths:
            params = pm.search_params(config, k, **{knob: breadth})
            for filtered in (False, True):
                lat, rec = [], []
                cpu0, wall0 = cpu_seconds(milvus_pid), time.perf_counter()
                for qi in range(n_queries):
                    t0 = time.perf_counter()
                    hits = pm.search(client, alias, queries[qi], k=k, params=params,
                                     filter=filters[qi] if filtered else None, output_fields=[])[0]
                    lat.append((time.perf_counter() - t0) * 1000)
                    got = {_row_of(h.drawing_id) for h in hits}
                    want = (truth_f if filtered else truth)[qi]
                    rec.append(len(got & want) / len(want))
                milvus_cores = (cpu_seconds(milvus_pid) - cpu0) / (time.perf_counter() - wall0)
                row = {knob: breadth, "filter": "locarno_class" if filtered else "none",
                       f"recall@{k}": float(np.mean(rec)), **_percentiles(lat), "milvus_cores": milvus_cores}
                log.info("%s", row)
                sweep.append(row)
        rss_now = rss.current()
        load_end = os.getloadavg()
    finally:
        rss.stop()
        if not keep and not reused and client.has_collection(name):
            if pm.live_collection(client, alias) == name:
                client.drop_alias(alias)
            client.drop_collection(name)
        client.close()
        if started_here:
            server.stop()

    def chosen(filt: str) -> dict[str, Any] | None:
        ok = [r for r in sweep if r["filter"] == filt and r[f"recall@{k}"] >= target_recall]
        return ok[0] if ok else None

    class_share = np.bincount(corpus.class_idx, minlength=len(corpus.classes)) / rows
    results = {
        "rows": rows, "dim": dim, "queries": n_queries, "k": k, "batch": batch, "seed": seed,
        "vectors": "synthetic clustered mixture (Zipf classes > patents > views + noise, L2-normalised)",
        "classes": len(corpus.classes), "patents": int(len(corpus.patent_centres)),
        "largest_class_share": float(class_share.max()), "median_class_share": float(np.median(class_share)),
        "index": {"type": index_type, **index_params, "search_knob": knob,
                  **({"reorder_k": config.search_reorder_k} if knob == "nprobe" else {}), "metric": pm.METRIC, "partition_key": config.partition_key,
                  "num_partitions": config.num_partitions if config.partition_key else None,
                  "scalar_indexes": {f: pm.SCALAR_INDEXES[f] for f in scalar}},
        "consistency_level": config.consistency_level,
        "generate_s": gen_s, **build,
        "exact_search_s": exact_s, "quiesce_s": quiesce_s, "milvus_cores_before_search": idle_cores,
        "milvus_rss_peak_mib": rss.peak / 2**20, "milvus_rss_after_search_mib": rss_now / 2**20,
        "load_avg_1_5_15_at_start": load_start, "load_avg_1_5_15_at_end": load_end,
        "sweep": sweep, "target_recall": target_recall,
        "chosen_unfiltered": chosen("none"), "chosen_filtered": chosen("locarno_class"),
    }
    if record:  # a --reuse run has its own section: the build's figures stay
        bench.record("index-reused" if reused else "index", results, _markdown(results), command)
    return results


def _fmt_load(load: Any) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def _markdown(r: dict[str, Any]) -> str:
    k = r["k"]
    reused = r.get("reused_collection")
    summary = [{
        "rows": r["rows"], "dim": r["dim"], "insert rows/s": r.get("insert_rows_per_s", "—"),
        "insert+flush s": r.get("insert_and_flush_s", "—"), "index build s": r.get("index_build_s", "—"),
        "load s": r.get("load_s", "—"),
        "milvus RSS peak MiB": r["milvus_rss_peak_mib"], "RSS after search MiB": r["milvus_rss_after_search_mib"],
    }]
    idx = r["index"]
    knob = idx.get("search_knob", "ef")
    params = " ".join(f"{p}={idx[p]}" for p in ("M", "efConstruction", "nlist", "reorder_k") if p in idx)
    scalar = idx.get("scalar_indexes") or {}
    lines = [
        f"Embedded Milvus 2.3.5 standalone; {r['vectors']}: {r['classes']} Locarno classes "
        f"(largest {r['largest_class_share']:.1%} of rows, median {r['median_class_share']:.2%}), "
        f"{r['patents']:,} patents. Index {idx['type']} {params} "
        f"{idx['metric']}, " + (f"locarno_class partition key ({idx['num_partitions']} partitions), " if idx['partition_key']
                          else "no partition key (filters are expressions), ") +
        ("scalar indexes " + ", ".join(f"{f} {t}" for f, t in scalar.items()) + ", " if scalar
         else "no scalar indexes, ") +
        f"consistency {r['consistency_level']}. Upsert batches of {r['batch']:,} rows, single client. "
        f"Host load average (1/5/15 min) {_fmt_load(r['load_avg_1_5_15_at_start'])} at start, "
        f"{_fmt_load(r['load_avg_1_5_15_at_end'])} at end: latencies and build time are inflated on a shared host.",
        "",
        bench.markdown_table(summary),
        *([f"Searched the kept collection `{reused}` (`--reuse`): build figures are those of the run that "
           "built it.", ""] if reused else []),
        f"Top-{k} search, one client, {r['queries']} queries (new drawings of indexed patents); "
        f"recall@{k} against exact numpy search (filtered: exact search within the query's Locarno class). "
        f"Measured once Milvus had settled (compaction and index rebuilds after the build): "
        f"{r.get('quiesce_s', 0):.0f} s of waiting until it used < 0.15 cores; `milvus_cores`: its CPU use "
        f"while the sweep row ran.",
        "",
        bench.markdown_table(r["sweep"], [knob, "filter", f"recall@{k}", "p50_ms", "p99_ms", "mean_ms",
                                          "milvus_cores"]),
    ]
    for label, c in (("unfiltered", r["chosen_unfiltered"]), ("Locarno-filtered", r["chosen_filtered"])):
        if c:
            lines.append(f"- {label}: smallest {knob} with recall@{k} >= {r['target_recall']}: {knob}={c[knob]} "
                         f"(recall {c[f'recall@{k}']:.3f}, p50 {c['p50_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms)")
        else:
            lines.append(f"- {label}: no {knob} in the sweep reached recall@{k} >= {r['target_recall']}")
    return "\n".join(lines) + "\n"
