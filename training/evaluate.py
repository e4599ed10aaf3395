"""Honest retrieval evaluation of an image encoder on a corpus.

``evaluate_corpus`` embeds every drawing of a manifest with an encoder (any callable mapping a
preprocessed batch ``(B, 3, H, W)`` to ``(B, D)`` features), then reports mAP, Recall@k, hit@k
and MRR@k for both relevance definitions, overall and per head / medium / tail bucket
(:mod:`training.metrics`). Exact cosine search with numpy.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from priorsight.images import ImageError, load_and_preprocess
from priorsight.manifest import MANIFEST_FILE, CorpusWriter, read_manifest
from priorsight.records import Drawing
from priorsight.storage import Storage, is_s3
from training.metrics import BUCKETS, retrieval_metrics

log = logging.getLogger(__name__)
Encoder = Callable[[np.ndarray], np.ndarray]


def resolve_corpus(src: str, storage: Storage | None = None, workdir: str | None = None) -> str:
    """A manifest for ``src``: a corpus dir / manifest as is, or a USPTO folder, a DeepPatent2
    folder or a plain image folder imported on the fly into ``workdir`` (a temp dir by default)."""
    storage = storage or Storage()
    if str(src).endswith(".parquet") or is_s3(src) or (Path(src) / MANIFEST_FILE).exists():
        return str(src)
    p = Path(src)
    if not p.exists():
        raise FileNotFoundError(f"no such corpus or folder: {src}")
    if any(p.glob("*/*.XML")) or any(p.glob("*.XML")):
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


def embed_drawings(drawings: Sequence[Drawing], encoder: Encoder, image_size: int = 224,
                   batch_size: int = 32, storage: Storage | None = None,
                   progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """Embed drawings in batches. Returns (embeddings of the decodable ones, their indices)."""
    storage = storage or Storage()
    feats: list[np.ndarray] = []
    kept: list[int] = []
    batch: list[np.ndarray] = []
    idx: list[int] = []

    def flush() -> None:
        if batch:
            feats.append(np.asarray(encoder(np.stack(batch)), dtype=np.float32))
            kept.extend(idx)
            batch.clear()
            idx.clear()

    for i, d in enumerate(tqdm(drawings, desc="embed", unit=" drawings", disable=not progress, mininterval=2)):
        try:
            batch.append(load_and_preprocess(storage.read_bytes(d.image_uri), size=image_size))
            idx.append(i)
        except (ImageError, OSError) as exc:
            log.warning("skipping %s: %s", d.drawing_id, exc)
        if len(batch) >= batch_size:
            flush()
    flush()
    return (np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)), kept


def evaluate_embeddings(embeddings: np.ndarray, drawings: Sequence[Drawing], k: int = 10,
                        bucket_of_class: dict[str, str] | None = None) -> dict:
    """Both relevance definitions. ``bucket_of_class``: head/medium/tail of each class as in the
    whole corpus (a held-out gallery is too small to define them); default: from this gallery."""
    patents = [d.patent_id for d in drawings]
    classes = [d.locarno_class for d in drawings]
    return {rel: retrieval_metrics(embeddings, patents, classes, relevance=rel, k=k, bucket_of_class=bucket_of_class)
            for rel in ("patent", "class")}


def evaluate_corpus(src: str, encoder: Encoder, image_size: int = 224, k: int = 10, batch_size: int = 32,
                    storage: Storage | None = None, progress: bool = True,
                    bucket_of_class: dict[str, str] | None = None) -> dict:
    storage = storage or Storage()
    manifest = resolve_corpus(src, storage)
    drawings = [Drawing.from_row(r) for r in read_manifest(manifest, storage).to_pylist()]
    emb, kept = embed_drawings(drawings, encoder, image_size, batch_size, storage, progress)
    kept_drawings = [drawings[i] for i in kept]
    result = evaluate_embeddings(emb, kept_drawings, k, bucket_of_class)
    result["corpus"] = str(src)
    result["drawings"] = len(kept_drawings)
    result["patents"] = len({d.patent_id for d in kept_drawings})
    return result


def format_results(result: dict, k: int = 10) -> str:
    """A table: one row per relevance x bucket."""
    cols = ["mAP", f"recall@{k}", f"hit@{k}", f"mrr@{k}", "n"]
    lines = [f"{'relevance':<10} {'bucket':<8} " + " ".join(f"{c:>9}" for c in cols)]
    for rel in ("patent", "class"):
        m = result[rel]
        for b in ("overall", *BUCKETS):
            row = m[b]
            vals = [f"{row[c]:>9.3f}" if c != "n" else f"{row[c]:>9d}" for c in cols]
            lines.append(f"{rel:<10} {b:<8} " + " ".join(vals))
    return "\n".join(lines)
