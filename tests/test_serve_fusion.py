"""services.fusion: merge, fuse and group, against hand computations."""

from __future__ import annotations

import pytest

from services.fusion import Match, fuse, group_by_patent, merge_sources, rank_drawings, ranks


def m(d: str, p: str, s: float, src: str = "us") -> Match:
    return Match(d, p, s, src)


def test_ranks_descending_with_deterministic_ties():
    assert ranks({"a": 0.5, "b": 0.9, "c": 0.5}) == {"b": 1, "a": 2, "c": 3}


def test_fuse_max_takes_best_score_per_item():
    fused = fuse([{"a": 0.2, "b": 0.9}, {"a": 0.7}], "max")
    assert fused == {"a": 0.7, "b": 0.9}


def test_fuse_rrf_sums_reciprocal_ranks():
    fused = fuse([{"a": 0.2, "b": 0.9}, {"a": 0.7}], "rrf", rrf_k=10)
    # query 0: b rank 1, a rank 2; query 1: a rank 1
    assert fused["b"] == pytest.approx(1 / 11)
    assert fused["a"] == pytest.approx(1 / 12 + 1 / 11)


def test_fuse_rejects_unknown_method():
    with pytest.raises(ValueError, match="fusion"):
        fuse([{"a": 1.0}], "mean")  # type: ignore[arg-type]


def test_merge_sources_orders_by_score_and_keeps_sources_apart():
    us = [[m("d1", "P1", 0.9), m("d2", "P2", 0.5)], [m("d3", "P3", 0.4)]]
    eu = [[m("d1", "E1", 0.7, "eu"), m("d9", "E9", 0.95, "eu")], []]
    merged = merge_sources([us, eu])
    assert [(x.source, x.drawing_id) for x in merged[0]] == [("eu", "d9"), ("us", "d1"), ("eu", "d1"), ("us", "d2")]
    assert [x.drawing_id for x in merged[1]] == ["d3"]
    assert len(merge_sources([us, eu], limit=2)[0]) == 2


def test_merge_sources_keeps_best_duplicate():
    merged = merge_sources([[[m("d1", "P1", 0.3), m("d1", "P1", 0.8)]]])
    assert [(x.drawing_id, x.score) for x in merged[0]] == [("d1", 0.8)]


def test_group_by_patent_collects_all_matching_views():
    q0 = [m("P1-1", "P1", 0.9), m("P2-1", "P2", 0.8), m("P1-2", "P1", 0.3)]
    q1 = [m("P2-2", "P2", 0.95), m("P1-2", "P1", 0.6)]
    patents = group_by_patent([q0, q1], "max")
    assert [p.patent_id for p in patents] == ["P2", "P1"]
    p2, p1 = patents
    assert p2.score == pytest.approx(0.95)
    assert [d.drawing_id for d in p1.drawings] == ["P1-1", "P1-2"]  # best first
    p1_2 = p1.drawings[1]
    assert dict(p1_2.query_scores) == {0: 0.3, 1: 0.6}
    assert p1_2.score == pytest.approx(0.6)  # a drawing's score: its best over the query views


def test_group_by_patent_rrf_rewards_patents_found_by_several_views():
    # P1 is second for both views; P2 and P3 are first for one view each and absent from the other
    q0 = [m("P2-1", "P2", 0.99), m("P1-1", "P1", 0.8)]
    q1 = [m("P3-1", "P3", 0.99), m("P1-2", "P1", 0.8)]
    by_max = group_by_patent([q0, q1], "max")
    by_rrf = group_by_patent([q0, q1], "rrf", rrf_k=60)
    assert by_max[0].patent_id in {"P2", "P3"}
    assert by_rrf[0].patent_id == "P1"
    assert by_rrf[0].score == pytest.approx(2 / 62)


def test_group_by_patent_top_k_and_same_id_in_two_sources_stays_two_results():
    q0 = [m("d1", "P1", 0.9, "us"), m("d1", "P1", 0.8, "eu"), m("d2", "P2", 0.1)]
    patents = group_by_patent([q0], "max", k=2)
    assert [(p.source, p.patent_id) for p in patents] == [("us", "P1"), ("eu", "P1")]


def test_rank_drawings_fuses_per_drawing():
    q0 = [m("a", "P1", 0.5), m("b", "P2", 0.4)]
    q1 = [m("b", "P2", 0.9)]
    out = rank_drawings([q0, q1], "max", k=5)
    assert [(d.drawing_id, d.score) for d in out] == [("b", 0.9), ("a", 0.5)]
    assert rank_drawings([], "max") == []
