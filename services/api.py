"""The versioned JSON API and the examiner's page, as a FastAPI app over a query backend.

:func:`create_api` builds the app from its collaborators (passed in): a :class:`QueryBackend`
(the Ray Serve deployments' handles in production, in-process objects in tests and the
benchmark's baseline), the :class:`~services.catalog.Catalog`, the :class:`ServeConfig` and
:class:`~services.metrics.ServeMetrics`.

Endpoints: ``POST /v1/search``, ``GET /v1/patents/{id}``, ``GET /v1/drawings/{id}/image``,
``GET /v1/info``, admin ``GET /v1/admin/index/versions``, ``POST /v1/admin/index/swap``,
``GET /v1/admin/records``; ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /`` (the
page), ``/openapi.json``. Bad input is answered ``{"error": {"code", "message"}}`` with a 4xx
status, never a 500; an unavailable index or replica with 503 and ``Retry-After``.

:class:`Guard` (pure ASGI, outermost) checks the API key and scope, the rate limit and the body
size *before* anything reads the body (docs/security.md).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator

from priorsight.config import SecurityConfig, ServeConfig
from priorsight.images import Crop
from priorsight.milvus import Filter, build_filter
from services.auth import (
    ANONYMOUS,
    KeyStore,
    Principal,
    RateLimiter,
    is_loopback,
    presented_key,
    retry_after_header,
)
from services.catalog import Catalog
from services.embedding import ModelInfo
from services.metrics import ServeMetrics
from services.search import SearchOutcome

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_VERSION = "v1"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


# -- the backend the API talks to ---------------------------------------------------------------

class EmbedAnswer(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    vectors: Any  # np.ndarray (n, D): the query's image vectors, then its text vector; None on error
    seconds: float
    batch_size: int = 1  # queries in the model batch that embedded this one
    error: str | None = None  # an upload could not be decoded (priorsight.images.ImageError)
    error_image: int | None = None


class BackendUnavailable(RuntimeError):
    """The embedder or searcher could not answer (replica died twice, timed out, overloaded):
    answered 503 with ``Retry-After``."""


class QueryBackend(Protocol):
    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer: ...

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome: ...

    async def ready(self) -> dict[str, bool]: ...

    async def index_versions(self) -> dict[str, Any]: ...

    async def swap_alias(self, source: str, collection: str) -> dict[str, Any]: ...


# -- request and response models -----------------------------------------------------------------

class CropBox(BaseModel):
    """A crop box in relative coordinates (0..1) of its image."""

    model_config = {"extra": "forbid"}
    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    def to_crop(self) -> Crop:
        return Crop(self.x0, self.y0, self.x1, self.y1)


class SearchFilters(BaseModel):
    """Restrictions; every value is validated by :func:`priorsight.milvus.build_filter`."""

    model_config = {"extra": "forbid"}
    locarno_classes: list[str] | None = None  # "CC-SS" or a main class "CC"
    us_classes: list[str] | None = None  # US design class "D14-345" or a main class "D14"
    date_from: str | None = None  # ISO date, inclusive (grant date)
    date_to: str | None = None
    views: list[str] | None = None  # perspective, front, rear, left, right, top, bottom, other
    sources: list[str] | None = None  # patent offices / corpora

    @field_validator("locarno_classes", "us_classes", "views", "sources", mode="before")
    @classmethod
    def _none_if_empty(cls, v: Any) -> Any:
        return None if v in ([], "") else v

    def to_filter(self) -> Filter:
        return build_filter(locarno_classes=self.locarno_classes, date_from=self.date_from or None,
                            date_to=self.date_to or None, views=self.views, sources=self.sources,
                            us_classes=self.us_classes)


class DrawingResult(BaseModel):
    drawing_id: str
    patent_id: str
    score: float
    #: query vector index -> its fused score (one vector per uploaded view, each with the words;
    #: one vector for words alone): priorsight.vectors
    query_scores: dict[int, float]
    view: str | None = None
    figure_label: str | None = None
    image_url: str


class PatentResult(BaseModel):
    patent_id: str
    source: str
    score: float
    title: str = ""
    locarno_class: str | None = None
    us_class: str | None = None  # US design class "D14-345"
    grant_date: str | None = None
    drawings: list[DrawingResult]


class QueryImage(BaseModel):
    filename: str
    sha256: str
    bytes: int
    crop: CropBox | None = None


class SearchRecord(BaseModel):
    """What was asked, when, and what answered: the examiner saves it with the file."""

    query_id: str
    asked_at: str
    api_version: str = API_VERSION
    images: list[QueryImage]
    text: str | None
    filters: SearchFilters
    filter_expression: str
    k: int
    group_by_patent: bool
    fusion: str
    model: dict[str, str]
    indexes: dict[str, str]  # source -> collection (index version) that answered
    partial: bool
    latency_ms: float
    embed_ms: float
    search_ms: dict[str, float]


class SourceFailureOut(BaseModel):
    source: str
    reason: str


class SearchResponse(BaseModel):
    query_id: str
    partial: bool
    failed_sources: list[SourceFailureOut]
    results: list[PatentResult] = []  # group_by_patent=true
    drawings: list[DrawingResult] = []  # group_by_patent=false
    record: SearchRecord


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class SwapRequest(BaseModel):
    """Point a source's alias at another version of its index (``{alias}_v{N}``)."""

    model_config = {"extra": "forbid"}
    source: str = Field(max_length=64)
    collection: str = Field(max_length=255)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class RecordLog:
    """The last ``kept`` search records of this replica (for export), optionally appended to a
    JSONL file too."""

    def __init__(self, kept: int, path: str | None = None):
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=kept or None)
        self.kept = kept
        self.path = Path(path) if path else None
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        if self.kept:
            self.records.append(record)
        if self.path is not None:
            line = json.dumps(record, ensure_ascii=True) + "\n"
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a") as f:
                    f.write(line)

    def last(self, limit: int) -> list[dict[str, Any]]:
        return list(self.records)[-limit:] if limit else []


