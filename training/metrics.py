"""Retrieval metrics of the field: mAP, Recall@k, hit@k and MRR@k, with two relevance definitions.

Protocol (see ``../shared/docs/domain.md``): every drawing queries the rest of the gallery
(itself excluded).

* ``relevance="patent"``: other drawings of the same patent are relevant.
* ``relevance="class"``: drawings of *other* patents with the same Locarno class are relevant;
  the query's own patent's drawings are removed from its gallery.

Queries with no relevant item in their gallery are skipped (and counted). Results are given
overall and per class-frequency bucket (head / medium / tail) of the query's class, per class
(:func:`per_class_report`), and with bootstrap intervals over queries (:func:`bootstrap_ci`,
:func:`paired_bootstrap`): the galleries of real drawings are small, so a difference means
something only when its interval excludes zero. Pure numpy; exact search in chunks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PerQuery:
    """Each answered query's metrics: ``index`` into the gallery, AP, Recall@k, hit@k, RR@k;
    ``skipped`` queries had no relevant item in their gallery."""

    index: np.ndarray
    ap: np.ndarray
    recall: np.ndarray
    hit: np.ndarray
    rr: np.ndarray
    skipped: int
    k: int

    def __len__(self) -> int:
        return len(self.index)

    def select(self, mask: np.ndarray) -> PerQuery:
        return PerQuery(self.index[mask], self.ap[mask], self.recall[mask], self.hit[mask], self.rr[mask], 0, self.k)

    def block(self) -> dict:
        """Means over these queries: ``mAP``, ``recall@k``, ``hit@k``, ``mrr@k`` and ``n``."""
        k = self.k
        if not len(self):
            return {"n": 0, "mAP": float("nan"), f"recall@{k}": float("nan"),
                    f"hit@{k}": float("nan"), f"mrr@{k}": float("nan")}
        return {"n": len(self), "mAP": float(self.ap.mean()), f"recall@{k}": float(self.recall.mean()),
                f"hit@{k}": float(self.hit.mean()), f"mrr@{k}": float(self.rr.mean())}


def per_query_metrics(
    embeddings: np.ndarray,
    patent_ids: Sequence[str],
    classes: Sequence[str | None],
    relevance: str = "patent",
    k: int = 10,
    query_mask: np.ndarray | None = None,
    chunk: int = 512,
    queries: np.ndarray | None = None,
) -> PerQuery:
    """Leave-one-out metrics of every query (see the module docstring for the protocol).

    The score of gallery item j for query i is the cosine of ``embeddings`` i and j; with
    ``queries`` (one query vector per gallery item, e.g. a drawing's image and words fused),
    the inner product ``queries[i] . embeddings[j]``, unnormalised: what the index computes."""
    if relevance not in ("patent", "class"):
        raise ValueError("relevance must be 'patent' or 'class'")
    if queries is None:
        emb = l2_normalise(embeddings)
        qv = emb
    else:
        emb = np.asarray(embeddings, dtype=np.float32)
        qv = np.asarray(queries, dtype=np.float32)
        if qv.shape != emb.shape:
            raise ValueError(f"queries {qv.shape} and embeddings {emb.shape} must have the same shape")
    n = len(emb)
    if not (len(patent_ids) == len(classes) == n):
        raise ValueError("embeddings, patent_ids and classes must have the same length")
    pat = np.asarray(_codes(patent_ids))
    cls = np.asarray(_codes(classes, none_unique=True))
    q_idx = np.arange(n) if query_mask is None else np.flatnonzero(query_mask)

    rows: list[tuple[int, float, float, float, float]] = []
    skipped = 0
    for start in range(0, len(q_idx), chunk):
        qs = q_idx[start:start + chunk]
        scores = qv[qs] @ emb.T  # (c, n)
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
            rows.append((int(q), average_precision(r), float(top.sum() / n_rel[row]), float(top.any()),
                         float(1.0 / (first[0] + 1)) if len(first) else 0.0))
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return PerQuery(a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3], a[:, 4], skipped, k)


def summarise(pq: PerQuery, classes: Sequence[str | None], relevance: str,
              bucket_of_class: dict[str, str] | None = None) -> dict:
    """``{"overall": {...}, "head": {...}, "medium": ..., "tail": ..., "queries", "skipped"}``
    of per-query metrics; buckets by the query's class (``bucket_of_class``; default: from
    ``classes``, the gallery's)."""
    if bucket_of_class is None:
        bucket_of_class = class_buckets(Counter(c for c in classes if c is not None))
    q_bucket = np.asarray([bucket_of_class.get(classes[i] or "", "") for i in pq.index], dtype=object)
    out = {"relevance": relevance, "k": pq.k, "queries": len(pq), "skipped": pq.skipped, "overall": pq.block()}
    for b in BUCKETS:
        out[b] = pq.select(q_bucket == b).block() if len(pq) else PerQuery(*([np.zeros(0)] * 5), 0, pq.k).block()
    return out


def retrieval_metrics(
    embeddings: np.ndarray,
    patent_ids: Sequence[str],
    classes: Sequence[str | None],
    relevance: str = "patent",
    k: int = 10,
    bucket_of_class: dict[str, str] | None = None,
    query_mask: np.ndarray | None = None,
    chunk: int = 512,
    queries: np.ndarray | None = None,
) -> dict:
    """Leave-one-out retrieval metrics over a gallery of ``embeddings`` (cosine; or scored by
    ``queries`` as in :func:`per_query_metrics`).

    ``query_mask`` selects which drawings act as queries (all by default); every drawing is
    in the gallery. Returns ``{"overall": {...}, "head": {...}, ..., "queries": n, "skipped": m}``
    where each block holds ``mAP``, ``recall@k``, ``hit@k``, ``mrr@k`` and ``n``.
    """
    pq = per_query_metrics(embeddings, patent_ids, classes, relevance, k, query_mask, chunk, queries)
    return summarise(pq, classes, relevance, bucket_of_class)


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (queries resampled with
    replacement): how much the mean would move with another sample of queries like these."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
                     ) -> dict[str, float]:
    """Bootstrap of the difference of means of two systems' per-query values on the SAME
    queries (resampled together): the difference, its interval, and the share of resamples in
    which ``a`` beats ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("paired values must have the same shape")
    if len(a) == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p_better": float("nan")}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    d = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(a.mean() - b.mean()), "lo": float(lo), "hi": float(hi), "p_better": float((d > 0).mean())}


def per_class_report(pq: PerQuery, classes: Sequence[str | None], gallery_counts: dict[str, int] | None = None,
                     train_counts: dict[str, int] | None = None, baseline: PerQuery | None = None) -> list[dict]:
    """One row per query class: ``class``, ``queries``, ``gallery`` (drawings of the class in
    the gallery), ``train`` (in the training set, if known), mAP / recall@k / mrr@k, and with a
    ``baseline`` on the same queries its mAP and ``below_baseline``; worst mAP first."""
    gallery_counts = gallery_counts if gallery_counts is not None else dict(Counter(c for c in classes if c))
    q_cls = np.asarray([classes[i] or "" for i in pq.index], dtype=object)
    base_ap: dict[int, float] = {}
    if baseline is not None:
        base_ap = dict(zip(baseline.index.tolist(), baseline.ap.tolist(), strict=True))
    rows = []
    for c in sorted(set(q_cls.tolist())):
        sel = pq.select(q_cls == c)
        b = sel.block()
        row = {"class": c, "queries": b["n"], "gallery": int(gallery_counts.get(c, 0)),
               "train": None if train_counts is None else int(train_counts.get(c, 0)),
               "mAP": b["mAP"], f"recall@{pq.k}": b[f"recall@{pq.k}"], f"mrr@{pq.k}": b[f"mrr@{pq.k}"]}
        if baseline is not None:
            ref = [base_ap[i] for i in sel.index.tolist() if i in base_ap]
            row["baseline_mAP"] = float(np.mean(ref)) if ref else float("nan")
            row["below_baseline"] = bool(ref) and row["mAP"] < row["baseline_mAP"]
        rows.append(row)
    rows.sort(key=lambda r: (r["mAP"], r["class"]))
    return rows


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
