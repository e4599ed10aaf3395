"""Fused vectors: one inner product over [image ; words ; classes] is the weighted sum of the
three similarities."""

from __future__ import annotations

import numpy as np
import pytest

from priorsight.vectors import FusionWeights, document_text, document_vectors, query_vectors


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_inner_product_is_the_weighted_sum_of_similarities():
    rng = np.random.default_rng(0)
    gi, gt, gc = _unit(rng, 5, 8), _unit(rng, 5, 6), np.abs(_unit(rng, 5, 3))
    qi, qt, qc = _unit(rng, 3, 8), _unit(rng, 3, 6), np.abs(_unit(rng, 3, 3))
    docs = document_vectors(gi, gt, classes=gc)
    assert docs.shape == (5, 17)
    w = FusionWeights(image=0.3, text=0.7, classes=2.0)
    scores = query_vectors(qi, qt, w, 8, 6, qc, 3) @ docs.T
    np.testing.assert_allclose(scores, 0.3 * qi @ gi.T + 0.7 * qt @ gt.T + 2.0 * qc @ gc.T, rtol=1e-5, atol=1e-6)
    # an image-only query without class weight ranks by image similarity alone, a words-only one by words alone
    np.testing.assert_allclose(query_vectors(qi, None, FusionWeights(), 8, 6, qc, 3) @ docs.T, qi @ gi.T, atol=1e-6)
    np.testing.assert_allclose(query_vectors(None, qt, FusionWeights(), 8, 6, qc, 3) @ docs.T, qt @ gt.T, atol=1e-6)


def test_posteriors_are_unit_length_parts_and_optional():
    rng = np.random.default_rng(3)
    gi = _unit(rng, 4, 8)
    post = np.full((4, 5), 0.2, np.float32)  # uniform posteriors: a unit vector of equal entries
    docs = document_vectors(gi, None, text_dim=2, classes=post)
    np.testing.assert_allclose(np.linalg.norm(docs[:, 10:], axis=1), 1.0, rtol=1e-6)
    assert document_vectors(gi, None, text_dim=2).shape == (4, 10)  # no class head: no classes part
    assert query_vectors(gi, None, FusionWeights(classes=3), 8, 2).shape == (4, 10)


def test_drawings_without_words_score_by_their_image_only():
    rng = np.random.default_rng(1)
    gi, gt = _unit(rng, 4, 6), _unit(rng, 4, 6)
    docs = document_vectors(gi, gt, has_text=np.array([True, False, True, False]))
    assert np.allclose(docs[1, 6:], 0) and np.allclose(np.linalg.norm(docs[0, 6:]), 1)
    q = query_vectors(gi[:1], gt[:1], FusionWeights(), 6, 6)
    assert np.isclose((q @ docs.T)[0, 1], gi[0] @ gi[1], atol=1e-6)  # no words: the words term is 0
    with pytest.raises(ValueError, match="text_dim"):
        document_vectors(gi, None)


def test_a_query_needs_something_and_weights_are_non_negative():
    with pytest.raises(ValueError, match="image or words"):
        query_vectors(None, None, FusionWeights(), 4, 4)
    with pytest.raises(ValueError):
        FusionWeights(image=-1)
    with pytest.raises(ValueError):
        FusionWeights(words=1)  # unknown field: a typo in a config is refused


def test_document_text_is_the_title_cleaned():
    assert document_text({"title": "  Sport \n spoon "}) == "Sport spoon"
    assert document_text({"title": None}) == ""

    class D:
        title = "Shoe"
    assert document_text(D()) == "Shoe"
