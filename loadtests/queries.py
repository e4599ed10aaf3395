"""The load test's query set: what examiners ask, built from a held-out split of a corpus.

A query set is a small folder the locustfile reads (stdlib only, no PriorSight import)::

    DIR/queries.json   {"built_from", "held_out_patents", "queries": [...], "patents", "drawings"}
    DIR/images/        the query drawings (bytes as stored in the corpus)

Each query is ``{"id", "kind", "images": [file names], "text", "filters"}`` with ``kind`` one of
``single`` (one drawing), ``multiview`` (2-3 views of one design), ``text`` (a drawing and
words), ``filtered`` (a drawing and restrictions an examiner sets: the design's Locarno main
class, prior art granted before the design, a view). Queries come from patents that are *not*
in the index (a held-out split, :func:`priorsight.corpus.split.split_corpus`), as new
applications are. ``patents`` / ``drawings`` (optional) are ids of the served catalog for the
detail and image fetches before the first search answered any.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from priorsight.manifest import iter_drawings
from priorsight.records import Patent, group_patents, locarno_main
from priorsight.storage import Storage

QUERY_KINDS = ("single", "multiview", "text", "filtered")
QUERIES_FILE = "queries.json"


def _words(p: Patent) -> str:
    """What an examiner types beside the drawing: the design's name, as in its title."""
    obj = next((d.object_name for d in p.drawings if d.object_name), "")
    title = (p.title or "").strip()
    return title if title else f"ornamental design for a {obj or 'product'}"


def _filters(p: Patent, rng: random.Random) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    main = locarno_main(p.locarno_class)
    if main:
        options.append({"locarno_classes": [main]})
    if p.grant_date:
        options.append({"date_to": p.grant_date})  # prior art: granted before this design
        if main:
            options.append({"locarno_classes": [main], "date_to": p.grant_date})
    views = sorted({d.view for d in p.drawings if d.view and d.view != "other"})
    if views:
        options.append({"views": [rng.choice(views)]})
    return rng.choice(options) if options else {}


def queries_of_patent(p: Patent, rng: random.Random) -> list[dict[str, Any]]:
    """The queries one held-out design gives (image names are the drawings' ids)."""
    ds = p.drawings
    out: list[dict[str, Any]] = []
    first = ds[0]
    out.append({"kind": "single", "images": [first.drawing_id], "text": None, "filters": {}})
    if len(ds) > 1:
        other = rng.choice(ds[1:])
        out.append({"kind": "single", "images": [other.drawing_id], "text": None, "filters": {}})
        views = rng.sample(ds, min(len(ds), rng.choice((2, 3))))
        out.append({"kind": "multiview", "images": [d.drawing_id for d in views], "text": None, "filters": {}})
    out.append({"kind": "text", "images": [rng.choice(ds).drawing_id], "text": _words(p), "filters": {}})
    out.append({"kind": "filtered", "images": [rng.choice(ds).drawing_id], "text": None, "filters": _filters(p, rng)})
    return out


def build_query_set(
    held_out: str,
    out_dir: Path | str,
    catalog: str | None = None,
    max_patents: int = 200,
    seed: int = 0,
    storage: Storage | None = None,
) -> dict[str, Any]:
    """Write the query set of ``held_out`` (a corpus dir or manifest: the test side of a split)
    into ``out_dir``; ``catalog`` (the served manifest) adds ids for detail and image fetches.
    Returns a summary (counts per kind)."""
    storage = storage or Storage()
    rng = random.Random(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    patents = [p for p in group_patents(iter_drawings(held_out, storage)) if p.drawings]
    if not patents:
        raise ValueError(f"{held_out}: no drawings to build queries from")
    rng.shuffle(patents)
    patents = patents[:max_patents]
    files: dict[str, str] = {}
    queries: list[dict[str, Any]] = []
    for p in patents:
        by_id = {d.drawing_id: d for d in p.drawings}
        for q in queries_of_patent(p, rng):
            names = []
            for did in q["images"]:
                if did not in files:
                    d = by_id[did]
                    suffix = Path(d.image_uri).suffix.lower() or ".png"
                    files[did] = f"{did}{suffix}"
                    (out / "images" / files[did]).write_bytes(storage.read_bytes(d.image_uri))
                names.append(files[did])
            queries.append({"id": f"q{len(queries):04d}", "patent_id": p.patent_id, **q, "images": names})
    cat_patents: list[str] = []
    cat_drawings: list[str] = []
    if catalog:
        for cp in group_patents(iter_drawings(catalog, storage)):
            cat_patents.append(cp.patent_id)
            cat_drawings += [d.drawing_id for d in cp.drawings]
    # held-out patents the catalog holds too (the demo indexes every split): informational
    in_catalog = len({p.patent_id for p in patents}.intersection(cat_patents))
    payload = {
        "built_from": str(held_out),
        "catalog": catalog,
        "seed": seed,
        "held_out_patents": len(patents),
        "held_out_in_catalog": in_catalog,
        "queries": queries,
        "patents": cat_patents[:1000],
        "drawings": cat_drawings[:5000],
    }
    (out / QUERIES_FILE).write_text(json.dumps(payload, indent=1) + "\n")
    counts = {k: sum(q["kind"] == k for q in queries) for k in QUERY_KINDS}
    return {
        "out": str(out),
        "held_out_patents": len(patents),
        "images": len(files),
        "queries": len(queries),
        **counts,
        "catalog_patents": len(cat_patents),
        "held_out_in_catalog": in_catalog,
    }


def read_query_set(path: Path | str) -> dict[str, Any]:
    """The query set of a folder (checks it has queries and their images)."""
    p = Path(path)
    data = json.loads((p / QUERIES_FILE).read_text())
    if not data.get("queries"):
        raise ValueError(f"{p / QUERIES_FILE}: no queries")
    missing = [n for q in data["queries"] for n in q["images"] if not (p / "images" / n).is_file()]
    if missing:
        raise ValueError(f"{p}: {len(missing)} query images missing, e.g. {missing[0]}")
    return data
