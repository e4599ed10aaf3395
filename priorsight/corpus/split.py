"""Held-out splits by patent: no patent contributes drawings to both sides.

Plain splits assign each patent by a seeded hash (stable, order-independent). Stratified splits
(``stratify``: a :class:`~priorsight.classes.ClassScheme`, e.g. the US main class) hold out the
same share of every class's patents: per class, its patents sorted by the same seeded hash, the
first ``round(n * test_fraction)`` of them held out, but never the last one (a class with one
patent stays in training). That is the validation protocol of real long-tailed corpora
(docs/training.md): a fixed, seeded split that training never sees, with every class that can
be held out represented on both sides.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from priorsight.classes import ClassScheme
from priorsight.manifest import DRAWING_SCHEMA, read_manifest, write_table
from priorsight.storage import Storage, join


def _hash(patent_id: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}:{patent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def patent_in_test(patent_id: str, test_fraction: float, seed: int) -> bool:
    """A stable, order-independent assignment: hash(seed, patent) < fraction."""
    return _hash(patent_id, seed) < test_fraction


def stratified_test_patents(patent_classes: dict[str, str | None], test_fraction: float, seed: int) -> set[str]:
    """The held-out patents of a stratified split: per class, ``round(n * test_fraction)``
    (half up) of its ``n`` patents, at most ``n - 1``, chosen by the seeded hash; patents
    without a class by the plain hash rule."""
    by_class: dict[str | None, list[str]] = defaultdict(list)
    for patent, cls in patent_classes.items():
        by_class[cls].append(patent)
    test: set[str] = set()
    for cls, patents in by_class.items():
        if cls is None:
            test.update(p for p in patents if patent_in_test(p, test_fraction, seed))
            continue
        ordered = sorted(patents, key=lambda p: (_hash(p, seed), p))
        n_test = min(len(ordered) - 1, math.floor(len(ordered) * test_fraction + 0.5))
        test.update(ordered[:n_test])
    return test


def split_corpus(corpus: str, out: str, test_fraction: float = 0.2, seed: int = 0,
                 storage: Storage | None = None, stratify: ClassScheme | None = None) -> dict[str, int]:
    """Write ``OUT/train/manifest.parquet`` and ``OUT/test/manifest.parquet`` (images stay where
    the manifest points). Returns the drawing and patent counts of each side (and with
    ``stratify``, the classes on each side)."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    storage = storage or Storage()
    table = read_manifest(corpus, storage)
    patents = table.column("patent_id").to_pylist()
    if stratify is None:
        in_test = pa.array([patent_in_test(p, test_fraction, seed) for p in patents])
    else:
        classes: dict[str, str | None] = {}
        for p, row in zip(patents, table.to_pylist(), strict=True):
            classes.setdefault(p, stratify.of(row))  # a patent's class: its first drawing's
        held = stratified_test_patents(classes, test_fraction, seed)
        in_test = pa.array([p in held for p in patents])
    counts: dict[str, int] = {}
    for name, mask in (("train", pc.invert(in_test)), ("test", in_test)):
        part = table.filter(mask).cast(DRAWING_SCHEMA)
        write_table(part, join(out, name, "manifest.parquet"), storage)
        counts[f"{name}_drawings"] = part.num_rows
        counts[f"{name}_patents"] = len(set(part.column("patent_id").to_pylist()))
        if stratify is not None:
            counts[f"{name}_classes"] = len({c for c in stratify.labels(part.to_pylist()) if c})
    return counts
