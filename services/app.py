"""The Ray Serve application: ``Ingress`` (FastAPI) -> ``QueryEmbedder`` + ``Searcher``.

Thin deployments over :mod:`services.embedding`, :mod:`services.search` and
:mod:`services.api`. Built by :func:`build_app` from a :class:`ServeConfig` (the ``args`` of
``services/serve_config.yaml``, the single source of the app's settings)::

    serve run services/serve_config.yaml        # or: priorsight serve
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from priorsight.config import DeploymentScaling, ServeConfig, serve_config_from_args
from priorsight.images import Crop
from priorsight.milvus import Filter
from priorsight.storage import is_s3
from services.api import EmbedAnswer, create_api
from services.backends import HandleBackend
from services.batching import GreedyBatcher
from services.catalog import Catalog
from services.embedding import ModelInfo, Query, QueryEncoder, QueryVectors
from services.metrics import ServeMetrics
from services.search import FanOutSearcher, SearchOutcome

log = logging.getLogger(__name__)

APP_NAME = "priorsight"


@serve.deployment(name="QueryEmbedder")
class QueryEmbedder:
    """Uploaded drawings (decoded and preprocessed here with the shared indexing function) and
    words -> vectors; the queries that arrive while a forward pass runs go together in the next
    one (:class:`services.batching.GreedyBatcher`: dynamic batching that grows with the load)."""

    def __init__(self, config: ServeConfig):
        self.encoder = QueryEncoder.load(config.checkpoint, config.model_version, config.text_queries,
                                         threads=config.embed_threads, weights=config.query_weights)
        max_pixels = config.max_image_pixels
        self.batcher: GreedyBatcher[Query, QueryVectors] = GreedyBatcher(
            lambda queries: self.encoder.embed_uploads(queries, max_pixels),
            max_batch_size=config.embed_max_batch_size, wait_s=config.embed_batch_wait_s)

    def model_info(self) -> ModelInfo:
        return self.encoder.info

    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer:
        out = await self.batcher.submit((images, text))
        q = out.result
        return EmbedAnswer(vectors=q.vectors, seconds=out.seconds, batch_size=out.batch_size, error=q.error,
                           error_image=q.error_image)


@serve.deployment(name="Searcher")
class Searcher:
    """Fans a query's vectors out to every configured Milvus source (one client each, made
    once), merges, fuses and groups (:mod:`services.fusion`)."""

    def __init__(self, config: ServeConfig):
        self.searcher = FanOutSearcher.connect(config.sources)
        self.candidates_per_query = config.candidates_per_query

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome:
        return await self.searcher.search_async(vectors, k, filter, fusion, rrf_k,  # type: ignore[arg-type]
                                                group, self.candidates_per_query)

    async def ready(self) -> dict[str, bool]:
        return await asyncio.to_thread(self.searcher.ready)

    async def index_versions(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.searcher.index_versions)

    async def swap_alias(self, source: str, collection: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.searcher.swap_alias, source, collection)


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """The HTTP edge: the FastAPI app of :func:`services.api.create_api` over the handles."""

    async def __init__(self, embedder: DeploymentHandle, searcher: DeploymentHandle, config: ServeConfig):
        self.config = config
        # handles made again here take this replica's Serve settings (gRPC between deployments in
        # the high-throughput mode), not those of the process that built the app
        embedder = serve.get_deployment_handle(embedder.deployment_name, embedder.app_name)
        searcher = serve.get_deployment_handle(searcher.deployment_name, searcher.app_name)
        self.backend = HandleBackend(embedder, searcher, timeout_s=config.backend_timeout_s)
        self.info: ModelInfo = await embedder.model_info.remote()
        self.catalog = Catalog.load(config.manifest, image_roots=config.image_roots)
        self.metrics = ServeMetrics()

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(self.backend, self.info, self.catalog, self.config, self.metrics)


def deployment_options(s: DeploymentScaling, min_ongoing: int = 1, env_vars: dict[str, str] | None = None,
                       access_log: bool = True) -> dict[str, Any]:
    """Ray Serve options of one deployment. Delays are kept >= the look-back period (shorter
    ones make autoscaling flap) and ``max_ongoing_requests`` >= the batch size."""
    actor: dict[str, Any] = {"num_cpus": s.num_cpus}
    if env_vars:
        actor["runtime_env"] = {"env_vars": dict(env_vars)}
    return {
        "ray_actor_options": actor,
        "max_ongoing_requests": max(s.max_ongoing_requests, min_ongoing),
        "health_check_period_s": s.health_check_period_s,
        "logging_config": {"enable_access_log": access_log},
        "autoscaling_config": {
            "min_replicas": s.min_replicas,
            "initial_replicas": max(s.min_replicas, 1),
            "max_replicas": max(s.max_replicas, s.min_replicas, 1),
            "target_ongoing_requests": s.target_ongoing_requests,
            "look_back_period_s": s.look_back_period_s,
            "upscale_delay_s": max(s.upscale_delay_s, s.look_back_period_s),
            "downscale_delay_s": max(s.downscale_delay_s, s.look_back_period_s),
        },
    }


def _model_env() -> dict[str, str]:
    try:
        from cluster.ray_env import WORKER_ENV
    except ImportError:
        return {}
    return dict(WORKER_ENV)


def resolve_paths(config: ServeConfig, base: Path | None = None) -> ServeConfig:
    """Relative local paths made absolute (replicas do not share the caller's working dir)."""
    base = (base or Path.cwd()).resolve()

    def absolute(p: str) -> str:
        return p if is_s3(p) or Path(p).is_absolute() else str(base / p)

    sources = []
    for s in config.sources:
        m = s.milvus
        upd: dict[str, Any] = {"data_dir": Path(absolute(str(m.data_dir)))}
        if m.target == "lite" and m.uri:
            upd["uri"] = absolute(m.uri)
        sources.append(s.model_copy(update={"milvus": m.model_copy(update=upd)}))
    sec = config.security
    security = sec.model_copy(update={
        "api_keys_file": absolute(sec.api_keys_file) if sec.api_keys_file else None,
        "records_file": absolute(sec.records_file) if sec.records_file else None})
    roots = [absolute(r) for r in config.image_roots] if config.image_roots is not None else None
    return config.model_copy(update={"checkpoint": absolute(config.checkpoint), "manifest": absolute(config.manifest),
                                     "sources": sources, "security": security, "image_roots": roots})


def build_app(args: dict[str, Any] | ServeConfig) -> Application:
    """The application from the YAML ``args`` (validated as :class:`ServeConfig`); relative
    paths are taken from the working directory of the caller (``serve run``'s); ``PRIORSIGHT_SERVE__*``
    environment variables override ``args`` (e.g. the key file: docs/security.md)."""
    config = args if isinstance(args, ServeConfig) else serve_config_from_args(args)
    config = resolve_paths(config)
    # internal calls log no access line (the ingress logs one per HTTP request)
    embedder = QueryEmbedder.options(
        **deployment_options(config.embedder, config.embed_max_batch_size, _model_env(), access_log=False)).bind(config)
    searcher = Searcher.options(**deployment_options(config.searcher, access_log=False)).bind(config)
    return Ingress.options(**deployment_options(config.ingress)).bind(embedder, searcher, config)