# -- the guard: keys, scopes, rate limits and body size, before any body is read ----------------

#: form fields and query parameters of POST /v1/search (anything else is refused)
SEARCH_FIELDS = {"images", "text", "crops", "filters", "k", "group_by_patent", "fusion"}


def required_scope(path: str) -> str | None:
    """The scope a path needs (None: open: health, metrics, the page, the schema)."""
    if path.startswith(f"/{API_VERSION}/admin/") or path == f"/{API_VERSION}/admin":
        return "admin"
    if path.startswith(f"/{API_VERSION}/"):
        return "search"
    return None


class RequestMetrics:
    """Pure ASGI middleware: request latency and errors by endpoint (route template) and status.
    (Starlette's ``@app.middleware("http")`` cost about 0.5-1 ms a request here.)"""

    def __init__(self, app: Any, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router in this same scope
            endpoint = getattr(route, "path", None) or (
                "static" if scope.get("path", "").startswith("/static") else "other")
            self.metrics.request_seconds.labels(endpoint, scope.get("method", ""), str(status)).observe(
                time.perf_counter() - t0)
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()


class Guard:
    """Pure ASGI middleware in front of the app: API key + scope (401/403), rate limit per key
    (429 + ``Retry-After``), then the body-size limit: a declared ``Content-Length`` over the
    limit is refused before reading anything, a streamed (chunked) body as soon as it passes it
    (413). The caller's :class:`Principal` is left in ``scope["state"]["principal"]``."""

    def __init__(self, app: Any, security: SecurityConfig, max_bytes: int, metrics: ServeMetrics):
        self.app = app
        self.keys = KeyStore(security)
        self.limiter = RateLimiter(security.rate_limit_per_s, security.rate_limit_burst)
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def _reply(self, send: Any, path: str, status: int, code: str, message: str,
                     headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})
        self.metrics.errors.labels("guard", str(status)).inc()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        needed = required_scope(path) if method != "OPTIONS" else None
        principal = ANONYMOUS
        if needed is not None:
            if self.keys.enabled:
                found = self.keys.lookup(presented_key(headers))
                if found is None:
                    return await self._reply(send, path, 401, "unauthorized",
                                             "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
                                             {"WWW-Authenticate": "Bearer"})
                if not found.allows(needed):
                    return await self._reply(send, path, 403, "forbidden",
                                             f"this key lacks the {needed!r} scope")
                principal = found
                identity = f"key:{found.name}"
            else:  # keys off: per client address; this host's own clients (demo, benchmarks) are not limited
                client = scope.get("client")
                identity = f"ip:{client[0] if client else 'unknown'}"
                if client and is_loopback(str(client[0])):
                    identity = ""
            # a search (or an admin call) costs a token; a catalog read (patent, image) a tenth
            cost = 1.0 if method == "POST" or needed == "admin" else 0.1
            wait = self.limiter.acquire(identity, principal.rate_limit_per_s, cost=cost) if identity else 0.0
            if wait > 0:
                return await self._reply(send, path, 429, "rate_limited",
                                         f"too many requests; retry in {wait:.1f} s",
                                         {"Retry-After": retry_after_header(wait)})
        scope.setdefault("state", {})["principal"] = principal
        if method not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return await self._reply(send, path, 400, "bad_content_length", "Content-Length must be a number")
            if int(length) > self.max_bytes:
                return await self._reply(send, path, 413, "upload_too_large",
                                         f"upload of {int(length)} bytes exceeds the limit of {self.max_bytes} bytes")
        elif "chunked" not in headers.get("transfer-encoding", "").lower():
            return await self._reply(send, path, 411, "length_required",
                                     "uploads need a Content-Length header (or chunked transfer encoding)")
        seen = 0
        over = False
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True  # stop reading here: the app sees a disconnect, the client a 413
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if over:
                return  # replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._reply(send, path, 413, "upload_too_large",
                              f"upload exceeds the limit of {self.max_bytes} bytes")


