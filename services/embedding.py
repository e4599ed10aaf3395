"""Query embedding: the trained towers applied to uploaded drawings and to words.

Preprocessing is the model's :class:`priorsight.images.Preprocessing` (the one function indexing
uses too): :func:`prepare_image` decodes, validates, crops and preprocesses one upload, inside
the embedder (the ingress only passes the bytes on: no large arrays travel between replicas).

A query becomes its *fused* vectors (:mod:`priorsight.vectors`): one per uploaded view, each
``[image ; words]`` weighted by :class:`~priorsight.vectors.FusionWeights`, or one from the words
alone. The index holds every drawing as ``[image ; its own words]``, so one inner-product search
per vector scores image and words together, and the views are then fused by the searcher.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from priorsight.images import Crop, ImageError, Preprocessing, decode_image
from priorsight.vectors import DEFAULT_WEIGHTS, FusionWeights

log = logging.getLogger(__name__)


#: one query: its uploads (bytes, optional crop) and optional words
Query = tuple[list[tuple[bytes, Crop | None]], str | None]


@dataclass(frozen=True)
class QueryVectors:
    """A query's fused vectors (one per uploaded view, or one for words alone), or why an upload
    failed."""

    vectors: np.ndarray | None
    error: str | None = None
    error_image: int | None = None  # index of the upload that could not be decoded


@dataclass(frozen=True)
class ModelInfo:
    name: str  # architecture (model config name)
    version: str  # what answered: checkpoint label
    image_size: int
    embed_dim: int  # the dimension of the fused vectors the index holds (priorsight.vectors)
    text: bool  # words can be embedded
    normalize: str = "inception"  # the image tower's input normalisation

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.image_size, self.normalize)  # type: ignore[arg-type]


def prepare_image(data: bytes, preprocessing: Preprocessing | int, crop: Crop | None = None,
                  max_pixels: int = 80_000_000) -> np.ndarray:
    """Decode (raises :class:`priorsight.images.ImageError`) and preprocess one uploaded drawing."""
    pre = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(preprocessing)
    return pre(decode_image(data, max_pixels), crop)


def checkpoint_label(checkpoint: str) -> str:
    """A short, stable label of a checkpoint URI: its last path parts + a hash of the URI."""
    parts = PurePosixPath(checkpoint.rstrip("/")).parts[-2:]
    digest = hashlib.sha256(checkpoint.encode()).hexdigest()[:8]
    return f"{'/'.join(parts)}@{digest}"


class QueryEncoder:
    """The trained model (:class:`training.encoder.Encoder`) as the service uses it: uploads and
    words in, fused query vectors out."""

    def __init__(self, encoder, version: str, weights: FusionWeights | None = None):
        self.encoder = encoder
        self.weights = weights or DEFAULT_WEIGHTS
        self.text = encoder.has_text
        pre = encoder.preprocessing
        self.info = ModelInfo(encoder.name, version, pre.size, encoder.vector_dim, self.text, pre.normalize)

    @property
    def model(self):
        """The image tower (what one forward pass of a drawing runs)."""
        return self.encoder.image_tower

    @classmethod
    def load(cls, checkpoint: str, version: str | None = None, text: bool = True, storage=None,
             threads: int | None = None, weights: FusionWeights | None = None) -> QueryEncoder:
        from training.encoder import Encoder

        encoder = Encoder.from_checkpoint(checkpoint, storage, text=text, threads=threads)
        return cls(encoder, version or checkpoint_label(checkpoint), weights)

    def embed_images(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 3, S, S) preprocessed drawings -> (N, image_dim) float32 image vectors (embedding, instance)."""
        return self.encoder.embed_images(images)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if texts and not self.text:
            raise ValueError("this server was started without text queries (text_queries: false)")
        if not texts:
            return np.zeros((0, self.encoder.text_dim), np.float32)
        return self.encoder.embed_texts(texts)

    def embed_queries(self, queries: list[tuple[list[np.ndarray], str | None]]) -> list[np.ndarray]:
        """Several queries at once (one forward pass per tower): per query, its fused vectors,
        one per view (each with the query's words, if any), or one for words alone."""
        images = [img for imgs, _ in queries for img in imgs]
        texts = [t for _, t in queries if t]
        img_vecs = self.embed_images(images)
        txt_vecs = self.embed_texts(texts)
        out, i, j = [], 0, 0
        for imgs, t in queries:
            views = img_vecs[i:i + len(imgs)]
            i += len(imgs)
            words = None
            if t:
                words = txt_vecs[j:j + 1]
                j += 1
            if len(views):
                out.append(self.encoder.queries(views, None if words is None else np.repeat(words, len(views), 0),
                                                self.weights))
            else:
                out.append(self.encoder.queries(None, words, self.weights))
        return out

    def embed_uploads(self, queries: list[Query], max_pixels: int = 80_000_000) -> list[QueryVectors]:
        """Decode + preprocess + embed several queries (one forward pass per tower); a query with
        an undecodable upload gets its error and does not fail the others."""
        prepared: list[tuple[list[np.ndarray], str | None] | QueryVectors] = []
        pre = self.encoder.preprocessing
        for uploads, text in queries:
            arrays = []
            for i, (data, crop) in enumerate(uploads):
                try:
                    arrays.append(prepare_image(data, pre, crop, max_pixels))
                except ImageError as exc:
                    prepared.append(QueryVectors(None, str(exc), i))
                    break
            else:
                prepared.append((arrays, text))
        good = [p for p in prepared if not isinstance(p, QueryVectors)]
        vectors = iter(self.embed_queries(good))  # type: ignore[arg-type]
        return [p if isinstance(p, QueryVectors) else QueryVectors(next(vectors)) for p in prepared]
