"""Pure ranking functions of the searcher: merge sources, fuse query views, group by patent.

A query has one or more *query vectors* (one per uploaded drawing view, one for the words).
Each vector gets a ranked list of :class:`Match` from every source (Milvus collection/cluster).

* :func:`merge_sources`: per query vector, the lists of all sources merged by score;
* :func:`fuse`: several query vectors' scores of the same item combined, by ``max`` (the best
  view decides) or reciprocal-rank fusion (``rrf``: sum of ``1 / (rrf_k + rank)``, robust when
  the views' score scales differ, e.g. words vs drawings);
* :func:`rank_drawings` / :func:`group_by_patent`: the ranked drawings, or the ranked patents
  with all their matching views.

No I/O here: everything is a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FusionMethod = Literal["max", "rrf"]
FUSION_METHODS: tuple[str, ...] = ("max", "rrf")


@dataclass(frozen=True)
class Match:
    """One ANN hit: a drawing found by one query vector in one source."""

    drawing_id: str
    patent_id: str
    score: float  # cosine similarity, higher is closer
    source: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RankedDrawing:
    drawing_id: str
    patent_id: str
    source: str
    score: float  # fused score
    #: best cosine similarity per query vector that found it (query index -> score)
    query_scores: Mapping[int, float]
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RankedPatent:
    patent_id: str
    source: str
    score: float  # fused score
    drawings: tuple[RankedDrawing, ...]  # its matching views, best first


def merge_sources(per_source: Sequence[Sequence[Sequence[Match]]], limit: int | None = None) -> list[list[Match]]:
    """``per_source[s][q]`` = source s's hits for query vector q -> per query vector, all
    sources' hits by descending score (a drawing found twice in one source kept once, at its
    best score), at most ``limit`` per query vector."""
    n_queries = max((len(s) for s in per_source), default=0)
    out: list[list[Match]] = []
    for q in range(n_queries):
        best: dict[tuple[str, str], Match] = {}
        for source_hits in per_source:
            for m in source_hits[q] if q < len(source_hits) else ():
                key = (m.source, m.drawing_id)
                if key not in best or m.score > best[key].score:
                    best[key] = m
        merged = sorted(best.values(), key=lambda m: (-m.score, m.source, m.drawing_id))
        out.append(merged[:limit] if limit is not None else merged)
    return out


def ranks(scores: Mapping[Hashable, float]) -> dict[Hashable, int]:
    """1-based ranks by descending score (ties broken by key order, deterministic)."""
    ordered = sorted(scores, key=lambda key: (-scores[key], str(key)))
    return {key: i + 1 for i, key in enumerate(ordered)}


def fuse(per_query: Sequence[Mapping[Hashable, float]], method: FusionMethod = "max", rrf_k: int = 60
         ) -> dict[Hashable, float]:
    """Combine several query vectors' scores of the same items.

    ``max``: an item's score is its best score over the query vectors. ``rrf``: the sum over
    the query vectors that found it of ``1 / (rrf_k + rank)`` (rank 1 = best of that vector)."""
    if method not in FUSION_METHODS:
        raise ValueError(f"fusion must be one of {FUSION_METHODS}, got {method!r}")
    if rrf_k < 1:
        raise ValueError("rrf_k must be >= 1")
    fused: dict[Hashable, float] = {}
    for scores in per_query:
        if method == "max":
            for key, s in scores.items():
                fused[key] = max(s, fused.get(key, float("-inf")))
        else:
            for key, r in ranks(scores).items():
                fused[key] = fused.get(key, 0.0) + 1.0 / (rrf_k + r)
    return fused


def _drawings(per_query: Sequence[Sequence[Match]]) -> tuple[dict[tuple[str, str], Match], list[dict[tuple[str, str], float]]]:
    """The first-seen Match of every (source, drawing) and per query vector its best score."""
    first: dict[tuple[str, str], Match] = {}
    scores: list[dict[tuple[str, str], float]] = []
    for hits in per_query:
        best: dict[tuple[str, str], float] = {}
        for m in hits:
            key = (m.source, m.drawing_id)
            first.setdefault(key, m)
            best[key] = max(m.score, best.get(key, float("-inf")))
        scores.append(best)
    return first, scores


def rank_drawings(per_query: Sequence[Sequence[Match]], method: FusionMethod = "max", rrf_k: int = 60,
                  k: int | None = None) -> list[RankedDrawing]:
    """The drawings found by any query vector, ranked by fused score (top ``k``)."""
    first, scores = _drawings(per_query)
    fused = fuse(scores, method, rrf_k)
    out = [
        RankedDrawing(m.drawing_id, m.patent_id, m.source, float(fused[key]),
                      {q: s[key] for q, s in enumerate(scores) if key in s}, m.fields)
        for key, m in first.items()
    ]
    out.sort(key=lambda d: (-d.score, d.source, d.drawing_id))
    return out[:k] if k is not None else out


def group_by_patent(per_query: Sequence[Sequence[Match]], method: FusionMethod = "max", rrf_k: int = 60,
                    k: int | None = None) -> list[RankedPatent]:
    """Patents ranked by fused score, each with all its matching drawings (best first).

    Per query vector a patent scores its best drawing's similarity; the query vectors' patent
    scores (or ranks, for ``rrf``) are then fused. So three views of one uploaded design that
    each find a different view of the same patent all count for that patent."""
    first, scores = _drawings(per_query)
    drawing_fused = fuse(scores, "max", rrf_k)
    patent_scores: list[dict[tuple[str, str], float]] = []
    for s in scores:
        best: dict[tuple[str, str], float] = {}
        for key, v in s.items():
            pkey = (first[key].source, first[key].patent_id)
            best[pkey] = max(v, best.get(pkey, float("-inf")))
        patent_scores.append(best)
    fused = fuse(patent_scores, method, rrf_k)
    members: dict[tuple[str, str], list[RankedDrawing]] = {}
    for key, m in first.items():
        members.setdefault((m.source, m.patent_id), []).append(
            RankedDrawing(m.drawing_id, m.patent_id, m.source, float(drawing_fused[key]),
                          {q: s[key] for q, s in enumerate(scores) if key in s}, m.fields))
    out = [
        RankedPatent(pid, source, float(fused[(source, pid)]),
                     tuple(sorted(ds, key=lambda d: (-d.score, d.drawing_id))))
        for (source, pid), ds in members.items()
    ]
    out.sort(key=lambda p: (-p.score, p.source, p.patent_id))
    return out[:k] if k is not None else out


def matches_from_hits(hits: Iterable[Any], source: str) -> list[Match]:
    """:class:`priorsight.milvus.Hit` objects of one query vector as :class:`Match` es."""
    return [Match(h.drawing_id, str(h.fields.get("patent_id", "")), float(h.score), source, dict(h.fields))
            for h in hits]
