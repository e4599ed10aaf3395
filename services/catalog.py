"""Drawing and patent metadata for results, read once from the manifest.

Images are served by drawing id only: :meth:`Catalog.image_bytes` reads the manifest's
``image_uri`` of that id; no client-named path ever reaches storage. As a second wall, an
``image_uri`` is only read if it lies under one of the image roots (local directories, after
resolving ``..`` and symlinks, or ``s3://bucket/prefix``): a manifest row pointing elsewhere
(another bucket, ``/etc``) is refused.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import posixpath
from dataclasses import dataclass
from typing import Any

from priorsight.manifest import read_manifest
from priorsight.storage import Storage, is_s3, split_s3

log = logging.getLogger(__name__)

COLUMNS = ["drawing_id", "patent_id", "image_uri", "source", "figure_number", "figure_label", "view",
           "view_text", "object_name", "locarno_class", "us_class", "grant_date", "title", "figure_description"]
#: fields shown to clients (never the storage location)
PUBLIC = [c for c in COLUMNS if c != "image_uri"]


class OutsideImageRoots(PermissionError):
    """An image URI outside the configured image roots."""


def _s3_key_ok(key: str) -> bool:
    return not any(part in ("..", ".") for part in key.split("/")) and "\\" not in key


def normalise_root(root: str) -> str:
    if is_s3(root):
        bucket, key = split_s3(root if root.endswith("/") else root + "/")
        return f"s3://{bucket}/{key}".rstrip("/") + "/"
    return os.path.realpath(root).rstrip("/") + "/"


def within_roots(uri: str, roots: list[str]) -> bool:
    """Whether ``uri`` is inside one of ``roots`` (normalised by :func:`normalise_root`)."""
    if is_s3(uri):
        try:
            bucket, key = split_s3(uri)
        except Exception:  # noqa: BLE001 - malformed: not inside anything
            return False
        if not _s3_key_ok(key):
            return False
        full = f"s3://{bucket}/{key}"
        return any(r.startswith("s3://") and full.startswith(r) for r in roots)
    if "\x00" in uri:
        return False
    real = os.path.realpath(uri)
    return any(not r.startswith("s3://") and (real + "/").startswith(r) and real + "/" != r for r in roots)


def derived_roots(uris: list[str]) -> list[str]:
    """The common root of local image URIs and, per bucket, the common prefix of S3 ones."""
    local = [os.path.dirname(os.path.realpath(u)) for u in uris if not is_s3(u)]
    roots = [normalise_root(os.path.commonpath(local))] if local else []
    by_bucket: dict[str, list[str]] = {}
    for u in uris:
        if is_s3(u):
            try:
                bucket, key = split_s3(u)
            except Exception:  # noqa: BLE001
                continue
            by_bucket.setdefault(bucket, []).append(posixpath.dirname(key))
    for bucket, keys in by_bucket.items():
        prefix = posixpath.commonpath(keys) if all(keys) else ""
        roots.append(f"s3://{bucket}/{prefix}".rstrip("/") + "/")
    return roots


@dataclass(frozen=True)
class DrawingMeta:
    fields: dict[str, Any]
    image_uri: str

    @property
    def public(self) -> dict[str, Any]:
        return {k: self.fields.get(k) for k in PUBLIC}


class Catalog:
    """drawing_id -> metadata and patent_id -> its drawing ids (figure order)."""

    def __init__(self, rows: list[dict[str, Any]], storage: Storage | None = None,
                 image_roots: list[str] | None = None):
        self.storage = storage or Storage()
        self.drawings: dict[str, DrawingMeta] = {}
        self.patents: dict[str, list[str]] = {}
        for r in rows:
            self.drawings[r["drawing_id"]] = DrawingMeta({k: r.get(k) for k in COLUMNS}, r["image_uri"])
            self.patents.setdefault(r["patent_id"], []).append(r["drawing_id"])
        for ids in self.patents.values():
            ids.sort(key=lambda d: (self.drawings[d].fields.get("figure_number") or 0, d))
        uris = [m.image_uri for m in self.drawings.values()]
        self.image_roots = ([normalise_root(r) for r in image_roots] if image_roots is not None
                            else derived_roots(uris))
        outside = sum(not within_roots(u, self.image_roots) for u in uris)
        if outside:
            log.warning("%d drawing image(s) lie outside the image roots %s and will not be served",
                        outside, self.image_roots)

    @classmethod
    def load(cls, manifest: str, storage: Storage | None = None, image_roots: list[str] | None = None) -> Catalog:
        storage = storage or Storage()
        table = read_manifest(manifest, storage)  # a manifest from before a column existed lacks it
        table = table.select([c for c in COLUMNS if c in table.column_names])
        log.info("catalog: %d drawings from %s", table.num_rows, manifest)
        return cls(table.to_pylist(), storage, image_roots)

    def drawing(self, drawing_id: str) -> DrawingMeta | None:
        return self.drawings.get(drawing_id)

    def patent(self, patent_id: str) -> dict[str, Any] | None:
        ids = self.patents.get(patent_id)
        if not ids:
            return None
        first = self.drawings[ids[0]].fields
        return {"patent_id": patent_id, "title": first.get("title") or "", "locarno_class": first.get("locarno_class"),
                "us_class": first.get("us_class"), "grant_date": first.get("grant_date"), "source": first.get("source"),
                "drawings": [self.drawings[d].public for d in ids]}

    def image_bytes(self, drawing_id: str) -> tuple[bytes, str] | None:
        """The image of a drawing id and its media type, or None for an unknown id."""
        meta = self.drawings.get(drawing_id)
        if meta is None:
            return None
        if not within_roots(meta.image_uri, self.image_roots):
            raise OutsideImageRoots(f"the image of {drawing_id} lies outside the image roots")
        media = mimetypes.guess_type(meta.image_uri)[0] or "application/octet-stream"
        return self.storage.read_bytes(meta.image_uri), media
