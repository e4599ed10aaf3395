"""The describe job on Ray Data: ``priorsight describe MANIFEST --out OUT``.

The driver plans (which patents the cache lacks), Ray Data generates, the driver assembles and
writes (see :mod:`priorsight.describe.pipeline`). Generation is a class-based ``map_batches``:
each actor loads the model once and describes batches of patents, writing each batch to the
cache, so a killed job resumes where it stopped. Actors take fractional CPUs (default 0.5) so
Ray Data's own tasks never starve on a 2-core machine.

    from cluster.describe_job import describe_corpus
    summary = describe_corpus("corpus/manifest.parquet", "corpus/descriptions", k=20)

With ``backend.kind == "vllm"`` generation runs as a ``ray.data.llm`` processor on GPU nodes.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from cluster.ray_env import RayHandle, init_ray
from priorsight.describe.backends import build_backend, build_vllm_processor, model_id, vllm_sampling_params
from priorsight.describe.cache import CacheEntry, DescriptionCache
from priorsight.describe.config import BackendConfig, DescribeConfig
from priorsight.describe.pipeline import (
    RESULT_SCHEMA,
    BatchDescriber,
    PatentResult,
    PatentWork,
    Runner,
    describe_corpus_with,
    plan_corpus,
    run_local,
    sample_plan,
    select_descriptions,
)
from priorsight.describe.prompts import PromptSpec
from priorsight.describe.truth import TruthFilter
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)


class PatentDescriberActor:
    """Ray Data callable class: one backend per actor (the model is loaded once, here)."""

    def __init__(self, config_json: str, cache_dir: str | None, n_threads: int | None, storage_config=None):
        cfg = DescribeConfig.model_validate_json(config_json)
        if n_threads is not None:
            n_threads = max(1, min(n_threads, os.cpu_count() or n_threads))
        backend = build_backend(cfg.backend, n_threads=n_threads)
        cache = DescriptionCache(cache_dir, Storage(storage_config)) if cache_dir else None
        self._describer = BatchDescriber(backend, PromptSpec.load(cfg.prompt_version), cfg, cache)

    def __call__(self, batch: pa.Table) -> pa.Table:
        works = [PatentWork.from_row(r) for r in batch.to_pylist()]
        results = self._describer(works)
        return pa.Table.from_pylist([r.to_row() for r in results], schema=RESULT_SCHEMA)


def ray_runner(cfg: DescribeConfig, cache_dir: str | None, storage: Storage | None = None,
               progress: bool = True) -> Runner:
    """Generate on Ray Data (Ray must be initialised): ``map_batches`` over the work items with a
    pool of ``cfg.actors`` actors of ``cfg.actor_cpus`` CPUs each."""
    import ray
    from tqdm import tqdm

    def run(works: list[PatentWork]) -> list[PatentResult]:
        if not works:
            return []
        blocks = max(1, min(len(works), math.ceil(len(works) / cfg.batch_size)))
        ds = ray.data.from_items([w.to_row() for w in works], override_num_blocks=blocks)
        ds = ds.map_batches(
            PatentDescriberActor,
            fn_constructor_kwargs={
                "config_json": cfg.model_dump_json(),
                "cache_dir": cache_dir,
                "n_threads": cfg.threads_per_model,
                "storage_config": (storage or Storage()).config,
            },
            batch_size=cfg.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=cfg.actors),
            num_cpus=cfg.actor_cpus,
        )
        results: list[PatentResult] = []
        with tqdm(total=len(works), unit="patent", desc="describe", disable=not progress) as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = batch.to_pylist()
                results.extend(PatentResult.from_row(r) for r in rows)
                bar.update(len(rows))
        return results

    return run


def vllm_rows(works: list[PatentWork], spec: PromptSpec, cfg: DescribeConfig) -> list[dict[str, Any]]:
    """One row per completion for a ``ray.data.llm`` processor (one round, oversampled)."""
    rows = []
    top_p = cfg.backend.vllm.top_p
    for w in works:
        for s in sample_plan(w, spec, cfg, w.n_wanted):
            for j in range(s.n):
                rows.append({"key": w.key, "prompt": s.prompt.text,
                             "sampling_params": vllm_sampling_params(cfg.max_tokens, cfg.temperature, top_p,
                                                                     s.seed + j, spec.stop)})
    return rows


def vllm_runner(cfg: DescribeConfig, cache_dir: str | None, storage: Storage | None = None) -> Runner:  # pragma: no cover - GPUs
    """Generate with vLLM through ``ray.data.llm``; filtering, dedupe and caching on the driver."""
    import ray

    spec = PromptSpec.load(cfg.prompt_version)

    def run(works: list[PatentWork]) -> list[PatentResult]:
        processor = build_vllm_processor(cfg.backend.vllm, cfg.max_tokens)
        texts: dict[str, list[str]] = defaultdict(list)
        tokens: dict[str, int] = defaultdict(int)
        t0 = time.perf_counter()
        for row in processor(ray.data.from_items(vllm_rows(works, spec, cfg))).iter_rows():
            texts[row["key"]].append(row["generated_text"])
            tokens[row["key"]] += int(row["num_generated_tokens"])
        seconds = (time.perf_counter() - t0) / max(1, len(works))
        results = []
        for w in works:
            kept = select_descriptions(texts[w.key], TruthFilter.for_facts(w.facts, mode=cfg.truth), w.n_wanted,
                                       cfg.dedupe_threshold)
            results.append(PatentResult(w.key, w.facts.patent_id, kept, len(kept), len(texts[w.key]),
                                        tokens[w.key], seconds))
        if cache_dir:
            DescriptionCache(cache_dir, storage).write(
                CacheEntry(r.key, r.patent_id, model_id(cfg.backend), spec.version, w.n_wanted,
                           tuple(r.descriptions), r.n_raw, r.completion_tokens, r.seconds)
                for r, w in zip(results, works, strict=True))
        return results

    return run


def describe_corpus(manifest_uri: str, out_uri: str, k: int | None = None,
                    backend_config: BackendConfig | dict | None = None, limit: int | None = None,
                    address: str | None = None, llm_patents: int | None = None,
                    config: DescribeConfig | None = None, storage: Storage | None = None,
                    progress: bool = True, runner: str = "ray") -> dict:
    """Describe every drawing of a manifest; returns the summary (also ``OUT/summary.json``).

    ``k`` descriptions per drawing; ``limit`` drawings at most; the LLM writes descriptions for
    the first ``llm_patents`` patents only (the rest get metadata-only and templated text, in
    milliseconds); ``address`` joins a Ray cluster (default: a local Ray, started only when
    something needs generating). ``runner="local"`` runs the plain loop in this process instead.

    Time on a 2-core machine (Gemma 3 270M, one llama.cpp thread, measured on the USPTO sample
    while other jobs shared the machine): metadata-only ~5 ms per drawing; with the LLM at k=10
    ~11-18 s per patent, i.e. ~2 s per drawing (9 drawings per patent) -- 197 drawings in ~6-7
    min. A demo that must stay short describes a few patents with the LLM (``llm_patents``) and
    the rest metadata-only; cached patents cost nothing on re-runs.
    """
    if runner not in ("ray", "local"):
        raise ValueError(f"runner must be 'ray' or 'local', got {runner!r}")
    data = (config or DescribeConfig()).model_dump()
    if k is not None:
        data["k"] = k
    if backend_config is not None:
        data["backend"] = backend_config.model_dump() if isinstance(backend_config, BackendConfig) else backend_config
    if llm_patents is not None:
        data["llm_patents"] = llm_patents
    cfg = DescribeConfig.model_validate(data)
    storage = storage or Storage()
    cache_dir = cfg.cache_dir or join(out_uri, "cache")
    timings: dict[str, float] = {}

    def generate(works: list[PatentWork]) -> list[PatentResult]:
        if runner == "local":
            from tqdm import tqdm

            with tqdm(total=len(works), unit="patent", desc="describe", disable=not progress) as bar, \
                    build_backend(cfg.backend, n_threads=cfg.threads_per_model) as backend:
                return run_local(backend, PromptSpec.load(cfg.prompt_version), cfg,
                                 DescriptionCache(cache_dir, storage), bar.update)(works)
        t0 = time.perf_counter()
        with init_ray(address):
            timings["ray_init_seconds"] = time.perf_counter() - t0
            if cfg.backend.kind == "vllm":
                return vllm_runner(cfg, cache_dir, storage)(works)
            return ray_runner(cfg, cache_dir, storage, progress)(works)

    summary = describe_corpus_with(generate, manifest_uri, out_uri, cfg, storage, limit)
    summary.update({k_: round(v, 3) for k_, v in timings.items()})
    summary["runner"] = runner
    return summary


# -- benchmark ----------------------------------------------------------------------------


def bench_describe(manifest_uri: str, patents: int = 6, config: DescribeConfig | None = None,
                   address: str | None = None, storage: Storage | None = None, repeats: int = 1,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Throughput of the Ray Data job against the same backend in a plain loop (the limit), on
    the same ``patents`` work items, each run with an empty cache. Model loading counts in both;
    starting Ray is reported apart. With ``repeats`` > 1 the runs alternate (loop, ray, ray,
    loop, ...) and are summed, so drifting load on a shared machine hits both alike."""
    cfg = config or DescribeConfig()
    storage = storage or Storage()
    spec = PromptSpec.load(cfg.prompt_version)
    works = plan_corpus(manifest_uri, cfg, spec, {}, storage).works[:patents]
    if not works:
        raise ValueError(f"no patents to describe in {manifest_uri} (backend {cfg.backend.kind!r})")
    out: dict[str, Any] = {"patents": len(works), "n_wanted": works[0].n_wanted, "model": model_id(cfg.backend),
                           "actors": cfg.actors, "actor_cpus": cfg.actor_cpus, "batch_size": cfg.batch_size,
                           "repeats": repeats}
    totals = {name: {"seconds": 0.0, "descriptions": 0, "completions": 0, "tokens": 0} for name in ("loop", "ray")}
    threads = cfg.threads_per_model
    out["threads_per_model"] = threads

    pairs: list[dict[str, float]] = []

    def measure(name: str, run: Callable[[], list[PatentResult]]) -> None:
        t0 = clock()
        results = run()
        dt = clock() - t0
        failed = [r for r in results if r.error]
        if failed:
            raise RuntimeError(f"{name}: {len(failed)} patents failed, e.g. {failed[0].error}")
        t = totals[name]
        t["seconds"] += dt
        t["descriptions"] += sum(r.n_descriptions for r in results)
        t["completions"] += sum(r.n_raw for r in results)
        t["tokens"] += sum(r.completion_tokens for r in results)
        pairs[-1][name] = round(dt, 3)
        log.info("bench %s: %.1f s", name, dt)

    t0 = clock()
    handle: RayHandle = init_ray(address)
    out["ray_init_seconds"] = round(clock() - t0, 3)
    try:
        with tempfile.TemporaryDirectory(prefix="describe-bench-") as tmp:
            for i in range(repeats):
                order = ("loop", "ray") if i % 2 == 0 else ("ray", "loop")
                pairs.append({})
                for name in order:
                    cache = join(tmp, f"{name}-{i}")
                    if name == "loop":
                        def loop(cache=cache) -> list[PatentResult]:
                            with build_backend(cfg.backend, n_threads=threads) as backend:
                                return run_local(backend, spec, cfg, DescriptionCache(cache, storage))(works)
                        measure("loop", loop)
                    else:
                        measure("ray", lambda cache=cache: ray_runner(cfg, cache, storage, progress=False)(works))
    finally:
        handle.shutdown()
    for name, t in totals.items():
        out[name] = {**t, "seconds": round(t["seconds"], 3), "descriptions_per_s": t["descriptions"] / t["seconds"],
                     "completions_per_s": t["completions"] / t["seconds"], "tokens_per_s": t["tokens"] / t["seconds"]}
    out["ratio_descriptions_per_s"] = out["ray"]["descriptions_per_s"] / out["loop"]["descriptions_per_s"]
    out["ratio_tokens_per_s"] = out["ray"]["tokens_per_s"] / out["loop"]["tokens_per_s"]
    out["pairs"] = [{**p, "ratio": p["loop"] / p["ray"]} for p in pairs]  # same work: time ratio
    out["seconds_per_patent_loop"] = out["loop"]["seconds"] / (len(works) * repeats)
    return out


