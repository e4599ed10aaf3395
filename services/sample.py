"""A small self-contained serving setup: generated drawings, an untrained model checkpoint and
an index of their real embeddings. Used by the serving tests, and by ``priorsight serve`` /
``priorsight bench serve`` with ``--sample`` when no trained model and index exist yet.

The model is the shipped ``demo-small`` architecture: the packaged ImageNet backbone (offline)
with random projection heads, so rankings are only roughly visual; every step (preprocessing,
batching, ANN, fusion, HTTP) is real.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from priorsight.config import MilvusConfig
from priorsight.manifest import CorpusWriter, iter_drawings
from priorsight.milvus import (
    connect,
    create_drawing_collection,
    drawing_row,
    next_version_name,
    swap_alias,
    upsert_drawings,
)
from priorsight.records import Drawing
from priorsight.storage import Storage
from priorsight.vectors import document_text

log = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "bars")
VIEW_ORDER = ("perspective", "front", "top")
LOCARNO = ("26-03", "07-02", "09-01", "14-02", "21-01", "06-01", "12-08", "28-03")


def draw_shape(shape: str, variant: int = 0, size: int = 256) -> bytes:
    """A line drawing (PNG bytes) of ``shape``; ``variant`` changes scale, angle and detail."""
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    c = size / 2
    r = size * (0.32 - 0.04 * variant)
    w = 3 + variant
    angle = variant * math.pi / 9
    if shape == "circle":
        d.ellipse((c - r, c - r, c + r, c + r), outline=0, width=w)
    elif shape == "square":
        pts = [(c + r * math.cos(angle + math.pi / 4 + i * math.pi / 2), c + r * math.sin(angle + math.pi / 4 + i * math.pi / 2)) for i in range(4)]
        d.polygon(pts, outline=0, width=w)
    elif shape == "triangle":
        pts = [(c + r * math.cos(angle - math.pi / 2 + i * 2 * math.pi / 3), c + r * math.sin(angle - math.pi / 2 + i * 2 * math.pi / 3)) for i in range(3)]
        d.polygon(pts, outline=0, width=w)
    elif shape == "star":
        pts = [(c + (r if i % 2 == 0 else r / 2.5) * math.cos(angle + i * math.pi / 5), c + (r if i % 2 == 0 else r / 2.5) * math.sin(angle + i * math.pi / 5)) for i in range(10)]
        d.polygon(pts, outline=0, width=w)
    elif shape == "cross":
        d.line((c - r, c, c + r, c), fill=0, width=w * 3)
        d.line((c, c - r, c, c + r), fill=0, width=w * 3)
    elif shape == "ring":
        d.ellipse((c - r, c - r, c + r, c + r), outline=0, width=w)
        d.ellipse((c - r / 2, c - r / 2, c + r / 2, c + r / 2), outline=0, width=w)
    elif shape == "hexagon":
        pts = [(c + r * math.cos(angle + i * math.pi / 3), c + r * math.sin(angle + i * math.pi / 3)) for i in range(6)]
        d.polygon(pts, outline=0, width=w)
    else:  # bars
        for i in range(4):
            x = c - r + i * r * 2 / 3
            d.rectangle((x, c - r, x + r / 4, c + r), outline=0, width=w)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_sample_corpus(out_dir: Path, n_patents: int = 6, views: int = 3, storage: Storage | None = None) -> str:
    """``n_patents`` patents x ``views`` drawings as PNGs plus ``manifest.parquet``; returns the
    corpus directory."""
    storage = storage or Storage()
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    with CorpusWriter(str(out_dir), storage) as w:
        for p in range(n_patents):
            shape = SHAPES[p % len(SHAPES)]
            pid = f"USD09{p:05d}"
            for v in range(views):
                path = out_dir / "images" / f"{pid}-{v + 1}.png"
                path.write_bytes(draw_shape(shape, v))
                w.write(Drawing(drawing_id=f"{pid}-{v + 1}", patent_id=pid, image_uri=str(path), source="sample",
                                figure_number=v + 1, figure_label=f"FIG. {v + 1}",
                                view=VIEW_ORDER[v % len(VIEW_ORDER)], locarno_class=LOCARNO[p % len(LOCARNO)],
                                grant_date=f"202{p % 4}-0{1 + p % 9}-1{p % 9}", title=f"Ornamental {shape} design",
                                object_name=shape, width=256, height=256))
    return str(out_dir)


def write_random_checkpoint(path: Path, model_config: str = "demo-small", seed: int = 0) -> str:
    """A checkpoint (the training format) of ``model_config``: the packaged pretrained backbone
    (offline) with randomly initialised projection heads."""
    from training.models import DrawingTextModel, load_model_config

    cfg = load_model_config(model_config)
    torch.manual_seed(seed)
    model = DrawingTextModel.from_config(cfg, load_text_encoder=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "model": model.state_dict(), "model_config": cfg.model_dump(mode="json"),
                "metrics": {}, "class_vocab": []}, path)
    return str(path)


@dataclass
class IndexedSample:
    corpus: str
    checkpoint: str
    collection: str
    rows: int


def index_corpus(encoder, corpus: str, milvus: MilvusConfig, storage: Storage | None = None,
                 model_version: str = "sample") -> tuple[str, int]:
    """Embed every drawing of ``corpus`` with ``encoder`` (a :class:`services.embedding.QueryEncoder`,
    the shared preprocessing) into a new version of ``milvus.alias``; returns (collection, rows)."""
    storage = storage or Storage()
    drawings = list(iter_drawings(corpus, storage))
    pre = encoder.info.preprocessing
    arrays = [pre.load(storage.read_bytes(d.image_uri)) for d in drawings]
    images = np.concatenate([encoder.embed_images(arrays[i:i + 32]) for i in range(0, len(arrays), 32)])
    vectors = encoder.encoder.documents(images, [document_text(d) for d in drawings] if encoder.text else None)
    client = connect(milvus)
    try:
        name = next_version_name(client, milvus.alias)
        create_drawing_collection(client, name, encoder.info.embed_dim, milvus, model_version=model_version)
        upsert_drawings(client, name, [drawing_row(d, v, model_version) for d, v in zip(drawings, vectors, strict=True)])
        client.flush(name)
        swap_alias(client, milvus.alias, name)
    finally:
        client.close()
    log.info("indexed %d sample drawings into %s", len(drawings), name)
    return name, len(drawings)


def ensure_indexed(corpus: str, checkpoint: str, milvus: MilvusConfig) -> None:
    """Start the embedded server of ``milvus`` and index ``corpus`` with the model at
    ``checkpoint`` unless ``milvus.alias`` already names a collection (a sample built before)."""
    from priorsight.milvus import EmbeddedMilvus, live_collection
    from services.embedding import QueryEncoder

    EmbeddedMilvus.from_config(milvus).start()
    client = connect(milvus)
    try:
        indexed = live_collection(client, milvus.alias) is not None
    finally:
        client.close()
    if not indexed:
        index_corpus(QueryEncoder.load(checkpoint, text=True), corpus, milvus)


def sample_setup(root: Path, milvus: MilvusConfig, text: bool = True, n_patents: int = 6, views: int = 3,
                 source: str = "sample"):
    """Corpus + checkpoint + index under ``root``; returns ``(ServeConfig, QueryEncoder)`` (the
    encoder already loaded, to reuse in-process)."""
    from priorsight.config import SearchSourceConfig, ServeConfig
    from services.embedding import QueryEncoder

    root = Path(root)
    corpus = write_sample_corpus(root / "corpus", n_patents, views)
    checkpoint = write_random_checkpoint(root / "model" / "sample.pt")
    encoder = QueryEncoder.load(checkpoint, text=text)
    index_corpus(encoder, corpus, milvus)
    config = ServeConfig(checkpoint=checkpoint, manifest=corpus, text_queries=text,
                         sources=[SearchSourceConfig(name=source, milvus=milvus)])
    return config, encoder
