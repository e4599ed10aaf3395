"""The describe stage without Ray: plan, generate (per patent), assemble (per drawing), write.

Cost: what all views of a patent share is written by the LLM once per patent (``k`` object-level
descriptions, cached); each drawing then gets its view phrase on those, plus templated view
variants and the metadata-only entry 0. A patent with 7 views costs one generation, not 7.

Output, ``OUT/descriptions.parquet`` (:data:`DESCRIPTIONS_SCHEMA`), one row per drawing of the
manifest, keyed by ``drawing_id``: ``descriptions`` (entry 0 always the metadata-only one),
``model``, ``prompt_version``, ``cache_key``, ``n_llm``. Beside it ``failures.parquet``
(ItemError rows: the LLM failed for a patent, its drawings kept metadata-only text) and
``summary.json``. The cache defaults to ``OUT/cache``.

Generation is a *runner*: a callable taking the list of :class:`PatentWork` and returning
:class:`PatentResult` rows; :func:`run_local` is the plain loop, :mod:`cluster.describe_job` the
Ray Data job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from priorsight.describe.backends import Backend, BackendError, model_id
from priorsight.describe.cache import CacheEntry, DescriptionCache, cache_key
from priorsight.describe.config import DescribeConfig
from priorsight.describe.prompts import DrawingFacts, PatentFacts, Prompt, PromptSpec, drawing_facts, patent_facts
from priorsight.describe.truth import TruthFilter, TruthVocabulary, dedupe, default_vocabulary
from priorsight.manifest import FAILURE_SCHEMA, iter_drawings
from priorsight.records import Drawing, ItemError, group_patents
from priorsight.storage import Storage, join

log = logging.getLogger(__name__)

STAGE = "describe"
DESCRIPTIONS_FILE = "descriptions.parquet"
FAILURES_FILE = "failures.parquet"
SUMMARY_FILE = "summary.json"
METADATA_ONLY = "metadata-only"

DESCRIPTIONS_SCHEMA = pa.schema(
    [
        pa.field("drawing_id", pa.string(), nullable=False),
        pa.field("descriptions", pa.list_(pa.string()), nullable=False),
        pa.field("model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("cache_key", pa.string()),
        pa.field("n_llm", pa.int32()),
    ]
)

RESULT_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("patent_id", pa.string()),
        pa.field("n_descriptions", pa.int32()),
        pa.field("n_raw", pa.int32()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("seconds", pa.float64()),
        pa.field("error", pa.string()),
    ]
)


# -- one patent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PatentWork:
    """One LLM work item: a patent's shared facts and how many descriptions it needs."""

    key: str
    facts: PatentFacts
    n_wanted: int

    def to_row(self) -> dict:
        return {"key": self.key, "patent_id": self.facts.patent_id, "facts": self.facts.to_json(),
                "n_wanted": self.n_wanted}

    @classmethod
    def from_row(cls, row: dict) -> PatentWork:
        return cls(row["key"], PatentFacts.from_json(row["facts"]), int(row["n_wanted"]))


@dataclass
class PatentResult:
    key: str
    patent_id: str
    descriptions: list[str] = field(default_factory=list)
    n_descriptions: int = 0
    n_raw: int = 0  # completions generated
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_row(self) -> dict:
        """The row a worker returns (descriptions themselves travel through the cache)."""
        d = asdict(self)
        d.pop("descriptions")
        return d

    @classmethod
    def from_row(cls, row: dict) -> PatentResult:
        return cls(**{k: row[k] for k in RESULT_SCHEMA.names})


def seed_for(key: str, seed: int) -> int:
    """A per-patent seed: stable across runs, batches and workers."""
    return (int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) % 1_000_000_007)


@dataclass(frozen=True)
class Sample:
    """``n`` completions of one prompt, the j-th with seed ``seed + j``."""

    prompt: Prompt
    seed: int
    n: int


def sample_plan(work: PatentWork, spec: PromptSpec, cfg: DescribeConfig, need: int, rnd: int = 0) -> list[Sample]:
    """What to ask the LLM for ``need`` more descriptions in round ``rnd``: ``need x oversample``
    completions spread over the prompt's focus list (fresh focus order and seeds each round)."""
    if need <= 0:
        return []
    focus = spec.focus or ["overall shape"]
    total = math.ceil(need * cfg.oversample)
    n_prompts = min(len(focus), total)
    per_prompt = math.ceil(total / n_prompts)
    start = (rnd * n_prompts) % len(focus)
    base = seed_for(work.key, cfg.seed) + 100_003 * rnd
    return [Sample(spec.prompt(work.facts, focus[(start + i) % len(focus)]), base + 1009 * i, per_prompt)
            for i in range(n_prompts)]


