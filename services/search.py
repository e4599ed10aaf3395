"""Fan-out search over one or more Milvus sources, merged, fused and grouped by patent.

:class:`FanOutSearcher` holds one client per source (passed in, or made once by
:meth:`FanOutSearcher.connect`): every source gets ONE ANN call per query (all query vectors
in one batch), concurrently; a source that fails or exceeds its ``timeout_s`` is left out and
the result marked partial. Ranking is :mod:`services.fusion` (pure).

:meth:`FanOutSearcher.connect` gives every source a :class:`SourceClient`: connected on first
use, not at start (a replica whose Milvus is down starts anyway, no crash loop), dropped after a
connection failure and remade on a later call (the embedded server's port is re-read), at most
once per ``retry_s``: while a source is down its searches fail at once, not after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from priorsight.config import MilvusConfig, SearchSourceConfig
from priorsight.milvus import (
    OUTPUT_FIELDS,
    Filter,
    MilvusUnavailable,
    answers,
    connect,
    list_versions,
    live_collection,
    search,
    search_params,
    swap_alias,
)
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


_CONNECTION_HINTS = ("unavailable", "connect", "deadline", "channel", "closed", "refused", "reset", "socket",
                     "not running", "server is not ready")


def is_connection_error(exc: BaseException) -> bool:
    """Whether an error means the server is unreachable (as opposed to a bad request)."""
    if isinstance(exc, (MilvusUnavailable, ConnectionError, TimeoutError)):
        return True
    try:
        import grpc

        if isinstance(exc, grpc.RpcError):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = f"{type(exc).__name__} {exc}".lower()
    return any(h in text for h in _CONNECTION_HINTS)


class SourceDown(MilvusUnavailable):
    """A source failed to connect less than ``retry_s`` ago: not tried again yet."""


class SourceClient:
    """A Milvus client made on first use and remade after a connection failure (see above)."""

    def __init__(self, config: MilvusConfig, timeout_s: float, retry_s: float = 1.0):
        # one timeout for connecting and for every call: a dead server costs at most that long
        self.config = config.model_copy(update={"timeout_s": timeout_s})
        self.retry_s = retry_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._last_error = ""

    def get(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() < self._next_try:
                raise SourceDown(f"unavailable ({self._last_error}); reconnecting shortly")
            try:
                self._client = connect(self.config, dedicated=True)
            except Exception as exc:
                self._fail(exc)
                raise
            return self._client

    def _fail(self, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"[:200]
        self._next_try = time.monotonic() + self.retry_s

    def failed(self, exc: BaseException) -> None:
        """Report an error of a call; a connection error drops the client (remade later)."""
        if isinstance(exc, SourceDown) or not is_connection_error(exc):
            return
        with self._lock:
            old, self._client = self._client, None
            self._fail(exc)
        if old is not None:
            log.warning("Milvus connection lost (%s); reconnecting on a later call", self._last_error)
            try:
                old.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        with self._lock:
            old, self._client = self._client, None
        if old is not None:
            old.close()


class _Fixed:
    """A client passed in (tests, benchmarks): used as is."""

    def __init__(self, client: Any):
        self.client = client

    def get(self) -> Any:
        return self.client

    def failed(self, exc: BaseException) -> None:
        pass

    def close(self) -> None:
        self.client.close()


class FanOutSearcher:
    """Concurrent search over the configured sources with clients passed in (plain Milvus
    clients, or :class:`SourceClient` made by :meth:`connect`)."""

    def __init__(self, sources: list[SearchSourceConfig], clients: dict[str, Any]):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        missing = set(names) - set(clients)
        if missing:
            raise ValueError(f"no client for source(s) {sorted(missing)}")
        self.sources = list(sources)
        self.clients = {n: c if isinstance(c, SourceClient) else _Fixed(c) for n, c in clients.items()}
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(sources)), thread_name_prefix="fanout")

    @classmethod
    def connect(cls, sources: list[SearchSourceConfig], retry_s: float = 1.0) -> FanOutSearcher:
        """Lazily connected clients (nothing is contacted until the first call)."""
        return cls(sources, {s.name: SourceClient(s.milvus, s.timeout_s, retry_s) for s in sources})

    def _client_call(self, source: SearchSourceConfig, fn: Any) -> Any:
        holder = self.clients[source.name]
        try:
            return fn(holder.get())
        except Exception as exc:
            holder.failed(exc)
            raise

    @contextlib.contextmanager
    def _admin_client(self, source: SearchSourceConfig) -> Iterator[Any]:
        """A client for slow admin calls (loading a collection): with the source's own Milvus
        timeout, not the search timeout; made for the call and closed after it."""
        holder = self.clients[source.name]
        if not isinstance(holder, SourceClient):
            yield holder.get()
            return
        client = connect(source.milvus, dedicated=True)
        try:
            yield client
        finally:
            client.close()

    def source(self, name: str) -> SearchSourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def index_versions(self) -> dict[str, Any]:
        """Per source: alias, the live collection and its versions (admin)."""
        out: dict[str, Any] = {}
        for s in self.sources:
            alias = self.collection_of(s)
            try:
                with self._admin_client(s) as client:
                    versions = list_versions(client, alias)
                live = next((v.name for v in versions if v.live), None)
                out[s.name] = {"alias": alias, "live": live,
                               "versions": [{"name": v.name, "version": v.version, "live": v.live, "rows": v.rows}
                                            for v in versions]}
            except Exception as exc:  # noqa: BLE001 - a status report
                out[s.name] = {"alias": alias, "error": f"{type(exc).__name__}: {exc}"[:300]}
        return {"sources": out}

    def swap_alias(self, source_name: str, collection: str) -> dict[str, Any]:
        """Point a source's alias at ``collection``, which must be a version of it
        (``{alias}_v{N}``) that exists; returns alias, previous and live collection."""
        s = self.source(source_name)
        alias = self.collection_of(s)
        if not re.fullmatch(rf"{re.escape(alias)}_v\d{{1,9}}", collection):
            raise ValueError(f"{collection[:100]!r} is not a version of {alias!r} ({alias}_v<N>)")
        with self._admin_client(s) as client:
            previous = swap_alias(client, alias, collection)
        return {"source": s.name, "alias": alias, "previous": previous, "live": collection}

    def collection_of(self, source: SearchSourceConfig) -> str:
        return source.collection or source.milvus.alias

    def indexes(self) -> dict[str, str]:
        """Per source, the collection its alias points at now (the index version)."""
        out = {}
        for s in self.sources:
            name = self.collection_of(s)
            try:
                out[s.name] = self._client_call(s, lambda c, n=name: live_collection(c, n)) or name
            except Exception as exc:  # noqa: BLE001 - a status report, never raises
                out[s.name] = f"unavailable: {exc}"
        return out

    def ready(self) -> dict[str, bool]:
        """Whether each source's collection is loaded and answers a query within the source's
        timeout (:func:`priorsight.milvus.answers`)."""
        out = {}
        for s in self.sources:
            try:
                out[s.name] = self._client_call(s, lambda c, s=s: answers(c, self.collection_of(s), s.timeout_s))
            except Exception:  # noqa: BLE001
                out[s.name] = False
        return out

    def _one(self, source: SearchSourceConfig, vectors: np.ndarray, limit: int, filter: Filter
             ) -> tuple[list[list[Any]], float]:
        t0 = time.perf_counter()
        hits = self._client_call(source, lambda c: search(
            c, self.collection_of(source), vectors, k=limit, filter=filter, params=search_params(source.milvus, limit),
            output_fields=OUTPUT_FIELDS, timeout=source.timeout_s))
        return hits, time.perf_counter() - t0

    def _start(self, vectors: np.ndarray, k: int, filter: Filter | None, candidates_per_query: int
               ) -> tuple[float, dict[str, Future[tuple[list[list[Any]], float]]]]:
        """Every source's ANN call, submitted to the pool at once (they run concurrently)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        limit = max(k, candidates_per_query)
        filt = filter if filter is not None else Filter("")
        return time.monotonic(), {s.name: self._pool.submit(self._one, s, vectors, limit, filt) for s in self.sources}

    def _finish(self, futures: dict[str, Future[tuple[list[list[Any]], float]]], k: int, fusion: FusionMethod,
                rrf_k: int, group: bool) -> SearchOutcome:
        """The outcome once every source answered, failed or ran out of time (not done)."""
        outcome = SearchOutcome()
        per_source = []
        for s in self.sources:
            fut = futures[s.name]
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

    def search(self, vectors: np.ndarray, k: int, filter: Filter | None = None, fusion: FusionMethod = "max",
               rrf_k: int = 60, group: bool = True, candidates_per_query: int = 100) -> SearchOutcome:
        """Top ``k`` patents (``group``) or drawings for the query vectors (one row each); sources
        that fail or time out are listed in ``failures`` (none answered: ``answered`` is False)."""
        t0, futures = self._start(vectors, k, filter, candidates_per_query)
        for s in self.sources:  # each source within its own deadline, all running concurrently
            wait([futures[s.name]], timeout=max(0.0, t0 + s.timeout_s - time.monotonic()))
        return self._finish(futures, k, fusion, rrf_k, group)

    async def search_async(self, vectors: np.ndarray, k: int, filter: Filter | None = None,
                           fusion: FusionMethod = "max", rrf_k: int = 60, group: bool = True,
                           candidates_per_query: int = 100) -> SearchOutcome:
        """:meth:`search` awaited on an event loop (the Searcher replica's): the sources' calls run
        in the pool as there, without a thread of their own to wait in (one thread hop, not two)."""
        t0, futures = self._start(vectors, k, filter, candidates_per_query)
        for s in self.sources:
            left = max(0.0, t0 + s.timeout_s - time.monotonic())
            # shielded: a timeout leaves the call's future as it is, for _finish to report
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(futures[s.name])), left)
        return self._finish(futures, k, fusion, rrf_k, group)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self.clients.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
