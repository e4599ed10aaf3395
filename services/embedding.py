"""Query embedding: the trained towers applied to uploaded drawings and to words.

Preprocessing is :func:`priorsight.images.preprocess` (the one function indexing uses too):
:func:`prepare_image` decodes, validates, crops and preprocesses one upload, inside the
embedder (the ingress only passes the bytes on: no large arrays travel between replicas).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import torch

from priorsight.images import Crop, ImageError, decode_image, preprocess

log = logging.getLogger(__name__)


#: one query: its uploads (bytes, optional crop) and optional words
Query = tuple[list[tuple[bytes, Crop | None]], str | None]


@dataclass(frozen=True)
class QueryVectors:
    """A query's vectors (its image vectors, then its text vector), or why an upload failed."""

    vectors: np.ndarray | None
    error: str | None = None
    error_image: int | None = None  # index of the upload that could not be decoded


@dataclass(frozen=True)
class ModelInfo:
    name: str  # architecture (model config name)
    version: str  # what answered: checkpoint label
    image_size: int
    embed_dim: int
    text: bool  # words can be embedded


def prepare_image(data: bytes, image_size: int, crop: Crop | None = None, max_pixels: int = 80_000_000) -> np.ndarray:
    """Decode (raises :class:`priorsight.images.ImageError`) and preprocess one uploaded drawing."""
    return preprocess(decode_image(data, max_pixels), size=image_size, crop=crop)


def checkpoint_label(checkpoint: str) -> str:
    """A short, stable label of a checkpoint URI: its last path parts + a hash of the URI."""
    parts = PurePosixPath(checkpoint.rstrip("/")).parts[-2:]
    digest = hashlib.sha256(checkpoint.encode()).hexdigest()[:8]
    return f"{'/'.join(parts)}@{digest}"


class QueryEncoder:
    """The trained model in eval mode; ``embed_images`` / ``embed_texts`` give unit vectors."""

    def __init__(self, model: torch.nn.Module, version: str, text: bool = True, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        cfg = model.config
        self.text = text
        if text and getattr(model.text, "sentence_encoder", None) is None:
            from training.models import SentenceEncoder

            model.text.sentence_encoder = SentenceEncoder(cfg.text.encoder, cfg.text.max_tokens).eval()
        self.info = ModelInfo(cfg.name, version, cfg.vision.image_size, cfg.embed_dim, text)

    @classmethod
    def load(cls, checkpoint: str, version: str | None = None, text: bool = True, storage=None,
             threads: int | None = None) -> QueryEncoder:
        from training.train import load_trained_model

        model = load_trained_model(checkpoint, storage)
        return cls(model, version or checkpoint_label(checkpoint), text, threads)

    @torch.inference_mode()
    def embed_images(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 3, S, S) preprocessed drawings -> (N, D) float32 unit vectors."""
        if len(images) == 0:
            return np.zeros((0, self.info.embed_dim), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(list(images)), dtype=np.float32))
        return self.model.image(x).float().numpy()

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.embed_dim), np.float32)
        if not self.text:
            raise ValueError("this server was started without text queries (text_queries: false)")
        return self.model.text(list(texts)).float().numpy()

    def embed_queries(self, queries: list[tuple[list[np.ndarray], str | None]]) -> list[np.ndarray]:
        """Several queries at once (one forward pass per tower): per query, its image vectors
        followed by its text vector (if it has words)."""
        images = [img for imgs, _ in queries for img in imgs]
        texts = [t for _, t in queries if t]
        img_vecs = self.embed_images(images)
        txt_vecs = self.embed_texts(texts)
        out, i, j = [], 0, 0
        for imgs, t in queries:
            parts = [img_vecs[i:i + len(imgs)]]
            i += len(imgs)
            if t:
                parts.append(txt_vecs[j:j + 1])
                j += 1
            out.append(np.concatenate(parts, axis=0))
        return out

    def embed_uploads(self, queries: list[Query], max_pixels: int = 80_000_000) -> list[QueryVectors]:
        """Decode + preprocess + embed several queries (one forward pass per tower); a query with
        an undecodable upload gets its error and does not fail the others."""
        prepared: list[tuple[list[np.ndarray], str | None] | QueryVectors] = []
        for uploads, text in queries:
            arrays = []
            for i, (data, crop) in enumerate(uploads):
                try:
                    arrays.append(prepare_image(data, self.info.image_size, crop, max_pixels))
                except ImageError as exc:
                    prepared.append(QueryVectors(None, str(exc), i))
                    break
            else:
                prepared.append((arrays, text))
        good = [p for p in prepared if not isinstance(p, QueryVectors)]
        vectors = iter(self.embed_queries(good))  # type: ignore[arg-type]
        return [p if isinstance(p, QueryVectors) else QueryVectors(next(vectors)) for p in prepared]
