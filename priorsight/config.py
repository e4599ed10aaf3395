"""Typed configuration: defaults < YAML file < environment (``PRIORSIGHT_*``) < CLI flags.

Environment variables use ``__`` between nesting levels, e.g.
``PRIORSIGHT_STORAGE__ENDPOINT_URL=http://127.0.0.1:5000``. Secrets are ``SecretStr`` so
they never appear in logs or ``repr``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr

from priorsight.classes import LevelChoice, SchemeChoice
from priorsight.describe.config import DescribeConfig
from priorsight.vectors import DEFAULT_WEIGHTS, FusionWeights

#: Where a config file is looked for when none is named (``PRIORSIGHT_CONFIG`` overrides).
DEFAULT_CONFIG_FILE = "priorsight.yaml"


class StorageConfig(BaseModel):
    """S3 settings. Empty values fall back to boto3's own chain (AWS_* env, profiles, IMDS)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5)
    multipart_chunk_mb: int = Field(default=16, ge=5)
    max_attempts: int = Field(default=5, ge=1)


class CorpusConfig(BaseModel):
    """Corpus-wide conventions."""

    #: head classes hold the first ``head_share`` of drawings (classes sorted by frequency),
    #: tail classes the last ``tail_share``; the rest is medium.
    head_share: float = Field(default=1 / 3, gt=0, lt=1)
    tail_share: float = Field(default=1 / 3, gt=0, lt=1)
    max_image_pixels: int = Field(default=80_000_000, gt=0)
    #: which classification defines "same class" for stats, sampling, the class-level losses and
    #: evaluation (priorsight.classes): ``locarno`` (``locarno_class``), ``uspc`` (``us_class``)
    #: or ``auto`` (per corpus: the one that labels more of its drawings, Locarno on a tie)
    class_scheme: SchemeChoice = "auto"
    #: ``main`` (``14`` / ``D14``) or ``subclass`` (``14-04`` / ``D14-486``); ``auto``: the Locarno
    #: subclass, the US main class
    class_level: LevelChoice = "auto"


