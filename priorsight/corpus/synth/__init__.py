"""Synthetic design-patent corpus: procedurally varied 3-D designs of object types (data:
``object_types.yaml``), drawn as USPTO-style line art with hidden lines removed, with USPTO-style
metadata, long-tailed Locarno classes, and a Ray Data source for millions of drawings.

Modules: ``geometry`` (solids, designs), ``designs`` (catalog, parameters), ``families``
(parametric builders), ``render`` (cameras, ray casting, line art), ``patents`` (ids, views,
figure descriptions), ``generate`` (per-patent function, corpus writers, Ray source),
``bench`` (realism and speed benchmarks), ``commands`` (CLI).

The public API is importable from here (loaded on first use)::

    from priorsight.corpus.synth import generate_corpus
    summary = generate_corpus("data/synth", patents=300, seed=0)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SynthConfig": "generate",
    "SynthSummary": "generate",
    "SyntheticDrawing": "generate",
    "generate_corpus": "generate",
    "generate_corpus_ray": "generate",
    "generate_patent": "generate",
    "plan_patent": "generate",
    "ray_dataset": "generate",
    "contact_sheet": "generate",
    "load_catalog": "designs",
    "make_design": "designs",
    "render_view": "render",
    "ViewSpec": "render",
    "DrawingStyle": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
