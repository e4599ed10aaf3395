"""Honest retrieval evaluation of a model on a corpus.

``evaluate_corpus`` embeds every drawing of a manifest with an :class:`~training.encoder.Encoder`
(the trained towers or the untrained baseline) and reports mAP, Recall@k, hit@k and MRR@k for
both relevance definitions (same patent; same class of the configured
:class:`~priorsight.classes.ClassScheme`), overall and per head / medium / tail bucket
(:mod:`training.metrics`), each overall figure with a bootstrap interval over queries.

Query modes (``query_text`` names the words a query drawing brings, e.g. its own ``title``: an
examiner knows the application's title): ``image`` (the drawing alone, as before), ``text``
(the words alone) and ``image+text`` (both, fused by :class:`~priorsight.vectors.FusionWeights`).
The gallery holds every drawing as the index does, ``[image ; its own words]``
(:mod:`priorsight.vectors`), so each mode ranks exactly as a search with it would. Exact
inner-product search with numpy.

A per-class report (worst first, with each class's size in training and in the gallery) flags
the classes where the model answers worse than the untrained baseline on the same queries.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from priorsight.classes import ClassScheme, labelled_counts, resolve_scheme
from priorsight.images import ImageError
from priorsight.manifest import MANIFEST_FILE, CorpusWriter, read_manifest
from priorsight.records import Drawing
from priorsight.storage import Storage, is_s3
from priorsight.vectors import DEFAULT_WEIGHTS, QUERY_MODES, FusionWeights, document_text
from training.encoder import Encoder
from training.metrics import (
    BUCKETS,
    PerQuery,
    bootstrap_ci,
    class_buckets,
    paired_bootstrap,
    per_class_report,
    per_query_metrics,
    summarise,
)

log = logging.getLogger(__name__)
RELEVANCES = ("patent", "class")


#: where `priorsight train --corpus DIR` and `priorsight index DIR` keep a folder they import
IMPORTED_DIR = Path("data/corpora")


def imported_corpus_dir(src: str) -> str:
    """The lasting corpus dir a source folder is imported into (``data/corpora/<name>-<hash>``)."""
    import hashlib

    p = Path(src).resolve()
    return str(IMPORTED_DIR / f"{p.name}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}")


def resolve_corpus(src: str, storage: Storage | None = None, workdir: str | None = None,
                   reuse: bool = False) -> str:
    """A manifest for ``src``: a corpus dir / manifest as is, or a USPTO folder, a table folder
    (images + ``metadata.csv``/``.parquet``), a DeepPatent2 folder or a plain image folder
    imported on the fly into ``workdir`` (a temp dir by default). With ``reuse``, a ``workdir``
    that holds a manifest already (an earlier import of the same folder) is used as it is."""
    from priorsight.corpus.table import is_table_folder

    storage = storage or Storage()
    if str(src).endswith(".parquet") or is_s3(src) or (Path(src) / MANIFEST_FILE).exists():
        return str(src)
    p = Path(src)
    if not p.exists():
        raise FileNotFoundError(f"no such corpus or folder: {src}")
    if reuse and workdir and (Path(workdir) / MANIFEST_FILE).exists():
        log.info("%s: using its import in %s", src, workdir)
        return workdir
    if is_table_folder(p):
        from priorsight.corpus.table import read_table_folder

        def reader(path, images_out, st):
            return read_table_folder(path, None, st)
    elif any(p.glob("*/*.XML")) or any(p.glob("*.XML")):
        from priorsight.corpus.uspto import read_uspto as reader
    elif any(p.glob("design*.json")) or any(p.glob("*/design*.json")):
        from priorsight.corpus.deeppatent2 import read_deeppatent2 as reader
    else:
        from priorsight.corpus.folder import read_folder as reader
    out = workdir or tempfile.mkdtemp(prefix="priorsight-eval-")
    with CorpusWriter(out, storage) as w:
        w.write_all(reader(p, str(Path(out) / "images"), storage))
    log.info("imported %s: %d drawings (%d failures) into %s", src, w.drawings, w.errors, out)
    return out


def embed_drawings(drawings: Sequence[Drawing], encoder: Encoder, batch_size: int = 32,
                   storage: Storage | None = None, progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """Image vectors of the drawings, in batches. Returns (vectors of the decodable ones, their
    indices); an unreadable drawing is logged and left out."""
    storage = storage or Storage()
    feats: list[np.ndarray] = []
    kept: list[int] = []
    batch: list[np.ndarray] = []
    idx: list[int] = []

    def flush() -> None:
        if batch:
            feats.append(encoder.embed_images(np.stack(batch)))
            kept.extend(idx)
            batch.clear()
            idx.clear()

    for i, d in enumerate(tqdm(drawings, desc="embed", unit=" drawings", disable=not progress, mininterval=2)):
        try:
            batch.append(encoder.preprocessing.load(storage.read_bytes(d.image_uri)))
            idx.append(i)
        except (ImageError, OSError) as exc:
            log.warning("skipping %s: %s", d.drawing_id, exc)
        if len(batch) >= batch_size:
            flush()
    flush()
    return (np.concatenate(feats) if feats else np.zeros((0, encoder.image_dim), np.float32)), kept


def query_texts(drawings: Sequence[Drawing], query_text: str) -> list[str]:
    """Each query drawing's words: the manifest field ``query_text`` (``title``, ``object_name``,
    ``figure_description``, ``caption``...)."""
    if query_text == "title":
        return [document_text(d) for d in drawings]
    if not hasattr(Drawing("x", "p", "u", "s"), query_text):
        raise ValueError(f"query_text must name a drawing field (title, object_name, ...), got {query_text!r}")
    return [str(getattr(d, query_text) or "").strip() for d in drawings]


def resolve_eval_scheme(drawings: Sequence[Drawing], scheme: ClassScheme | str | None) -> ClassScheme:
    """The scheme to evaluate on: as given, or (``None``/``"auto"``) the one that labels more of
    these drawings, at its default level: a corpus with only US classes evaluates on them."""
    if isinstance(scheme, ClassScheme):
        return scheme
    if scheme and scheme != "auto":
        return ClassScheme.parse(scheme)
    return resolve_scheme("auto", "auto", labelled_counts(d.to_row() for d in drawings))


class ModeVectors:
    """Gallery and query vectors of every query mode for one encoder on one gallery."""

    def __init__(self, encoder: Encoder, image: np.ndarray, texts: list[str] | None, docs: list[str] | None,
                 weights: FusionWeights):
        self.encoder = encoder
        self.gallery = encoder.documents(image, docs)
        self.image = image
        self.text = encoder.embed_texts(texts) if texts is not None and encoder.has_text else None
        self.weights = weights

    def queries(self, mode: str) -> np.ndarray:
        """Every drawing as a query of ``mode``: its image, its words, or both."""
        if mode == "image":
            return self.encoder.queries(self.image, None, self.weights)
        if self.text is None:
            raise ValueError(f"query mode {mode!r} needs words (query_text) and a text tower")
        return self.encoder.queries(self.image if mode == "image+text" else None, self.text, self.weights)


def _evaluate_mode(vectors: ModeVectors, mode: str, patents: list[str], classes: list[str | None], k: int,
                   bucket_of_class: dict[str, str] | None, resamples: int) -> tuple[dict, dict[str, PerQuery]]:
    q = vectors.queries(mode)
    out: dict[str, Any] = {}
    per: dict[str, PerQuery] = {}
    for rel in RELEVANCES:
        pq = per_query_metrics(vectors.gallery, patents, classes, rel, k, queries=q)
        block = summarise(pq, classes, rel, bucket_of_class)
        if resamples and len(pq):
            for name, values in (("mAP", pq.ap), (f"recall@{k}", pq.recall), (f"mrr@{k}", pq.rr)):
                block["overall"][f"{name}_ci"] = list(bootstrap_ci(values, resamples))
        out[rel] = block
        per[rel] = pq
    return out, per


def evaluate_corpus(src: str, encoder: Encoder, k: int = 10, batch_size: int = 32, storage: Storage | None = None,
                    progress: bool = True, bucket_of_class: dict[str, str] | None = None,
                    scheme: ClassScheme | str | None = None, query_text: str | None = None,
                    modes: Sequence[str] | None = None, weights: FusionWeights | None = None,
                    baseline: Encoder | None = None, train_counts: dict[str, int] | None = None,
                    resamples: int = 1000, keep_per_query: bool = False) -> dict:
    """Evaluate ``encoder`` on the drawings of ``src`` (anything :func:`resolve_corpus` reads).

    Returns ``{"patent": ..., "class": ...}`` for image-only queries (the keys every version of
    this report had), plus one object of the same shape per query mode keyed by its name
    (``"image"``, ``"image+text"``, ``"text"``; the words modes need ``query_text``), and
    ``per_class`` (class relevance, per mode). With a ``baseline`` encoder, each mode also holds
    ``baseline`` (the same metrics for it) and ``vs_baseline`` (paired bootstrap of the mAP
    difference on the same queries), and the per-class rows flag ``below_baseline``. With
    ``keep_per_query``, ``per_query[mode][relevance]`` maps each answered query's drawing id to
    its AP (for comparisons across runs on the same queries)."""
    storage = storage or Storage()
    weights = weights or DEFAULT_WEIGHTS
    manifest = resolve_corpus(src, storage)
    drawings = [Drawing.from_row(r) for r in read_manifest(manifest, storage).to_pylist()]
    chosen = resolve_eval_scheme(drawings, scheme)
    modes = list(modes or (QUERY_MODES if query_text else ("image",)))
    for m in modes:
        if m not in QUERY_MODES:
            raise ValueError(f"query mode must be one of {QUERY_MODES}, got {m!r}")
        if m != "image" and not query_text:
            raise ValueError(f"query mode {m!r} needs query_text (e.g. 'title')")

    emb, kept = embed_drawings(drawings, encoder, batch_size, storage, progress)
    gallery = [drawings[i] for i in kept]
    patents = [d.patent_id for d in gallery]
    classes = chosen.labels(gallery)
    docs = [document_text(d) for d in gallery] if encoder.has_text else None
    texts = query_texts(gallery, query_text) if query_text else None
    vectors = ModeVectors(encoder, emb, texts, docs, weights)
    base_vectors = None
    if baseline is not None:
        b_emb, b_kept = embed_drawings(gallery, baseline, batch_size, storage, progress=False)
        if b_kept != list(range(len(gallery))):
            raise ValueError("the baseline could not read the drawings the model read")
        base_vectors = ModeVectors(baseline, b_emb, texts, docs if baseline.has_text else None, weights)

    gallery_counts = dict(Counter(c for c in classes if c))
    result: dict[str, Any] = {"corpus": str(src), "drawings": len(gallery), "patents": len(set(patents)),
                              "class_scheme": chosen.name, "classes": len(gallery_counts), "modes": modes,
                              "query_text": query_text, "weights": weights.model_dump(), "model": encoder.name,
                              "per_class": {}}
    if keep_per_query:
        result["per_query"] = {}
    for mode in modes:
        block, per = _evaluate_mode(vectors, mode, patents, classes, k, bucket_of_class, resamples)
        if keep_per_query:
            result["per_query"][mode] = {rel: {gallery[i].drawing_id: float(ap) for i, ap in
                                               zip(pq.index.tolist(), pq.ap.tolist(), strict=True)}
                                         for rel, pq in per.items()}
        base_per = None
        if base_vectors is not None:
            base_block, base_per = _evaluate_mode(base_vectors, mode, patents, classes, k, bucket_of_class, resamples)
            block["baseline"] = {rel: base_block[rel] for rel in RELEVANCES}
            block["vs_baseline"] = {rel: paired_bootstrap(_aligned(per[rel], base_per[rel])[0],
                                                          _aligned(per[rel], base_per[rel])[1], resamples)
                                    for rel in RELEVANCES}
        result[mode] = block
        result["per_class"][mode] = per_class_report(per["class"], classes, gallery_counts, train_counts,
                                                     None if base_per is None else base_per["class"])
    first = modes[0] if "image" not in modes else "image"
    result["patent"], result["class"] = result[first]["patent"], result[first]["class"]
    return result


#: the weights tried by :func:`calibrate_weights` (image weight 1): words and class posterior,
#: each from "barely counts" to "decides"
WORDS_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)
CLASSES_GRID = (0.0, 1.0, 2.0, 4.0, 8.0)


def calibrate_weights(src: str, encoder: Encoder, query_text: str = "title", scheme: ClassScheme | str | None = None,
                      storage: Storage | None = None, words: Sequence[float] = WORDS_GRID,
                      classes: Sequence[float] = CLASSES_GRID, k: int = 10, progress: bool = False) -> dict:
    """The weights (image 1; words and classes from the grids) that give the best mean same-class
    mAP over the three query modes (image, image+text, text) on ``src``: a validation split,
    never a test set. The calibrated fusion: one setting for every kind of query. Returns
    ``{"best": FusionWeights dict, "curve": [{w_text, w_classes, image, image+text, text, mean}]}``
    (each mode's same-class mAP at those weights)."""
    storage = storage or Storage()
    manifest = resolve_corpus(src, storage)
    drawings = [Drawing.from_row(r) for r in read_manifest(manifest, storage).to_pylist()]
    chosen = resolve_eval_scheme(drawings, scheme)
    emb, kept = embed_drawings(drawings, encoder, storage=storage, progress=progress)
    gallery = [drawings[i] for i in kept]
    patents, labels = [d.patent_id for d in gallery], chosen.labels(gallery)
    vectors = ModeVectors(encoder, emb, query_texts(gallery, query_text), [document_text(d) for d in gallery],
                          FusionWeights())
    class_grid = classes if encoder.class_dim else (0.0,)
    curve = []
    for wt in words:
        for wc in class_grid:
            vectors.weights = FusionWeights(image=1.0, text=float(wt), classes=float(wc))
            row: dict[str, float] = {"w_text": float(wt), "w_classes": float(wc)}
            for mode in QUERY_MODES:
                pq = per_query_metrics(vectors.gallery, patents, labels, "class", k, queries=vectors.queries(mode))
                row[mode] = float(pq.ap.mean()) if len(pq) else float("nan")
            row["mean"] = float(np.mean([row[m] for m in QUERY_MODES]))
            curve.append(row)
    best = max(curve, key=lambda c: c["mean"])
    return {"best": FusionWeights(image=1.0, text=best["w_text"], classes=best["w_classes"]).model_dump(),
            "curve": curve, "class_scheme": chosen.name, "queries": len(gallery)}


def _aligned(a: PerQuery, b: PerQuery) -> tuple[np.ndarray, np.ndarray]:
    """Both systems' APs on the queries both answered (the same queries, in the same order)."""
    common = np.intersect1d(a.index, b.index)
    ia = {q: i for i, q in enumerate(a.index.tolist())}
    ib = {q: i for i, q in enumerate(b.index.tolist())}
    return (np.asarray([a.ap[ia[q]] for q in common.tolist()]), np.asarray([b.ap[ib[q]] for q in common.tolist()]))


def corpus_buckets(corpus: str, scheme: ClassScheme, storage: Storage | None = None,
                   head_share: float = 1 / 3, tail_share: float = 1 / 3) -> dict[str, str]:
    """Head / medium / tail of each class as in a whole corpus (a held-out gallery is too small
    to define them), under ``scheme``."""
    rows = read_manifest(corpus, storage).to_pylist()
    return class_buckets(Counter(c for c in scheme.labels(rows) if c), head_share, tail_share)


def _fmt(v: float) -> str:
    return f"{v:>9.3f}" if v == v else f"{'-':>9}"


def format_results(result: dict, k: int = 10, per_class: int = 12) -> str:
    """Tables: per query mode, one row per relevance x bucket (with the baseline and the
    bootstrap interval of the overall mAP where computed); then the worst classes."""
    cols = ["mAP", f"recall@{k}", f"hit@{k}", f"mrr@{k}", "n"]
    lines = [f"classes: {result.get('class_scheme', '?')} ({result.get('classes', '?')} in the gallery)"]
    for mode in result.get("modes", ["image"]):
        block = result.get(mode, result)
        has_base = "baseline" in block
        lines.append("")
        lines.append(f"query: {mode}" + (f" (words: {result['query_text']})" if mode != "image" else ""))
        head = f"{'relevance':<10} {'bucket':<8} " + " ".join(f"{c:>9}" for c in cols)
        lines.append(head + (f" {'baseline':>9}" if has_base else "") + "   mAP 95% interval")
        for rel in RELEVANCES:
            m = block[rel]
            if not m["queries"]:
                lines.append(f"{rel:<10} (no query has a relevant drawing: {m['skipped']} skipped)")
                continue
            for b in ("overall", *BUCKETS):
                row = m[b]
                vals = [_fmt(row[c]) if c != "n" else f"{row[c]:>9d}" for c in cols]
                line = f"{rel:<10} {b:<8} " + " ".join(vals)
                if has_base:
                    line += " " + _fmt(block["baseline"][rel][b]["mAP"])
                if b == "overall" and "mAP_ci" in row:
                    line += f"   [{row['mAP_ci'][0]:.3f}, {row['mAP_ci'][1]:.3f}]"
                lines.append(line)
        if has_base:
            for rel in RELEVANCES:
                v = block["vs_baseline"][rel]
                if v["diff"] != v["diff"]:  # no common queries
                    continue
                lines.append(f"  {rel} mAP vs baseline: {v['diff']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}], "
                             f"better in {v['p_better']:.0%} of resamples")
    rows = (result.get("per_class") or {}).get("image") or next(iter((result.get("per_class") or {}).values()), [])
    if rows and per_class:
        lines.append("")
        lines.append(f"per class (image queries, class relevance), worst first; {len(rows)} classes:")
        has_base = "baseline_mAP" in rows[0]
        lines.append(f"{'class':<10} {'queries':>7} {'gallery':>7} {'train':>6} {'mAP':>7} {'R@' + str(k):>7} "
                     f"{'MRR@' + str(k):>7}" + (f" {'baseline':>8}" if has_base else ""))
        for r in rows[:per_class]:
            train = "-" if r["train"] is None else str(r["train"])
            line = (f"{r['class']:<10} {r['queries']:>7} {r['gallery']:>7} {train:>6} {r['mAP']:>7.3f} "
                    f"{r[f'recall@{k}']:>7.3f} {r[f'mrr@{k}']:>7.3f}")
            if has_base:
                line += f" {r['baseline_mAP']:>8.3f}" + ("  below baseline" if r["below_baseline"] else "")
            lines.append(line)
        if len(rows) > per_class:
            lines.append(f"... {len(rows) - per_class} more classes (all of them in the JSON report)")
        if has_base:
            below = sum(r["below_baseline"] for r in rows)
            lines.append(f"{below} of {len(rows)} classes below the untrained baseline")
    return "\n".join(lines)