def select_descriptions(texts: Sequence[str], filt: TruthFilter, n_wanted: int, threshold: float,
                        kept: Sequence[str] = ()) -> list[str]:
    """``kept`` plus the supported, distinct ones of ``texts``, at most ``n_wanted``."""
    candidates = []
    for t in texts:
        cleaned = filt.clean(t)
        if cleaned.text:
            candidates.append(cleaned.text)
        else:
            log.debug("dropped %r (%s)", t, cleaned.reason)
    return dedupe([*kept, *candidates], threshold)[:n_wanted]


def describe_patent(backend: Backend, spec: PromptSpec, work: PatentWork, cfg: DescribeConfig,
                    vocabulary: TruthVocabulary | None = None) -> PatentResult:
    """Up to ``work.n_wanted`` truthful, distinct object-level descriptions of one patent.

    Each round asks for the missing ones (:func:`sample_plan`); sentences the metadata does not
    support are dropped, near-duplicates removed, and the next round (new seeds) regenerates what
    was lost. Backend errors propagate.
    """
    filt = TruthFilter.for_facts(work.facts, vocabulary or default_vocabulary(), mode=cfg.truth)
    result = PatentResult(work.key, work.facts.patent_id)
    t0 = time.perf_counter()
    kept: list[str] = []
    for rnd in range(cfg.max_rounds):
        samples = sample_plan(work, spec, cfg, work.n_wanted - len(kept), rnd)
        if not samples:
            break
        outs = backend.generate([s.prompt for s in samples], n=samples[0].n, max_tokens=cfg.max_tokens,
                                temperature=cfg.temperature, seed=[s.seed for s in samples], stop=spec.stop)
        texts = []
        for completions in outs:
            for c in completions:
                result.n_raw += 1
                result.completion_tokens += c.tokens
                texts.append(c.text)
        kept = select_descriptions(texts, filt, work.n_wanted, cfg.dedupe_threshold, kept)
    result.descriptions = kept
    result.n_descriptions = len(kept)
    result.seconds = time.perf_counter() - t0
    return result


class BatchDescriber:
    """Describe batches of patents with one backend and write each batch to the cache.

    The Ray Data actor and the plain loop both use it: the model is loaded once (by whoever
    built ``backend``); a failing patent becomes a result with ``error`` set, never an exception.
    """

    def __init__(self, backend: Backend, spec: PromptSpec, cfg: DescribeConfig, cache: DescriptionCache | None):
        self.backend = backend
        self.spec = spec
        self.cfg = cfg
        self.cache = cache
        self.vocabulary = default_vocabulary()

    def __call__(self, works: Sequence[PatentWork]) -> list[PatentResult]:
        results: list[PatentResult] = []
        for w in works:
            try:
                results.append(describe_patent(self.backend, self.spec, w, self.cfg, self.vocabulary))
            except (BackendError, ValueError, KeyError) as exc:
                log.warning("patent %s: LLM failed: %s", w.facts.patent_id, exc)
                results.append(PatentResult(w.key, w.facts.patent_id, error=f"{type(exc).__name__}: {exc}"))
        if self.cache is not None:
            self.cache.write(
                CacheEntry(r.key, r.patent_id, self.backend.model_id, self.spec.version,
                           next(w.n_wanted for w in works if w.key == r.key), tuple(r.descriptions),
                           r.n_raw, r.completion_tokens, r.seconds)
                for r in results if r.error is None)
        return results


Runner = Callable[[list[PatentWork]], list[PatentResult]]


def run_local(backend: Backend, spec: PromptSpec, cfg: DescribeConfig, cache: DescriptionCache | None,
              progress: Callable[[int], None] | None = None) -> Runner:
    """The plain loop: one backend in this process, batches of ``cfg.batch_size`` patents."""
    describer = BatchDescriber(backend, spec, cfg, cache)

    def run(works: list[PatentWork]) -> list[PatentResult]:
        out: list[PatentResult] = []
        for i in range(0, len(works), cfg.batch_size):
            batch = describer(works[i:i + cfg.batch_size])
            out.extend(batch)
            if progress is not None:
                progress(len(batch))
        return out

    return run


# -- one drawing --------------------------------------------------------------------------