def _parse_json(name: str, raw: str | None, default: Any) -> Any:
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, f"invalid_{name}", f"{name} must be JSON: {exc.msg} at position {exc.pos}") from exc


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "; ".join(parts)


def _drawing_out(d: Any, catalog: Catalog) -> DrawingResult:
    meta = catalog.drawing(d.drawing_id)
    f = meta.fields if meta else dict(d.fields)
    return DrawingResult(drawing_id=d.drawing_id, patent_id=d.patent_id, score=round(d.score, 6),
                         query_scores={q: round(s, 6) for q, s in d.query_scores.items()},
                         view=f.get("view"), figure_label=f.get("figure_label"),
                         image_url=f"/{API_VERSION}/drawings/{d.drawing_id}/image")


def _patent_out(p: Any, catalog: Catalog) -> PatentResult:
    info = catalog.patent(p.patent_id) or {}
    fields = p.drawings[0].fields if p.drawings else {}
    grant = info.get("grant_date")
    if grant is None and fields.get("grant_date"):
        g = str(fields["grant_date"])
        grant = f"{g[:4]}-{g[4:6]}-{g[6:8]}" if len(g) == 8 else None
    return PatentResult(patent_id=p.patent_id, source=p.source, score=round(p.score, 6),
                        title=info.get("title") or "",
                        locarno_class=info.get("locarno_class") or fields.get("locarno_class") or None,
                        us_class=info.get("us_class") or fields.get("us_class") or None,
                        grant_date=grant, drawings=[_drawing_out(d, catalog) for d in p.drawings])


# -- the app -----------------------------------------------------------------------------------

