"""How a drawing and a query become vectors that one inner product compares: the drawing's
class-aware embedding and its instance vector, its words and its class side by side.

Every indexed drawing is one vector ``[image ; instance ; words ; classes]``, each part unit
length:

* ``image``: the trained image tower's embedding (it learned the classes);
* ``instance``: what the pretrained backbone alone says of the drawing (PCA of its features),
  kept for near-duplicates and the other views of one design (absent when the model has none);
* ``words``: the text tower's embedding of the drawing's own words (:func:`document_text`, the
  patent's title; zero when it has none);
* ``classes``: the model's balanced class posterior of the drawing and its words together (the
  distribution-aware classifier, a product of experts; absent without a class head).

A query is one vector too, built from what it has (a drawing and/or words) with
:class:`FusionWeights`, so that::

    query . drawing = w.image    * cos(query image, drawing image)
                    + w.instance * cos(query instance, drawing instance)
                    + w.text     * cos(query words, drawing words)
                    + w.classes  * cos(query class posterior, drawing class posterior)

Image, instance, words and class evidence are fused as a weighted sum of similarities,
computed exactly by one inner-product search (Milvus ``IP``) over the whole index. An
image-only query ranks by what its drawing says (image, instance and its class posterior against
the drawing's, which the indexed drawing's title helps to tell); a words-only query by words and
class; both together by all of them. The evaluation (``priorsight eval``), the index job and the
query embedder all build their vectors here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

QueryMode = Literal["image", "image+text", "text"]
QUERY_MODES: tuple[str, ...] = ("image", "image+text", "text")


def document_text(drawing: Any) -> str:
    """The words that stand for a drawing at index and query time: its patent's title (a design
    patent's title names the object: "Sport spoon", "Display screen with graphical user
    interface"). A mapping (manifest row) or an object with ``title``."""
    title = drawing.get("title") if isinstance(drawing, dict) else getattr(drawing, "title", "")
    return re.sub(r"\s+", " ", title or "").strip()


class FusionWeights(BaseModel):
    """How much each similarity counts in a query's score (see the module docstring). Only
    ratios matter within one query mode."""

    model_config = {"extra": "forbid"}

    image: float = Field(default=1.0, ge=0)
    instance: float = Field(default=0.0, ge=0)
    text: float = Field(default=1.0, ge=0)
    classes: float = Field(default=0.0, ge=0)


#: the weights `priorsight eval --calibrate` chose on the real validation split (docs/training.md)
DEFAULT_WEIGHTS = FusionWeights(image=1.0, instance=1.0, text=2.0, classes=2.0)


def _unit(x: np.ndarray | None, n: int, dim: int) -> np.ndarray:
    if x is None:
        return np.zeros((n, dim), np.float32)
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] != n or x.shape[1] != dim:
        raise ValueError(f"expected ({n}, {dim}) vectors, got {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-12), 0).astype(np.float32)


def document_vectors(image: np.ndarray, text: np.ndarray | None, text_dim: int | None = None,
                     has_text: np.ndarray | None = None, classes: np.ndarray | None = None,
                     instance: np.ndarray | None = None) -> np.ndarray:
    """``[image ; instance ; words ; classes]`` per drawing, each part unit length; the words part
    zero where ``has_text`` is False (or ``text`` is None: pass ``text_dim``); no instance or
    classes part where they are None."""
    image = np.asarray(image, np.float32)
    n, di = image.shape
    dt = text.shape[1] if text is not None else text_dim
    if dt is None:
        raise ValueError("text_dim is needed when there are no text vectors")
    t = _unit(text, n, dt)
    if has_text is not None:
        t = t * np.asarray(has_text, bool)[:, None]
    parts = [_unit(image, n, di)]
    if instance is not None:
        parts.append(_unit(instance, n, np.asarray(instance).shape[1]))
    parts.append(t)
    if classes is not None:
        parts.append(_unit(classes, n, np.asarray(classes).shape[1]))
    return np.concatenate(parts, axis=1)


def query_vectors(image: np.ndarray | None, text: np.ndarray | None, weights: FusionWeights,
                  image_dim: int, text_dim: int, classes: np.ndarray | None = None, class_dim: int = 0,
                  instance: np.ndarray | None = None, instance_dim: int = 0) -> np.ndarray:
    """One query vector per row from its image vector and/or its words vector (either may be
    None: that part of the query is absent), its instance vector (with a drawing) and, with a
    class head, its class posterior; laid out as :func:`document_vectors`."""
    rows = {len(x) for x in (image, text) if x is not None}
    if len(rows) != 1:
        raise ValueError("a query needs an image or words, and both parts the same number of rows")
    n = rows.pop()
    parts = [weights.image * _unit(image, n, image_dim)]
    if instance_dim:
        parts.append(weights.instance * _unit(instance, n, instance_dim))
    parts.append(weights.text * _unit(text, n, text_dim))
    if class_dim:
        parts.append(weights.classes * _unit(classes, n, class_dim))
    return np.concatenate(parts, axis=1).astype(np.float32)


__all__ = ["DEFAULT_WEIGHTS", "QUERY_MODES", "FusionWeights", "QueryMode", "document_text", "document_vectors", "query_vectors"]
