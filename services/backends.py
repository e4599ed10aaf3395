"""The two query backends behind :func:`services.api.create_api`.

* :class:`LocalBackend`: the encoder and searcher called in this process (tests, and the
  benchmark's in-process limit);
* :class:`HandleBackend`: the Ray Serve deployments, through their handles: every call has a
  timeout, a call that hits a dead (or unreachable) replica is retried once (Serve routes it to
  another replica), and what still fails becomes :class:`services.api.BackendUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from priorsight.images import Crop
from priorsight.milvus import Filter
from services.api import BackendUnavailable, EmbedAnswer
from services.embedding import QueryEncoder
from services.search import FanOutSearcher, SearchOutcome

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 300.0  # admin calls (an alias swap loads the collection first)


def _replica_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this replica is gone or unreachable, another may answer"."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RayServeException

    return (RayActorError, ActorUnavailableError, BackPressureError, DeploymentUnavailableError, RayServeException)


class LocalBackend:
    def __init__(self, encoder: QueryEncoder, searcher: FanOutSearcher, candidates_per_query: int = 100,
                 max_image_pixels: int = 80_000_000):
        self.encoder = encoder
        self.searcher = searcher
        self.candidates_per_query = candidates_per_query
        self.max_image_pixels = max_image_pixels

    def embed_sync(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer:
        t0 = time.perf_counter()
        out = self.encoder.embed_uploads([(images, text)], self.max_image_pixels)[0]
        return EmbedAnswer(vectors=out.vectors, seconds=time.perf_counter() - t0, batch_size=1, error=out.error,
                           error_image=out.error_image)

    def search_sync(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                    group: bool) -> SearchOutcome:
        return self.searcher.search(vectors, k, filter, fusion, rrf_k, group,  # type: ignore[arg-type]
                                    self.candidates_per_query)

    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer:
        return await asyncio.to_thread(self.embed_sync, images, text)

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome:
        return await self.searcher.search_async(vectors, k, filter, fusion, rrf_k, group,  # type: ignore[arg-type]
                                                self.candidates_per_query)

    async def ready(self) -> dict[str, bool]:
        return await asyncio.to_thread(self.searcher.ready)

    async def index_versions(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.searcher.index_versions)

    async def swap_alias(self, source: str, collection: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.searcher.swap_alias, source, collection)


class HandleBackend:
    """Calls the ``QueryEmbedder`` and ``Searcher`` deployments (see :mod:`services.app`)."""

    def __init__(self, embedder: Any, searcher: Any, timeout_s: float = 20.0, attempts: int = 2):
        self.embedder = embedder
        self.searcher = searcher
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retries = 0  # calls retried after a replica failure (for tests and logs)

    async def _call(self, handle: Any, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        errors = _replica_errors()
        timeout_s = timeout_s or self.timeout_s
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, self.attempts + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return await asyncio.wait_for(getattr(handle, method).remote(*args), timeout=left)
            except TimeoutError as exc:
                raise BackendUnavailable(f"{handle.deployment_name}.{method} timed out after "
                                         f"{timeout_s:g} s") from exc
            except errors as exc:
                if attempt >= self.attempts:
                    raise BackendUnavailable(f"{handle.deployment_name} unavailable ({type(exc).__name__})") from exc
                self.retries += 1
                log.warning("%s.%s failed on a replica (%s); retrying once", handle.deployment_name, method,
                            type(exc).__name__)
        raise BackendUnavailable(f"{handle.deployment_name}.{method} timed out after {timeout_s:g} s")

    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer:
        return await self._call(self.embedder, "embed", images, text)

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome:
        return await self._call(self.searcher, "search", vectors, k, filter, fusion, rrf_k, group)

    async def ready(self) -> dict[str, bool]:
        return await self._call(self.searcher, "ready")

    async def index_versions(self) -> dict[str, Any]:
        return await self._call(self.searcher, "index_versions", timeout_s=max(self.timeout_s, ADMIN_TIMEOUT_S))

    async def swap_alias(self, source: str, collection: str) -> dict[str, Any]:
        # loads the collection first if it is not loaded yet: give it time
        return await self._call(self.searcher, "swap_alias", source, collection,
                                timeout_s=max(self.timeout_s, ADMIN_TIMEOUT_S))


def local_app(config: Any, encoder: QueryEncoder | None = None, searcher: FanOutSearcher | None = None,
              catalog: Any = None, metrics: Any = None) -> Any:
    """The same FastAPI app as the Serve ingress, over in-process objects (made from ``config``
    where not passed in)."""
    from services.api import create_api
    from services.catalog import Catalog

    encoder = encoder or QueryEncoder.load(config.checkpoint, config.model_version, config.text_queries,
                                           weights=config.query_weights)
    searcher = searcher or FanOutSearcher.connect(config.sources)
    backend = LocalBackend(encoder, searcher, config.candidates_per_query, config.max_image_pixels)
    catalog = catalog or Catalog.load(config.manifest, image_roots=config.image_roots)
    return create_api(backend, encoder.info, catalog, config, metrics)