def bench_markdown(r: dict[str, Any]) -> str:
    from priorsight.bench import markdown_table

    rows = [{"run": name, "seconds": r[name]["seconds"], "descriptions": r[name]["descriptions"],
             "completions": r[name]["completions"], "tokens": r[name]["tokens"],
             "descriptions/s": r[name]["descriptions_per_s"], "tokens/s": r[name]["tokens_per_s"]}
            for name in ("loop", "ray")]
    return (
        f"LLM descriptions of {r['patents']} patents ({r['n_wanted']} wanted each) with {r['model']}: "
        f"Ray Data job ({r['actors']} actor x {r['actor_cpus']} CPU, batches of {r['batch_size']} patents) "
        f"versus the same backend in a plain loop ({r['threads_per_model']} llama.cpp threads per model), "
        f"{r['repeats']} alternating run(s) each, summed. Model loading and actor start count in both; "
        f"starting Ray ({r['ray_init_seconds']:.1f} s) does not.\n\n"
        + markdown_table(rows)
        + f"\nRatio Ray/loop: **{r['ratio_descriptions_per_s']:.2f}** descriptions/s, "
          f"**{r['ratio_tokens_per_s']:.2f}** tokens/s (goal >= 0.9); per back-to-back pair: "
          + ", ".join(f"{p['ratio']:.2f}" for p in r["pairs"])
          + f". Seconds per patent in the loop: {r['seconds_per_patent_loop']:.1f}. Both runs sample the "
          "same prompts with the same seeds. On a shared 2-core machine other processes' load moves "
          "both numbers; the pairs show how much.\n"
    )