def create_api(backend: QueryBackend, info: ModelInfo, catalog: Catalog, config: ServeConfig,
               metrics: ServeMetrics | None = None, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The app; ``info`` describes the model the backend embeds with (its preprocessing size)."""
    metrics = metrics or ServeMetrics()
    max_bytes = int(config.max_upload_mb * 1024 * 1024)
    security = config.security
    records = RecordLog(security.records_kept, security.records_file)
    retry_after = {"Retry-After": str(config.retry_after_s)}
    errors = {c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 411, 413, 415, 422, 429, 503)}
    # declared for the schema (/docs): the Guard does the checking, before the body is read
    keyed = [Depends(HTTPBearer(auto_error=False, description="API key (scope search, or admin)")),
             Depends(APIKeyHeader(name="X-API-Key", auto_error=False))]
    api = FastAPI(title="PriorSight", version="1.0",
                  description="Image-based prior-art search over patent drawings (query serving).",
                  responses={400: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                             422: {"model": ErrorResponse}})
    api.state.metrics = metrics
    api.state.records = records
    api.add_middleware(Guard, security=security, max_bytes=max_bytes, metrics=metrics)
    if security.cors_origins:  # closed by default: no CORS headers at all
        api.add_middleware(CORSMiddleware, allow_origins=list(security.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           max_age=600)

    api.add_middleware(RequestMetrics, metrics=metrics)  # outermost: the Guard's refusals count too

    @api.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @api.exception_handler(BackendUnavailable)
    async def _unavailable(_: Request, exc: BackendUnavailable) -> JSONResponse:
        return _error(503, "service_unavailable", f"{exc}; retry shortly", retry_after)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc))

    @api.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @api.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, "internal_error", f"{type(exc).__name__}")

    @api.post(f"/{API_VERSION}/search", response_model=SearchResponse, tags=["search"], dependencies=keyed,
              responses=errors, summary="Rank prior-art patents for 1-7 drawings (views of one design) and/or words")
    async def search_endpoint(
        request: Request,
        images: list[UploadFile] = File(default=[], description="1-7 drawings (PNG, TIFF, JPEG, ...)"),
        text: str | None = Form(default=None, max_length=config.max_text_chars, description="optional words"),
        crops: str | None = Form(default=None, description='JSON list, one per image: null or {"x0","y0","x1","y1"} (0..1)'),
        filters: str | None = Form(default=None, description="JSON SearchFilters"),
        k: int = Form(default=config.default_k, ge=1, le=config.max_k),
        group_by_patent: bool = Form(default=True),
        fusion: Literal["max", "rrf"] = Form(default=config.fusion),
    ) -> SearchResponse:
        t0 = time.perf_counter()
        asked_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        unknown = sorted((set((await request.form()).keys()) | set(request.query_params.keys())) - SEARCH_FIELDS)
        if unknown:
            raise ApiError(422, "unknown_field", f"unknown field(s) {[u[:40] for u in unknown[:5]]}; "
                                                 f"expected some of {sorted(SEARCH_FIELDS)}")
        text = (text or "").strip() or None
        if not images and not text:
            raise ApiError(422, "empty_query", "upload at least one drawing (field 'images') or give words ('text')")
        if len(images) > config.max_images:
            raise ApiError(422, "too_many_images", f"at most {config.max_images} images per query, got {len(images)}")
        crop_list = _parse_json("crops", crops, [None] * len(images))
        if not isinstance(crop_list, list) or len(crop_list) != len(images):
            raise ApiError(422, "invalid_crops", f"crops must be a JSON list with one entry per image ({len(images)})")
        try:
            boxes = [None if c is None else CropBox.model_validate(c) for c in crop_list]
            crop_objs = [None if b is None else b.to_crop() for b in boxes]
        except (ValidationError, ValueError) as exc:
            msg = _validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ApiError(422, "invalid_crops", f"bad crop box: {msg}") from exc
        try:
            filt_model = SearchFilters.model_validate(_parse_json("filters", filters, {}))
            filt = filt_model.to_filter()
        except ValidationError as exc:
            raise ApiError(422, "invalid_filters", _validation_message(exc)) from exc
        except ValueError as exc:
            raise ApiError(422, "invalid_filters", str(exc)) from exc
        if text and not info.text:
            raise ApiError(422, "text_not_supported", "this server does not embed words (text_queries: false)")

        uploads, described = [], []
        for upload, box, crop in zip(images, boxes, crop_objs, strict=True):
            data = await upload.read()
            name = upload.filename or "upload"
            if len(data) > max_bytes:
                raise ApiError(413, "upload_too_large", f"{name}: {len(data)} bytes exceeds {max_bytes}")
            uploads.append((data, crop))
            described.append(QueryImage(filename=name[:200], sha256=hashlib.sha256(data).hexdigest(),
                                        bytes=len(data), crop=box))

        emb = await backend.embed(uploads, text)
        if emb.error is not None:  # decoded (and refused) by the embedder, with the shared function
            name = described[emb.error_image or 0].filename
            raise ApiError(413 if "too large" in emb.error else 415, "bad_image", f"{name}: {emb.error}")
        metrics.embed_seconds.observe(emb.seconds)
        metrics.embed_batch_size.observe(emb.batch_size)
        vectors = np.asarray(emb.vectors, dtype=np.float32)
        metrics.query_vectors.observe(len(vectors))
        outcome = await backend.search(vectors, k, filt, fusion, config.rrf_k, group_by_patent)
        for src, secs in outcome.source_seconds.items():
            metrics.search_seconds.labels(src).observe(secs)
        for f in outcome.failures:
            metrics.source_failures.labels(f.source).inc()
        if not outcome.answered:
            why = "; ".join(f"{f.source}: {f.reason}" for f in outcome.failures)
            raise ApiError(503, "index_unavailable", f"no index answered: {why}"[:1000], retry_after)
        if outcome.partial:
            metrics.partial_results.inc()
        query_id = uuid.uuid4().hex
        record = SearchRecord(
            query_id=query_id, asked_at=asked_at, images=described, text=text, filters=filt_model,
            filter_expression=str(filt), k=k, group_by_patent=group_by_patent, fusion=fusion,
            model={"name": info.name, "version": info.version}, indexes=outcome.indexes,
            partial=outcome.partial, latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            embed_ms=round(emb.seconds * 1000, 2),
            search_ms={s: round(v * 1000, 2) for s, v in outcome.source_seconds.items()})
        principal: Principal = request.scope.get("state", {}).get("principal", ANONYMOUS)
        records.add({"asked_by": principal.name, **record.model_dump(mode="json")})
        return SearchResponse(
            query_id=query_id, partial=outcome.partial,
            failed_sources=[SourceFailureOut(source=f.source, reason=f.reason) for f in outcome.failures],
            results=[_patent_out(p, catalog) for p in outcome.patents],
            drawings=[_drawing_out(d, catalog) for d in outcome.drawings], record=record)

    @api.get(f"/{API_VERSION}/patents/{{patent_id}}", tags=["catalog"], summary="A patent with all its views",
             dependencies=keyed, responses=errors)
    async def patent_endpoint(patent_id: str) -> dict[str, Any]:
        found = catalog.patent(patent_id) if _ID_RE.fullmatch(patent_id) else None
        if found is None:
            raise ApiError(404, "unknown_patent", f"no patent {patent_id[:80]!r} in the catalog")
        for d in found["drawings"]:
            d["image_url"] = f"/{API_VERSION}/drawings/{d['drawing_id']}/image"
        return found

    @api.get(f"/{API_VERSION}/drawings/{{drawing_id}}/image", tags=["catalog"], dependencies=keyed,
             responses=errors, summary="The image of a drawing (by id only)", response_class=Response)
    async def image_endpoint(drawing_id: str) -> Response:
        if not _ID_RE.fullmatch(drawing_id) or catalog.drawing(drawing_id) is None:
            raise ApiError(404, "unknown_drawing", f"no drawing {drawing_id[:80]!r} in the catalog")
        try:
            got = await asyncio.to_thread(catalog.image_bytes, drawing_id)
        except Exception as exc:  # noqa: BLE001 - storage errors: the image is unavailable
            log.warning("image of %s unavailable: %s", drawing_id, exc)
            raise ApiError(404, "image_unavailable", f"the image of {drawing_id} cannot be read") from exc
        data, media = got  # type: ignore[misc]
        return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    @api.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        try:
            sources = await backend.ready()
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"ready": False, "reason": f"{type(exc).__name__}: {exc}"}, status_code=503)
        ok = any(sources.values())
        return JSONResponse({"ready": ok, "sources": sources, "model": {"name": info.name, "version": info.version},
                             "drawings": len(catalog.drawings)}, status_code=200 if ok else 503,
                            headers=None if ok else retry_after)

    @api.get(f"/{API_VERSION}/admin/index/versions", tags=["admin"], dependencies=keyed, responses=errors,
             summary="Per source: its alias, the live collection and every version (admin scope)")
    async def versions_endpoint() -> dict[str, Any]:
        return await backend.index_versions()

    @api.post(f"/{API_VERSION}/admin/index/swap", tags=["admin"], dependencies=keyed, responses=errors,
              summary="Point a source's alias at another version of its index, atomically (admin scope)")
    async def swap_endpoint(body: SwapRequest, request: Request) -> dict[str, Any]:
        names = [s.name for s in config.sources]
        if body.source not in names:
            raise ApiError(404, "unknown_source", f"no source {body.source[:64]!r}; sources: {names}")
        try:
            out = await backend.swap_alias(body.source, body.collection)
        except ValueError as exc:
            raise ApiError(422, "invalid_collection", str(exc)[:300]) from exc
        principal: Principal = request.scope.get("state", {}).get("principal", ANONYMOUS)
        log.warning("index swap by %s: source %s alias %s: %s -> %s", principal.name, body.source,
                    out.get("alias"), out.get("previous"), out.get("live"))
        return out

    @api.get(f"/{API_VERSION}/admin/records", tags=["admin"], dependencies=keyed, responses=errors,
             summary="The last search records of this ingress replica, oldest first (admin scope)")
    async def records_endpoint(limit: int = Query(default=1000, ge=1, le=1_000_000)) -> dict[str, Any]:
        got = records.last(limit)
        return {"count": len(got), "kept": records.kept, "records": got}

    @api.get("/v1/info", tags=["ops"], dependencies=keyed, responses=errors,
             summary="Model, limits and defaults (the page reads them)")
    async def info_endpoint() -> dict[str, Any]:
        return {"model": {"name": info.name, "version": info.version, "text": info.text},
                "limits": {"max_images": config.max_images, "max_upload_mb": config.max_upload_mb,
                           "max_k": config.max_k, "default_k": config.default_k},
                "fusion": config.fusion, "sources": [s.name for s in config.sources]}

    @api.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @api.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static_dir / "index.html")

    api.mount("/static", StaticFiles(directory=static_dir), name="static")

    return api