class MilvusConfig(BaseModel):
    """Where the drawing index lives and how it is built (see :mod:`priorsight.milvus`).

    ``target``: ``embedded`` (a Milvus standalone server started by ``priorsight milvus start``
    under ``data_dir``), ``lite`` (Milvus Lite, a local ``.db`` file: single-process unit tests
    only) or ``external`` (any Milvus server at ``uri`` with ``token``).
    """

    target: Literal["embedded", "lite", "external"] = "embedded"
    uri: str | None = None  # external: http://host:19530; lite: path of the .db file
    token: SecretStr | None = None  # "user:password" or an API key
    db: str = ""  # database name; "" is the server's default database
    data_dir: Path = Path("data/milvus")  # embedded server's data (and Lite's default .db)
    port: int | None = Field(default=None, ge=1, le=65535)  # embedded: None = 19530 or the next free
    alias: str = Field(default="drawings", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    #: vector index on a server (Lite: AUTOINDEX): HNSW (a graph per segment: good at any size,
    #: but its search cost grows with the number of segments) or SCANN (per segment ``scann_nlist``
    #: clusters of 4-bit fast-scan codes, the best ``search_reorder_k`` re-ranked exactly: the cost
    #: grows with the rows scanned, not the segments). ``auto``: SCANN when the collection holds
    #: ``scann_min_rows`` rows or more as its index is built, else HNSW (docs/deploy.md: at 1M
    #: rows SCANN searches in 2.8 ms at recall 0.987 where HNSW needed 4-7.6 ms for 0.97-0.98)
    index_type: Literal["auto", "HNSW", "SCANN"] = "auto"
    scann_min_rows: int = Field(default=100_000, ge=0)
    hnsw_m: int = Field(default=32, ge=4, le=64)  # docs/deploy.md: M=32 beats M=16 at every ef at 1M
    hnsw_ef_construction: int = Field(default=200, ge=8, le=1024)
    scann_nlist: int = Field(default=1024, ge=1, le=65536)  # per segment: keep segment rows >= 39 x nlist
    #: search breadth: HNSW's ef; SCANN's clusters probed (nprobe) and candidates re-ranked
    #: (reorder_k). All are sent with every search, so a collection of either type behind the
    #: alias is searched with its own (a swap from one index type to the other needs no change).
    search_ef: int = Field(default=64, ge=1, le=32768)
    search_nprobe: int = Field(default=128, ge=1, le=65536)
    search_reorder_k: int = Field(default=200, ge=1, le=16384)
    #: scalar indexes on the filter fields (priorsight.milvus.SCALAR_INDEXES; server targets)
    scalar_indexes: bool = True
    consistency_level: Literal["Strong", "Bounded", "Session", "Eventually"] = "Bounded"
    #: locarno_class as partition key. Off by default: Milvus < 2.3.10 (the embedded 2.3.5
    #: included) routes upserted rows by the wrong field (milvus-io/milvus#30772), so filtered
    #: searches miss rows. Turn it on for an external Milvus >= 2.4.
    partition_key: bool = False
    num_partitions: int = Field(default=16, ge=1, le=1024)
    upsert_batch: int = Field(default=5_000, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)  # per RPC
    start_timeout_s: float = Field(default=300.0, gt=0)  # embedded start (first start unpacks ~500 MB)
    stop_timeout_s: float = Field(default=60.0, gt=0)


class DeploymentScaling(BaseModel):
    """Replicas, CPUs and autoscaling of one Ray Serve deployment (see docs/serving.md)."""

    model_config = {"extra": "forbid"}

    num_cpus: float = Field(default=0.25, gt=0, le=64)  # fractional: 2-core machines
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=2, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    max_ongoing_requests: int = Field(default=8, ge=1)
    upscale_delay_s: float = Field(default=15.0, ge=0)
    downscale_delay_s: float = Field(default=120.0, ge=0)
    look_back_period_s: float = Field(default=15.0, gt=10)  # > Serve metrics_interval_s (10)
    #: how often Serve checks a replica (a killed one is replaced at the next check)
    health_check_period_s: float = Field(default=10.0, gt=0)


class SearchSourceConfig(BaseModel):
    """One index the searcher fans out to (e.g. one patent office's Milvus)."""

    model_config = {"extra": "forbid"}

    name: str = Field(default="local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    milvus: MilvusConfig = MilvusConfig()
    describe: DescribeConfig = DescribeConfig()
    collection: str | None = None  # collection or alias; None: milvus.alias
    timeout_s: float = Field(default=2.0, gt=0)  # per search; a slower source makes the result partial


class ApiKeyConfig(BaseModel):
    """One API key, stored as its hash only (``sha256:<hex>``); see :mod:`services.auth`."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    scopes: list[Literal["search", "admin"]] = Field(default_factory=lambda: ["search"], min_length=1)
    #: this key's rate limit (requests/s); None: the default; 0: unlimited (e.g. a load-test key)
    rate_limit_per_s: float | None = Field(default=None, ge=0)
    created_at: str | None = None


class SecurityConfig(BaseModel):
    """Access to the API (``serve.security``; docs/security.md).

    ``auth``: ``auto`` turns API keys on as soon as any key (or a key file) is configured, and
    leaves the API open otherwise (the local demo on 127.0.0.1); ``on`` refuses every request
    without a valid key (even with no keys configured); ``off`` never asks for one. Keys are
    stored hashed: inline in ``api_keys`` or in ``api_keys_file`` (written by ``priorsight apikey
    create``; re-read when it changes). Raw keys only ever live in the clients' env or files."""

    model_config = {"extra": "forbid"}

    auth: Literal["auto", "on", "off"] = "auto"
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    api_keys_file: str | None = None  # YAML written by `priorsight apikey create` (hashes only)
    #: token bucket per key (per client address when auth is off), per ingress replica; 0: off
    rate_limit_per_s: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    #: origins allowed to call the API from a browser (CORS); empty: closed
    cors_origins: list[str] = Field(default_factory=list)
    #: search records kept per ingress replica for export (GET /v1/admin/records)
    records_kept: int = Field(default=1000, ge=0, le=1_000_000)
    records_file: str | None = None  # also append every record to this JSONL file (local path)


class ServeConfig(BaseModel):
    """Query serving (``services/``): the ``args`` of ``services/serve_config.yaml``."""

    model_config = {"extra": "forbid"}

    checkpoint: str = "data/runs/latest"  # training run dir or checkpoint .pt (local or s3://)
    manifest: str = "data/corpus"  # corpus dir or manifest .parquet (drawing metadata, image_uri)
    model_version: str | None = None  # label in search records; None: derived from the checkpoint
    text_queries: bool = True  # load the sentence encoder so words can be part of a query
    sources: list[SearchSourceConfig] = Field(default_factory=lambda: [SearchSourceConfig()], min_length=1)
    fusion: Literal["max", "rrf"] = "max"  # default fusion of several query views
    #: how a query's drawing and words make one score (priorsight.vectors; the weights
    #: `priorsight eval` measures: docs/training.md)
    query_weights: FusionWeights = DEFAULT_WEIGHTS
    rrf_k: int = Field(default=60, ge=1)
    candidates_per_query: int = Field(default=100, ge=1, le=16384)  # ANN hits per query vector per source
    default_k: int = Field(default=20, ge=1)
    max_k: int = Field(default=100, ge=1, le=1000)
    max_images: int = Field(default=7, ge=1, le=32)
    max_upload_mb: float = Field(default=20.0, gt=0)
    max_text_chars: int = Field(default=1000, ge=1)
    max_image_pixels: int = Field(default=80_000_000, gt=0)
    embed_max_batch_size: int = Field(default=8, ge=1)
    embed_batch_wait_s: float = Field(default=0.0, ge=0)  # 0: no wait; batches still form under load
    embed_threads: int = Field(default=2, ge=1)  # torch threads of an embedder replica
    start_embedded_milvus: bool = False  # `priorsight serve`: start the embedded server of embedded sources
    #: where drawing images may be read from (local dirs or s3://bucket/prefix); None: the
    #: common root of the manifest's image URIs. An image_uri outside them is never served.
    image_roots: list[str] | None = None
    #: ingress -> embedder/searcher call timeout; a dead replica is retried once, then 503
    backend_timeout_s: float = Field(default=20.0, gt=0)
    retry_after_s: int = Field(default=2, ge=1)  # Retry-After of a 503
    security: SecurityConfig = SecurityConfig()
    embedder: DeploymentScaling = DeploymentScaling(num_cpus=0.5, max_ongoing_requests=16)
    searcher: DeploymentScaling = DeploymentScaling(num_cpus=0.25, max_ongoing_requests=16)
    ingress: DeploymentScaling = DeploymentScaling(max_ongoing_requests=32, target_ongoing_requests=4.0)


class Settings(BaseModel):
    """The one config model of PriorSight."""

    model_config = {"extra": "forbid"}

    data_dir: Path = Path("data")
    storage: StorageConfig = StorageConfig()
    corpus: CorpusConfig = CorpusConfig()
    milvus: MilvusConfig = MilvusConfig()
    describe: DescribeConfig = DescribeConfig()
    #: how a query's drawing and words are fused into one score (priorsight.vectors;
    #: `priorsight eval` and the service use the same weights: docs/training.md)
    query_weights: FusionWeights = DEFAULT_WEIGHTS
    serve: ServeConfig = ServeConfig()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


#: PRIORSIGHT_* variables that are not settings: the config file's path and a client's API key
_NOT_SETTINGS = frozenset({"PRIORSIGHT_CONFIG", "PRIORSIGHT_API_KEY"})


def _env_overrides() -> dict[str, Any]:
    """``PRIORSIGHT_A__B=v`` as ``{"a": {"b": "v"}}``, so env beats YAML per leaf. Variables whose
    first part names no setting (``PRIORSIGHT_SHARED_DIR``, ``PRIORSIGHT_USPTO_SAMPLE``: options of
    one command) are not settings."""
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith("PRIORSIGHT_") or key in _NOT_SETTINGS:
            continue
        parts = key[len("PRIORSIGHT_"):].lower().split("__")
        if parts[0] not in Settings.model_fields:
            continue
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings: YAML file (``path``, ``$PRIORSIGHT_CONFIG`` or ``./priorsight.yaml`` if it
    exists), then ``PRIORSIGHT_*`` environment variables, then ``overrides`` (CLI flags)."""
    path = path or os.environ.get("PRIORSIGHT_CONFIG")
    data: dict[str, Any] = {}
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    data = _deep_merge(data, _env_overrides())
    data = _deep_merge(data, overrides or {})
    return Settings.model_validate(data)


def serve_config_from_args(args: dict[str, Any] | None) -> ServeConfig:
    """A :class:`ServeConfig` from a Serve YAML's ``args`` with ``PRIORSIGHT_SERVE__*``
    environment variables on top (e.g. ``PRIORSIGHT_SERVE__SECURITY__API_KEYS_FILE``)."""
    return ServeConfig.model_validate(_deep_merge(args or {}, _env_overrides().get("serve") or {}))
