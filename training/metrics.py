"""Retrieval metrics of the field: mAP, Recall@k, hit@k and MRR@k, with two relevance definitions.

Protocol (see ``../shared/docs/domain.md``): every drawing queries the rest of the gallery
(itself excluded).

* ``relevance="patent"``: other drawings of the same patent are relevant.
* ``relevance="class"``: drawings of *other* patents with the same Locarno class are relevant;
  the query's own patent's drawings are removed from its gallery.

Queries with no relevant item in their gallery are skipped (and counted). Results are given
overall and per class-frequency bucket (head / medium / tail) of the query's class.
Pure numpy; exact cosine search in chunks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

BUCKETS = ("head", "medium", "tail")


def class_buckets(class_counts: dict[str, int], head_share: float = 1 / 3,
                  tail_share: float = 1 / 3) -> dict[str, str]:
    """Assign each class to head / medium / tail by cumulative drawing share.

    Classes are sorted by frequency (descending, ties by name); head classes together hold the
    first ``head_share`` of drawings, tail classes the last ``tail_share``, medium the rest.
    A class is head if its cumulative share *before* it is below ``head_share``, tail if the
    cumulative share *before* it is at least ``1 - tail_share``.
    """
    total = sum(class_counts.values())
    out: dict[str, str] = {}
    if total == 0:
        return out
    before = 0
    for cls, n in sorted(class_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = before / total
        if share < head_share:
            out[cls] = "head"
        elif share >= 1 - tail_share:
            out[cls] = "tail"
        else:
            out[cls] = "medium"
        before += n
    return out


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def average_precision(relevant_in_rank_order: np.ndarray) -> float:
    """AP of one ranking given a boolean vector of relevance in rank order."""
    rel = np.asarray(relevant_in_rank_order, dtype=bool)
    n_rel = rel.sum()
    if n_rel == 0:
        return 0.0
    hits = np.cumsum(rel)
    ranks = np.arange(1, len(rel) + 1)
    return float((hits[rel] / ranks[rel]).sum() / n_rel)


def retrieval_metrics(
    embeddings: np.ndarray,
    patent_ids: Sequence[str],
    classes: Sequence[str | None],
    relevance: str = "patent",
    k: int = 10,
    bucket_of_class: dict[str, str] | None = None,
    query_mask: np.ndarray | None = None,
    chunk: int = 512,
) -> dict:
    """Leave-one-out retrieval metrics over a gallery of L2-normalised ``embeddings``.

    ``query_mask`` selects which drawings act as queries (all by default); every drawing is
    in the gallery. Returns ``{"overall": {...}, "head": {...}, ..., "queries": n, "skipped": m}``
    where each block holds ``mAP``, ``recall@k``, ``hit@k``, ``mrr@k`` and ``n``.
    """
    if relevance not in ("patent", "class"):
        raise ValueError("relevance must be 'patent' or 'class'")
    emb = l2_normalise(embeddings)
    n = len(emb)
    if not (len(patent_ids) == len(classes) == n):
        raise ValueError("embeddings, patent_ids and classes must have the same length")
    pat = np.asarray(_codes(patent_ids))
    cls = np.asarray(_codes(classes, none_unique=True))
    if bucket_of_class is None:
        counts = Counter(c for c in classes if c is not None)
        bucket_of_class = class_buckets(counts)
    q_idx = np.arange(n) if query_mask is None else np.flatnonzero(query_mask)

    per_query: list[tuple[int, float, float, float, float]] = []
    skipped = 0
    for start in range(0, len(q_idx), chunk):
        qs = q_idx[start:start + chunk]
        scores = emb[qs] @ emb.T  # (c, n)
        same_pat = pat[qs][:, None] == pat[None, :]
        if relevance == "patent":
            rel = same_pat.copy()
            excluded = np.zeros_like(rel)
        else:
            rel = (cls[qs][:, None] == cls[None, :]) & ~same_pat
            excluded = same_pat.copy()
        excluded[np.arange(len(qs)), qs] = True
        rel[np.arange(len(qs)), qs] = False
        scores = np.where(excluded, -np.inf, scores)
        order = np.argsort(-scores, axis=1, kind="stable")
        rel_sorted = np.take_along_axis(rel, order, axis=1)
        n_gallery = n - excluded.sum(axis=1)
        n_rel = rel.sum(axis=1)
        for row, q in enumerate(qs):
            if n_rel[row] == 0:
                skipped += 1
                continue
            r = rel_sorted[row, : n_gallery[row]]
            top = r[:k]
            first = np.flatnonzero(top)
            per_query.append((
                int(q),
                average_precision(r),
                float(top.sum() / n_rel[row]),
                float(top.any()),
                float(1.0 / (first[0] + 1)) if len(first) else 0.0,
            ))

    def block(rows: Iterable[tuple[int, float, float, float, float]]) -> dict:
        rows = list(rows)
        if not rows:
            return {"n": 0, "mAP": float("nan"), f"recall@{k}": float("nan"),
                    f"hit@{k}": float("nan"), f"mrr@{k}": float("nan")}
        a = np.asarray([r[1:] for r in rows], dtype=np.float64)
        return {"n": len(rows), "mAP": float(a[:, 0].mean()), f"recall@{k}": float(a[:, 1].mean()),
                f"hit@{k}": float(a[:, 2].mean()), f"mrr@{k}": float(a[:, 3].mean())}

    out = {"relevance": relevance, "k": k, "queries": len(per_query), "skipped": skipped,
           "overall": block(per_query)}
    for b in BUCKETS:
        out[b] = block(r for r in per_query if bucket_of_class.get(classes[r[0]] or "", "") == b)
    return out


def _codes(values: Sequence[str | None], none_unique: bool = False) -> list[int]:
    """Integer codes for labels; with ``none_unique`` every missing label is its own code
    (so two drawings without a class are never 'same class')."""
    table: dict[str, int] = {}
    out = []
    nxt = -1
    for v in values:
        if v is None and none_unique:
            out.append(nxt)
            nxt -= 1
        else:
            out.append(table.setdefault(str(v), len(table)))
    return out