def assemble_descriptions(df: DrawingFacts, llm: Sequence[str], spec: PromptSpec, cfg: DescribeConfig) -> tuple[list[str], int]:
    """A drawing's descriptions and how many came from the LLM: entry 0 metadata-only, then
    the LLM's object-level descriptions in this view (view synonyms in turn), then templated
    variants (at least ``n_templates_kept``, more when the LLM gave fewer), up to ``k``. LLM
    text that nearly repeats another description is dropped."""
    views = spec.view_phrases(df.view, df.view_text)
    out = [spec.metadata_description(df)]
    templated = spec.templated(df)
    llm_budget = max(0, cfg.k - 1 - min(cfg.n_templates_kept, len(templated)))
    n_llm = 0
    for i, text in enumerate(dedupe(llm, cfg.dedupe_threshold)):
        if n_llm >= llm_budget:
            break
        cand = spec.with_view(df, text, views[(i + 1) % len(views)])
        if dedupe([cand], cfg.dedupe_threshold, keep=out):
            out.append(cand)
            n_llm += 1
    for cand in templated:  # hand-written to differ: only exact repeats are dropped
        if len(out) >= cfg.k:
            break
        if cand not in out:
            out.append(cand)
    return out[: cfg.k], n_llm


# -- the corpus ---------------------------------------------------------------------------


def iter_patents(manifest: str, storage: Storage, limit: int | None = None) -> Iterator[list[Drawing]]:
    """The manifest's drawings grouped by patent (manifests are written patent by patent),
    stopping after ``limit`` drawings."""
    def drawings() -> Iterator[Drawing]:
        for i, d in enumerate(iter_drawings(manifest, storage)):
            if limit is not None and i >= limit:
                return
            yield d

    for patent in group_patents(drawings()):
        yield patent.drawings


@dataclass
class Plan:
    """What a run will do: which patents need the LLM (not cached yet)."""

    drawings: int = 0
    patents: int = 0
    patents_llm: int = 0  # selected for the LLM
    patents_cached: int = 0
    works: list[PatentWork] = field(default_factory=list)


def patent_key(facts: PatentFacts, spec: PromptSpec, cfg: DescribeConfig, model: str) -> str:
    """The cache key of a patent's LLM descriptions: its facts, the model, the prompt (version and
    content), the truth filter's mode and word lists and the sampling settings (descriptions kept
    under one truth mode are never reused under another)."""
    fingerprint = f"{spec.fingerprint}:{default_vocabulary().fingerprint}:truth={cfg.truth}"
    return cache_key(facts.content_hash(), model, spec.version, fingerprint, cfg.temperature,
                     cfg.max_tokens, cfg.seed)


def plan_corpus(manifest: str, cfg: DescribeConfig, spec: PromptSpec, cached: dict[str, CacheEntry],
                storage: Storage, limit: int | None = None) -> Plan:
    plan = Plan()
    model = model_id(cfg.backend)
    use_llm = cfg.backend.kind != "none" and cfg.n_llm_wanted > 0
    queued: set[str] = set()
    for drawings in iter_patents(manifest, storage, limit):
        plan.drawings += len(drawings)
        plan.patents += 1
        if not use_llm or (cfg.llm_patents is not None and plan.patents > cfg.llm_patents):
            continue
        facts = patent_facts(drawings)
        key = patent_key(facts, spec, cfg, model)
        plan.patents_llm += 1
        hit = cached.get(key)
        if hit is not None and hit.satisfies(cfg.n_llm_wanted):
            plan.patents_cached += 1
        elif key not in queued:  # same metadata, same descriptions: generate once
            queued.add(key)
            plan.works.append(PatentWork(key, facts, cfg.n_llm_wanted))
    return plan


def write_descriptions(manifest: str, out_dir: str, cfg: DescribeConfig, spec: PromptSpec,
                       cached: dict[str, CacheEntry], failed: dict[str, str], storage: Storage,
                       limit: int | None = None) -> dict:
    """Assemble every drawing's descriptions and write ``descriptions.parquet`` and
    ``failures.parquet`` atomically (a drawing id is written once)."""
    model = model_id(cfg.backend)
    use_llm = cfg.backend.kind != "none" and cfg.n_llm_wanted > 0
    seen: set[str] = set()
    rows: list[dict] = []
    failures: list[dict] = []
    stats = {"drawings": 0, "descriptions": 0, "drawings_with_llm": 0, "llm_descriptions": 0}
    with storage.open_write(join(out_dir, DESCRIPTIONS_FILE)) as f:
        writer = pq.ParquetWriter(f, DESCRIPTIONS_SCHEMA, compression="zstd")
        for p_index, drawings in enumerate(iter_patents(manifest, storage, limit), start=1):
            facts = patent_facts(drawings)
            key = patent_key(facts, spec, cfg, model)
            selected = use_llm and (cfg.llm_patents is None or p_index <= cfg.llm_patents)
            entry = cached.get(key) if selected else None
            llm = list(entry.descriptions[: cfg.n_llm_wanted]) if entry is not None else []
            for d in drawings:
                if d.drawing_id in seen:
                    failures.append(ItemError(d.drawing_id, STAGE, "duplicate drawing_id in manifest; kept the first",
                                              drawing_id=d.drawing_id, patent_id=d.patent_id).to_row())
                    continue
                seen.add(d.drawing_id)
                if selected and key in failed:
                    failures.append(ItemError(
                        d.drawing_id, STAGE, f"LLM failed for patent {d.patent_id}: {failed[key]}; "
                        "kept metadata-only and templated descriptions", severity="warning",
                        drawing_id=d.drawing_id, patent_id=d.patent_id).to_row())
                texts, n_llm = assemble_descriptions(drawing_facts(d, facts), llm, spec, cfg)
                rows.append({"drawing_id": d.drawing_id, "descriptions": texts,
                             "model": model if n_llm else METADATA_ONLY, "prompt_version": spec.version,
                             "cache_key": key, "n_llm": n_llm})
                stats["drawings"] += 1
                stats["descriptions"] += len(texts)
                stats["llm_descriptions"] += n_llm
                stats["drawings_with_llm"] += int(n_llm > 0)
                if len(rows) >= 4096:
                    writer.write_table(pa.Table.from_pylist(rows, schema=DESCRIPTIONS_SCHEMA))
                    rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=DESCRIPTIONS_SCHEMA))
        writer.close()
    with storage.open_write(join(out_dir, FAILURES_FILE)) as f:
        pq.write_table(pa.Table.from_pylist(failures, schema=FAILURE_SCHEMA), f, compression="zstd")
    stats["failures"] = len(failures)
    return stats


