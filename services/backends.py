"""The two query backends behind :func:`services.api.create_api`.

* :class:`LocalBackend`: the encoder and searcher called in this process (tests, and the
  benchmark's in-process limit);
* :class:`HandleBackend`: the Ray Serve deployments, through their handles.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from priorsight.images import Crop
from priorsight.milvus import Filter
from services.api import EmbedAnswer
from services.embedding import QueryEncoder
from services.search import FanOutSearcher, SearchOutcome


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
        return await asyncio.to_thread(self.search_sync, vectors, k, filter, fusion, rrf_k, group)

    async def ready(self) -> dict[str, bool]:
        return await asyncio.to_thread(self.searcher.ready)


class HandleBackend:
    """Calls the ``QueryEmbedder`` and ``Searcher`` deployments (see :mod:`services.app`)."""

    def __init__(self, embedder: Any, searcher: Any):
        self.embedder = embedder
        self.searcher = searcher

    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer:
        return await self.embedder.embed.remote(images, text)

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome:
        return await self.searcher.search.remote(vectors, k, filter, fusion, rrf_k, group)

    async def ready(self) -> dict[str, bool]:
        return await self.searcher.ready.remote()


def local_app(config: Any, encoder: QueryEncoder | None = None, searcher: FanOutSearcher | None = None,
              catalog: Any = None, metrics: Any = None) -> Any:
    """The same FastAPI app as the Serve ingress, over in-process objects (made from ``config``
    where not passed in)."""
    from services.api import create_api
    from services.catalog import Catalog

    encoder = encoder or QueryEncoder.load(config.checkpoint, config.model_version, config.text_queries)
    searcher = searcher or FanOutSearcher.connect(config.sources)
    backend = LocalBackend(encoder, searcher, config.candidates_per_query, config.max_image_pixels)
    return create_api(backend, encoder.info, catalog or Catalog.load(config.manifest), config, metrics)
