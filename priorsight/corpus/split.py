"""Held-out splits by patent: no patent contributes drawings to both sides."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from priorsight.manifest import DRAWING_SCHEMA, read_manifest, write_table
from priorsight.storage import Storage, join


def patent_in_test(patent_id: str, test_fraction: float, seed: int) -> bool:
    """A stable, order-independent assignment: hash(seed, patent) < fraction."""
    h = hashlib.blake2b(f"{seed}:{patent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < test_fraction


def split_corpus(corpus: str, out: str, test_fraction: float = 0.2, seed: int = 0,
                 storage: Storage | None = None) -> dict[str, int]:
    """Write ``OUT/train/manifest.parquet`` and ``OUT/test/manifest.parquet`` (images stay where
    the manifest points). Returns the drawing and patent counts of each side."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    storage = storage or Storage()
    table = read_manifest(corpus, storage)
    in_test = pa.array([patent_in_test(p, test_fraction, seed) for p in table.column("patent_id").to_pylist()])
    counts = {}
    for name, mask in (("train", pc.invert(in_test)), ("test", in_test)):
        part = table.filter(mask).cast(DRAWING_SCHEMA)
        write_table(part, join(out, name, "manifest.parquet"), storage)
        counts[f"{name}_drawings"] = part.num_rows
        counts[f"{name}_patents"] = len(set(part.column("patent_id").to_pylist()))
    return counts
