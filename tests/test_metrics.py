"""Retrieval metrics against rankings computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    average_precision,
    bootstrap_ci,
    class_buckets,
    paired_bootstrap,
    per_class_report,
    per_query_metrics,
    retrieval_metrics,
)

# cosines: 0-1 .8, 0-2 .6, 0-3 0, 1-2 .96, 1-3 .6, 2-3 .8
EMB = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=np.float32)
PATENTS = ["A", "A", "B", "C"]
CLASSES = ["x", "x", "x", "y"]


def test_average_precision_by_hand():
    assert average_precision(np.array([0, 1, 0, 1])) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert average_precision(np.array([1, 1, 0])) == 1.0
    assert average_precision(np.array([0, 0])) == 0.0


def test_same_patent_relevance():
    # q0 ranks 1,2,3 -> first relevant (1) at rank 1; q1 ranks 2,0,3 -> relevant (0) at rank 2;
    # q2 and q3 have no other view of their patent: skipped.
    m = retrieval_metrics(EMB, PATENTS, CLASSES, relevance="patent")
    assert (m["queries"], m["skipped"]) == (2, 2)
    assert m["overall"]["mAP"] == pytest.approx((1 + 0.5) / 2)
    assert m["overall"]["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert m["overall"]["recall@10"] == 1.0 and m["overall"]["hit@10"] == 1.0


def test_same_class_relevance_excludes_own_patent():
    # q0: gallery {2,3} (1 is its own patent) -> 2 relevant at rank 1 -> AP 1
    # q1: gallery {2,3} -> 2 at rank 1 -> AP 1
    # q2: ranks 1 (.96), 3 (.8), 0 (.6); relevant {0,1} at ranks 1 and 3 -> AP (1 + 2/3) / 2
    # q3: no other drawing of class y -> skipped
    m = retrieval_metrics(EMB, PATENTS, CLASSES, relevance="class")
    assert (m["queries"], m["skipped"]) == (3, 1)
    assert m["overall"]["mAP"] == pytest.approx((1 + 1 + (1 + 2 / 3) / 2) / 3)
    m2 = retrieval_metrics(EMB, PATENTS, CLASSES, relevance="class", k=2)
    assert m2["overall"]["recall@2"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m2["overall"]["mrr@2"] == 1.0
    assert m2["head"]["n"] == 3 and m2["tail"]["n"] == 0


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 8))
    pats = [f"p{i // 3}" for i in range(50)]
    cls = [f"c{i % 4}" for i in range(50)]
    a = retrieval_metrics(emb, pats, cls, "class", chunk=7)
    b = retrieval_metrics(emb, pats, cls, "class", chunk=512)
    assert a == b


def test_missing_classes_are_never_relevant():
    m = retrieval_metrics(EMB, PATENTS, ["x", "x", None, None], relevance="class")
    assert m["queries"] == 0 and m["skipped"] == 4


def test_class_buckets_by_cumulative_share():
    counts = {"a": 50, "b": 20, "c": 10, "d": 10, "e": 5, "f": 5}
    assert class_buckets(counts) == {"a": "head", "b": "medium", "c": "tail", "d": "tail", "e": "tail", "f": "tail"}
    assert class_buckets({}) == {}


def test_per_query_values_are_what_the_summary_averages():
    pq = per_query_metrics(EMB, PATENTS, CLASSES, relevance="class")
    assert pq.index.tolist() == [0, 1, 2] and pq.skipped == 1
    assert pq.ap.tolist() == pytest.approx([1, 1, (1 + 2 / 3) / 2])
    assert retrieval_metrics(EMB, PATENTS, CLASSES, relevance="class")["overall"]["mAP"] == pytest.approx(pq.ap.mean())


def test_query_vectors_score_by_inner_product_unnormalised():
    # a fused query vector per drawing: q2 points at drawing 0, so drawing 0 (class x, other patent) ranks first
    gallery = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float32)
    queries = np.array([[0, 0, 1], [0, 0, 1], [5, 0, 0.1], [0, 1, 0]], dtype=np.float32)
    pq = per_query_metrics(gallery, ["A", "B", "C", "D"], ["x", "x", "x", "y"], "class", queries=queries)
    # q0 ranks 2,3 then 1 -> relevant 1 at rank 3, 2 at rank 1: AP (1 + 2/3) / 2
    # q2 ranks 0 (5.0) first, then 3 (0.1) and 1 (0) -> relevant {0, 1} at ranks 1 and 3
    assert dict(zip(pq.index.tolist(), pq.ap.tolist(), strict=True))[2] == pytest.approx((1 + 2 / 3) / 2)
    assert dict(zip(pq.index.tolist(), pq.ap.tolist(), strict=True))[0] == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="same shape"):
        per_query_metrics(gallery, ["A"] * 4, ["x"] * 4, queries=queries[:, :2])


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_queries():
    rng = np.random.default_rng(1)
    small, large = rng.uniform(size=30), rng.uniform(size=3000)
    lo, hi = bootstrap_ci(small, resamples=2000)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, resamples=2000)
    assert (hi2 - lo2) < (hi - lo) / 5  # ~ 1/sqrt(n): 10x narrower
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    assert np.isnan(bootstrap_ci(np.zeros(0))[0])


def test_paired_bootstrap_sees_a_consistent_small_gain():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=200)
    better = base + 0.02  # the same queries, each a little better
    r = paired_bootstrap(better, base)
    assert r["diff"] == pytest.approx(0.02) and r["lo"] > 0 and r["p_better"] == 1.0
    noisy = paired_bootstrap(base + rng.normal(0, 0.3, 200), base)
    assert noisy["lo"] < 0 < noisy["hi"]


def test_per_class_report_is_worst_first_and_flags_classes_below_the_baseline():
    classes = ["x", "x", "x", "y", "y"]
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.95, 0.05]], dtype=np.float32)
    pats = ["a", "b", "c", "d", "e"]
    model = per_query_metrics(emb, pats, classes, "class")
    base = per_query_metrics(np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32) +
                             np.arange(5)[:, None] * 1e-3, pats, classes, "class")
    rows = per_class_report(model, classes, train_counts={"x": 7}, baseline=base)
    assert [r["class"] for r in rows] == sorted(["x", "y"], key=lambda c: next(r["mAP"] for r in rows if r["class"] == c))
    by = {r["class"]: r for r in rows}
    assert by["x"]["gallery"] == 3 and by["x"]["train"] == 7 and by["y"]["train"] == 0 and by["y"]["queries"] == 2
    assert by["y"]["below_baseline"] == (by["y"]["mAP"] < by["y"]["baseline_mAP"])
    assert by["y"]["baseline_mAP"] == pytest.approx(1.0) and by["y"]["below_baseline"]
