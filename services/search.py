"""Fan-out search over one or more Milvus sources, merged, fused and grouped by patent.

:class:`FanOutSearcher` holds one client per source (passed in, or made once by
:meth:`FanOutSearcher.connect`): every source gets ONE ANN call per query (all query vectors
in one batch), concurrently; a source that fails or exceeds its ``timeout_s`` is left out and
the result marked partial. Ranking is :mod:`services.fusion` (pure).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from priorsight.config import SearchSourceConfig
from priorsight.milvus import OUTPUT_FIELDS, Filter, connect, live_collection, search
from services.fusion import (
    FusionMethod,
    RankedDrawing,
    RankedPatent,
    group_by_patent,
    matches_from_hits,
    merge_sources,
    rank_drawings,
)

log = logging.getLogger(__name__)


@dataclass
class SourceFailure:
    source: str
    reason: str  # "timeout" or the error


@dataclass
class SearchOutcome:
    """What one query returned: patents (grouped) or drawings, and how each source did."""

    patents: list[RankedPatent] = field(default_factory=list)
    drawings: list[RankedDrawing] = field(default_factory=list)
    failures: list[SourceFailure] = field(default_factory=list)
    source_seconds: dict[str, float] = field(default_factory=dict)  # sources that answered
    indexes: dict[str, str] = field(default_factory=dict)  # source -> collection that answered

    @property
    def partial(self) -> bool:
        return bool(self.failures)

    @property
    def answered(self) -> bool:
        """Whether any source answered (if none did, there is no result at all)."""
        return bool(self.source_seconds)


class FanOutSearcher:
    """Concurrent search over the configured sources with clients passed in."""

    def __init__(self, sources: list[SearchSourceConfig], clients: dict[str, Any]):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        missing = set(names) - set(clients)
        if missing:
            raise ValueError(f"no client for source(s) {sorted(missing)}")
        self.sources = list(sources)
        self.clients = clients
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(sources)), thread_name_prefix="fanout")

    @classmethod
    def connect(cls, sources: list[SearchSourceConfig]) -> FanOutSearcher:
        return cls(sources, {s.name: connect(s.milvus) for s in sources})

    def collection_of(self, source: SearchSourceConfig) -> str:
        return source.collection or source.milvus.alias

    def indexes(self) -> dict[str, str]:
        """Per source, the collection its alias points at now (the index version)."""
        out = {}
        for s in self.sources:
            name = self.collection_of(s)
            try:
                out[s.name] = live_collection(self.clients[s.name], name) or name
            except Exception as exc:  # noqa: BLE001 - a status report, never raises
                out[s.name] = f"unavailable: {exc}"
        return out

    def ready(self) -> dict[str, bool]:
        """Whether each source answers (lists its collections)."""
        out = {}
        for s in self.sources:
            try:
                out[s.name] = self.clients[s.name].has_collection(self.collection_of(s))
            except Exception:  # noqa: BLE001
                out[s.name] = False
        return out

    def _one(self, source: SearchSourceConfig, vectors: np.ndarray, limit: int, filter: Filter
             ) -> tuple[list[list[Any]], float]:
        t0 = time.perf_counter()
        hits = search(self.clients[source.name], self.collection_of(source), vectors, k=limit, filter=filter,
                      ef=source.milvus.search_ef, output_fields=OUTPUT_FIELDS, timeout=source.timeout_s)
        return hits, time.perf_counter() - t0

    def search(self, vectors: np.ndarray, k: int, filter: Filter | None = None, fusion: FusionMethod = "max",
               rrf_k: int = 60, group: bool = True, candidates_per_query: int = 100) -> SearchOutcome:
        """Top ``k`` patents (``group``) or drawings for the query vectors (one row each); sources
        that fail or time out are listed in ``failures`` (none answered: ``answered`` is False)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        limit = max(k, candidates_per_query)
        filt = filter if filter is not None else Filter("")
        t0 = time.monotonic()
        futures = {s.name: self._pool.submit(self._one, s, vectors, limit, filt) for s in self.sources}
        outcome = SearchOutcome()
        per_source = []
        for s in self.sources:  # each source within its own deadline, all running concurrently
            fut = futures[s.name]
            wait([fut], timeout=max(0.0, t0 + s.timeout_s - time.monotonic()))
            if not fut.done():
                fut.cancel()
                outcome.failures.append(SourceFailure(s.name, f"timeout after {s.timeout_s:g} s"))
                continue
            exc = fut.exception()
            if exc is not None:
                log.warning("source %s failed: %s", s.name, exc)
                outcome.failures.append(SourceFailure(s.name, f"{type(exc).__name__}: {exc}"[:300]))
                continue
            hits, seconds = fut.result()
            outcome.source_seconds[s.name] = seconds
            outcome.indexes[s.name] = self.collection_of(s)
            per_source.append([matches_from_hits(h, s.name) for h in hits])
        if not per_source:
            return outcome
        merged = merge_sources(per_source)
        if group:
            outcome.patents = group_by_patent(merged, fusion, rrf_k, k)
        else:
            outcome.drawings = rank_drawings(merged, fusion, rrf_k, k)
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self.clients.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
