"""Retrieval metrics against rankings computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import average_precision, class_buckets, retrieval_metrics

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