def describe_corpus_with(runner_factory: Callable[[list[PatentWork]], list[PatentResult]] | None,
                         manifest: str, out_dir: str, cfg: DescribeConfig, storage: Storage | None = None,
                         limit: int | None = None) -> dict:
    """Plan, generate what the cache lacks with ``runner_factory`` (a runner; ``None``: nothing
    is generated), then write the table. Returns the summary (also ``OUT/summary.json``)."""
    storage = storage or Storage()
    spec = PromptSpec.load(cfg.prompt_version)
    cache = DescriptionCache(cfg.cache_dir or join(out_dir, "cache"), storage)
    t0 = time.perf_counter()
    plan = plan_corpus(manifest, cfg, spec, cache.load(), storage, limit)
    log.info("describe: %d drawings in %d patents; LLM for %d patents (%d cached, %d to generate)",
             plan.drawings, plan.patents, plan.patents_llm, plan.patents_cached, len(plan.works))
    results: list[PatentResult] = []
    t_gen = time.perf_counter()
    if plan.works and runner_factory is not None:
        results = runner_factory(plan.works)
    gen_seconds = time.perf_counter() - t_gen
    failed = {r.key: r.error for r in results if r.error}
    stats = write_descriptions(manifest, out_dir, cfg, spec, cache.load(), failed, storage, limit)
    total = time.perf_counter() - t0
    ok = [r for r in results if not r.error]
    summary = {
        "manifest": manifest, "out": out_dir, "model": model_id(cfg.backend), "prompt_version": spec.version,
        "k": cfg.k, **stats, "patents": plan.patents, "patents_llm": plan.patents_llm,
        "patents_cached": plan.patents_cached, "patents_generated": len(ok), "patents_failed": len(failed),
        "completions": sum(r.n_raw for r in results),
        "completion_tokens": sum(r.completion_tokens for r in results),
        "generation_seconds": round(gen_seconds, 3), "seconds": round(total, 3),
        "seconds_per_drawing": round(total / max(1, stats["drawings"]), 4),
        "generated_descriptions": sum(r.n_descriptions for r in ok),
    }
    with storage.open_write(join(out_dir, SUMMARY_FILE)) as f:
        f.write((json.dumps(summary, indent=2) + "\n").encode())
    return summary


def format_sample(manifest: str, out_dir: str, n: int, storage: Storage | None = None) -> str:
    """``n`` drawings spread over the output (different patents first), with their metadata and
    numbered descriptions, as text."""
    from priorsight.manifest import read_manifest, read_table

    storage = storage or Storage()
    table = read_table(join(out_dir, DESCRIPTIONS_FILE), storage).to_pylist()
    if not table or n <= 0:
        return "(no descriptions)"
    meta = {r["drawing_id"]: r for r in read_manifest(manifest, storage, columns=[
        "drawing_id", "patent_id", "title", "view", "view_text", "locarno_class"]).to_pylist()}
    step = max(1, len(table) // n)
    lines = []
    for row in table[::step][:n]:
        m = meta.get(row["drawing_id"], {})
        lines.append(f"== {row['drawing_id']} | {m.get('title', '?')} | view {m.get('view', '?')} "
                     f"({m.get('view_text', '')}) | Locarno {m.get('locarno_class', '')} | "
                     f"{row['n_llm']} from {row['model']}")
        lines += [f"  {i:2d}. {d}" for i, d in enumerate(row["descriptions"])]
    return "\n".join(lines)
