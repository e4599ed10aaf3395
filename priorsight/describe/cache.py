"""The description cache: LLM descriptions of a patent, keyed by (content hash of its metadata,
model, prompt version and content, truth-filter mode and word lists, sampling settings).

A cache is a directory (local or ``s3://``) of Parquet shards, each written atomically by one
worker after one batch. Re-running a killed job reads the shards, skips every patent already in
them and generates only the rest; a key found in several shards resolves to the newest shard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from priorsight.storage import NotFound, Storage, join

log = logging.getLogger(__name__)

SHARD_PREFIX = "shard-"

CACHE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("patent_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("n_requested", pa.int32()),
        pa.field("descriptions", pa.list_(pa.string())),
        pa.field("n_raw", pa.int32()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("seconds", pa.float64()),
        pa.field("created", pa.string()),
    ]
)


def cache_key(content_hash: str, model: str, prompt_version: str, prompt_fingerprint: str,
              temperature: float, max_tokens: int, seed: int) -> str:
    """What decides an LLM description: the metadata, the model, the prompt and sampling."""
    payload = {
        "content": content_hash, "model": model, "prompt": prompt_version, "prompt_fp": prompt_fingerprint,
        "temperature": round(float(temperature), 4), "max_tokens": int(max_tokens), "seed": int(seed),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    key: str
    patent_id: str
    model: str
    prompt_version: str
    n_requested: int
    descriptions: tuple[str, ...]
    n_raw: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    created: str = ""

    def satisfies(self, n_wanted: int) -> bool:
        """Good for a request of ``n_wanted`` descriptions (it was asked for at least as many;
        when filters left fewer, asking again would not give more)."""
        return self.n_requested >= n_wanted

    def to_row(self) -> dict:
        return {**self.__dict__, "descriptions": list(self.descriptions)}

    @classmethod
    def from_row(cls, row: dict) -> CacheEntry:
        return cls(**{**row, "descriptions": tuple(row.get("descriptions") or ())})


class DescriptionCache:
    """Read all shards once (:meth:`load`); append shards (:meth:`write`)."""

    def __init__(self, root: str, storage: Storage | None = None):
        self.root = str(root)
        self.storage = storage or Storage()

    def shards(self) -> list[str]:
        try:
            return sorted(o.uri for o in self.storage.list(self.root)
                          if o.uri.rsplit("/", 1)[-1].startswith(SHARD_PREFIX) and o.uri.endswith(".parquet"))
        except NotFound:
            return []

    def load(self) -> dict[str, CacheEntry]:
        """Every entry by key (shard names sort by time, so the newest wins)."""
        entries: dict[str, CacheEntry] = {}
        for uri in self.shards():
            try:
                with self.storage.open_read(uri) as f:
                    table = pq.read_table(f)
            except (OSError, pa.ArrowInvalid) as exc:
                log.warning("skipping unreadable cache shard %s: %s", uri, exc)
                continue
            for row in table.to_pylist():
                entries[row["key"]] = CacheEntry.from_row(row)
        return entries

    def write(self, entries: Iterable[CacheEntry]) -> str | None:
        """Write one shard atomically; returns its URI (``None`` when there is nothing)."""
        rows = [e.to_row() for e in entries]
        if not rows:
            return None
        now = dt.datetime.now(dt.UTC)
        for r in rows:
            r["created"] = r["created"] or now.isoformat(timespec="seconds")
        name = f"{SHARD_PREFIX}{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        uri = join(self.root, name)
        with self.storage.open_write(uri) as f:
            pq.write_table(pa.Table.from_pylist(rows, schema=CACHE_SCHEMA), f, compression="zstd")
        return uri
