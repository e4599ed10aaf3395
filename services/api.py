"""The versioned JSON API and the examiner's page, as a FastAPI app over a query backend.

:func:`create_api` builds the app from its collaborators (passed in): a :class:`QueryBackend`
(the Ray Serve deployments' handles in production, in-process objects in tests and the
benchmark's baseline), the :class:`~services.catalog.Catalog`, the :class:`ServeConfig` and
:class:`~services.metrics.ServeMetrics`.

Endpoints: ``POST /v1/search``, ``GET /v1/patents/{id}``, ``GET /v1/drawings/{id}/image``,
``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /`` (the page), ``/openapi.json``.
Bad input is answered ``{"error": {"code", "message"}}`` with a 4xx status, never a 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator

from priorsight.config import ServeConfig
from priorsight.images import Crop
from priorsight.milvus import Filter, build_filter
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


class QueryBackend(Protocol):
    async def embed(self, images: list[tuple[bytes, Crop | None]], text: str | None) -> EmbedAnswer: ...

    async def search(self, vectors: np.ndarray, k: int, filter: Filter, fusion: str, rrf_k: int,
                     group: bool) -> SearchOutcome: ...

    async def ready(self) -> dict[str, bool]: ...


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
    date_from: str | None = None  # ISO date, inclusive (grant date)
    date_to: str | None = None
    views: list[str] | None = None  # perspective, front, rear, left, right, top, bottom, other
    sources: list[str] | None = None  # patent offices / corpora

    @field_validator("locarno_classes", "views", "sources", mode="before")
    @classmethod
    def _none_if_empty(cls, v: Any) -> Any:
        return None if v in ([], "") else v

    def to_filter(self) -> Filter:
        return build_filter(locarno_classes=self.locarno_classes, date_from=self.date_from or None,
                            date_to=self.date_to or None, views=self.views, sources=self.sources)


class DrawingResult(BaseModel):
    drawing_id: str
    patent_id: str
    score: float
    query_scores: dict[int, float]  # query vector index (images in order, then words) -> cosine
    view: str | None = None
    figure_label: str | None = None
    image_url: str


class PatentResult(BaseModel):
    patent_id: str
    source: str
    score: float
    title: str = ""
    locarno_class: str | None = None
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


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


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
                        grant_date=grant, drawings=[_drawing_out(d, catalog) for d in p.drawings])


# -- the app -----------------------------------------------------------------------------------

def create_api(backend: QueryBackend, info: ModelInfo, catalog: Catalog, config: ServeConfig,
               metrics: ServeMetrics | None = None, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The app; ``info`` describes the model the backend embeds with (its preprocessing size)."""
    metrics = metrics or ServeMetrics()
    max_bytes = int(config.max_upload_mb * 1024 * 1024)
    api = FastAPI(title="PriorSight", version="1.0",
                  description="Image-based prior-art search over patent drawings (query serving).",
                  responses={400: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
                             422: {"model": ErrorResponse}})
    api.state.metrics = metrics

    @api.middleware("http")
    async def guard_and_measure(request: Request, call_next):
        t0 = time.perf_counter()
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                response = _error(411, "length_required", "uploads need a Content-Length header")
            elif not length.isdigit():
                response = _error(400, "bad_content_length", "Content-Length must be a number")
            elif int(length) > max_bytes:
                response = _error(413, "upload_too_large",
                                  f"upload of {int(length)} bytes exceeds the limit of {max_bytes} bytes")
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None) or ("static" if request.url.path.startswith("/static") else "other")
        metrics.request_seconds.labels(endpoint, request.method, str(response.status_code)).observe(
            time.perf_counter() - t0)
        if response.status_code >= 400:
            metrics.errors.labels(endpoint, str(response.status_code)).inc()
        return response

    @api.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

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

    @api.post(f"/{API_VERSION}/search", response_model=SearchResponse, tags=["search"],
              summary="Rank prior-art patents for 1-7 drawings (views of one design) and/or words")
    async def search_endpoint(
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
            raise ApiError(503, "index_unavailable", f"no index answered: {why}")
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
        return SearchResponse(
            query_id=query_id, partial=outcome.partial,
            failed_sources=[SourceFailureOut(source=f.source, reason=f.reason) for f in outcome.failures],
            results=[_patent_out(p, catalog) for p in outcome.patents],
            drawings=[_drawing_out(d, catalog) for d in outcome.drawings], record=record)

    @api.get(f"/{API_VERSION}/patents/{{patent_id}}", tags=["catalog"], summary="A patent with all its views")
    async def patent_endpoint(patent_id: str) -> dict[str, Any]:
        found = catalog.patent(patent_id) if _ID_RE.fullmatch(patent_id) else None
        if found is None:
            raise ApiError(404, "unknown_patent", f"no patent {patent_id[:80]!r} in the catalog")
        for d in found["drawings"]:
            d["image_url"] = f"/{API_VERSION}/drawings/{d['drawing_id']}/image"
        return found

    @api.get(f"/{API_VERSION}/drawings/{{drawing_id}}/image", tags=["catalog"],
             summary="The image of a drawing (by id only)", response_class=Response)
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
                             "drawings": len(catalog.drawings)}, status_code=200 if ok else 503)

    @api.get("/v1/info", tags=["ops"], summary="Model, limits and defaults (the page reads them)")
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
