"""Drawing and patent metadata for results, read once from the manifest.

Images are served by drawing id only: :meth:`Catalog.image_bytes` reads the manifest's
``image_uri`` of that id; no client-named path ever reaches storage.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any

from priorsight.manifest import read_manifest
from priorsight.storage import Storage

log = logging.getLogger(__name__)

COLUMNS = ["drawing_id", "patent_id", "image_uri", "source", "figure_number", "figure_label", "view",
           "view_text", "object_name", "locarno_class", "grant_date", "title", "figure_description"]
#: fields shown to clients (never the storage location)
PUBLIC = [c for c in COLUMNS if c != "image_uri"]


@dataclass(frozen=True)
class DrawingMeta:
    fields: dict[str, Any]
    image_uri: str

    @property
    def public(self) -> dict[str, Any]:
        return {k: self.fields.get(k) for k in PUBLIC}


class Catalog:
    """drawing_id -> metadata and patent_id -> its drawing ids (figure order)."""

    def __init__(self, rows: list[dict[str, Any]], storage: Storage | None = None):
        self.storage = storage or Storage()
        self.drawings: dict[str, DrawingMeta] = {}
        self.patents: dict[str, list[str]] = {}
        for r in rows:
            self.drawings[r["drawing_id"]] = DrawingMeta({k: r.get(k) for k in COLUMNS}, r["image_uri"])
            self.patents.setdefault(r["patent_id"], []).append(r["drawing_id"])
        for ids in self.patents.values():
            ids.sort(key=lambda d: (self.drawings[d].fields.get("figure_number") or 0, d))

    @classmethod
    def load(cls, manifest: str, storage: Storage | None = None) -> Catalog:
        storage = storage or Storage()
        table = read_manifest(manifest, storage, columns=COLUMNS)
        log.info("catalog: %d drawings from %s", table.num_rows, manifest)
        return cls(table.to_pylist(), storage)

    def drawing(self, drawing_id: str) -> DrawingMeta | None:
        return self.drawings.get(drawing_id)

    def patent(self, patent_id: str) -> dict[str, Any] | None:
        ids = self.patents.get(patent_id)
        if not ids:
            return None
        first = self.drawings[ids[0]].fields
        return {"patent_id": patent_id, "title": first.get("title") or "", "locarno_class": first.get("locarno_class"),
                "grant_date": first.get("grant_date"), "source": first.get("source"),
                "drawings": [self.drawings[d].public for d in ids]}

    def image_bytes(self, drawing_id: str) -> tuple[bytes, str] | None:
        """The image of a drawing id and its media type, or None for an unknown id."""
        meta = self.drawings.get(drawing_id)
        if meta is None:
            return None
        media = mimetypes.guess_type(meta.image_uri)[0] or "application/octet-stream"
        return self.storage.read_bytes(meta.image_uri), media
