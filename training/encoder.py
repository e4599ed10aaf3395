"""The one predictor: a trained model (or the untrained baseline) as evaluation, the index job
and the query embedder use it.

``Encoder.from_checkpoint(run_dir)`` loads the trained towers; ``Encoder.baseline()`` is the
reference every number is compared with: the pretrained backbone's pooled features for
drawings and the raw MiniLM sentence embedding for words, both untrained. Either way:

* :attr:`Encoder.preprocessing`: the input its image tower expects (size, normalisation);
* :meth:`Encoder.embed_images` / :meth:`Encoder.embed_texts`: unit vectors;
* :meth:`Encoder.documents` / :meth:`Encoder.queries`: the fused vectors the index holds and
  queries are searched with (:mod:`priorsight.vectors`), with the trained model's class
  posterior (its :class:`~training.models.ClassHead`) as their third part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from priorsight.images import Preprocessing
from priorsight.vectors import FusionWeights, document_vectors, query_vectors

log = logging.getLogger(__name__)

BASELINE_BACKBONE = "efficientnet-lite0"


@dataclass
class Encoder:
    """Image and text towers behind one interface (see the module docstring)."""

    name: str  # the architecture (model config name, or "baseline:<backbone>")
    preprocessing: Preprocessing
    embed_dim: int  # the image tower's embedding
    text_dim: int
    image_tower: torch.nn.Module
    text_tower: torch.nn.Module | None = None  # strings -> (N, text_dim); None: no words
    #: what the checkpoint says of its training (class scheme, class counts, epoch, uri)
    info: dict[str, Any] = field(default_factory=dict)
    class_head: torch.nn.Module | None = None  # training.models.ClassHead of a trained model
    instance_dim: int = 0  # the image tower's InstanceHead, if any

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint: str, storage=None, text: bool = True, threads: int | None = None) -> Encoder:
        """The trained towers of a run directory or checkpoint URI (local or ``s3://``); with
        ``text``, the frozen sentence encoder too, so words can be embedded."""
        from training.models import SentenceEncoder
        from training.train import load_trained_model

        if threads:
            torch.set_num_threads(threads)
        model, info = load_trained_model(checkpoint, storage, with_info=True)
        cfg = model.config
        if text and model.text.sentence_encoder is None:
            model.text.sentence_encoder = SentenceEncoder(cfg.text.encoder, cfg.text.max_tokens).eval()
        return cls(cfg.name, cfg.vision.preprocessing(), cfg.embed_dim, cfg.embed_dim, model.image.eval(),
                   model.text.eval() if text else None, info, model.classes,
                   model.image.instance.dim if model.image.instance is not None else 0)

    @classmethod
    def baseline(cls, backbone: str = BASELINE_BACKBONE, image_size: int | None = None, text: bool = True) -> Encoder:
        """The untrained reference: pretrained backbone features (average-pooled) and raw MiniLM."""
        from training.backbones import default_normalize, load_backbone
        from training.models import SentenceEncoder

        model, dim = load_backbone(backbone, image_size=image_size)
        size = image_size or 224
        sentence = SentenceEncoder().eval() if text else None
        return cls(f"baseline:{backbone}", Preprocessing(size, default_normalize(backbone)), dim,
                   sentence.feature_dim if sentence is not None else 384, model.eval(), sentence)

    # -- embeddings -----------------------------------------------------------------------------
    @property
    def has_text(self) -> bool:
        return self.text_tower is not None

    @property
    def image_dim(self) -> int:
        """The width of :meth:`embed_images`' vectors: the embedding, then the instance vector."""
        return self.embed_dim + self.instance_dim

    @torch.inference_mode()
    def embed_images(self, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(N, 3, S, S) preprocessed drawings -> (N, image_dim) float32: each drawing's unit
        embedding and, with an instance head, its unit instance vector after it (one pass of the
        frozen prefix for both)."""
        if len(images) == 0:
            return np.zeros((0, self.image_dim), np.float32)
        x = np.ascontiguousarray(np.stack(list(images)) if not isinstance(images, np.ndarray) else images,
                                 dtype=np.float32)
        out = []
        for i in range(0, len(x), batch_size):
            t = torch.from_numpy(x[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
            if self.instance_dim:
                emb, inst = self.image_tower.embed(t)
                out.append(np.concatenate([_unit(emb.float().numpy()), _unit(inst.float().numpy())], axis=1))
            else:
                out.append(_unit(self.image_tower(t).float().numpy()))
        return np.concatenate(out)

    def _split(self, image_vectors: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        if image_vectors is None:
            return None, None
        v = np.asarray(image_vectors, np.float32)
        if v.shape[1] != self.image_dim:
            raise ValueError(f"expected ({len(v)}, {self.image_dim}) image vectors, got {v.shape}")
        return v[:, :self.embed_dim], (v[:, self.embed_dim:] if self.instance_dim else None)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Words -> (N, text_dim) float32 unit vectors (an empty text gives a zero vector)."""
        if self.text_tower is None:
            raise ValueError("this encoder was loaded without its text tower (text=False)")
        texts = list(texts)
        out = np.zeros((len(texts), self.text_dim), np.float32)
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        for j in range(0, len(keep), batch_size):
            rows = keep[j:j + batch_size]
            out[rows] = self.text_tower([texts[i] for i in rows]).float().numpy()
        return _unit(out)

    # -- fused vectors (priorsight.vectors) -------------------------------------------------------
    @property
    def class_dim(self) -> int:
        return 0 if self.class_head is None else self.class_head.num_classes

    @torch.inference_mode()
    def posteriors(self, image_vectors: np.ndarray | None, text_vectors: np.ndarray | None,
                   has_text: np.ndarray | None = None) -> np.ndarray | None:
        """The class head's balanced posterior of each row's drawing and/or words (product of
        experts: their logits added; a row without words uses its drawing alone). None without a
        class head."""
        if self.class_head is None:
            return None
        logits = []
        emb, _ = self._split(image_vectors)
        if emb is not None:
            logits.append(self.class_head.logits(torch.from_numpy(np.ascontiguousarray(emb))))
        if text_vectors is not None:
            t = self.class_head.logits(torch.from_numpy(np.asarray(text_vectors, np.float32)))
            if has_text is not None:  # no words: no evidence from them
                t = t * torch.from_numpy(np.asarray(has_text, np.float32))[:, None]
            logits.append(t)
        if not logits:
            raise ValueError("a posterior needs a drawing or words")
        return torch.softmax(torch.stack(logits).sum(dim=0), dim=-1).numpy()

    def documents(self, image_vectors: np.ndarray, texts: Sequence[str] | None) -> np.ndarray:
        """The index vectors ``[image ; words ; classes]`` of drawings (words: their
        :func:`~priorsight.vectors.document_text`)."""
        emb, inst = self._split(image_vectors)
        if texts is None or self.text_tower is None:
            return document_vectors(emb, None, self.text_dim, classes=self.posteriors(image_vectors, None),
                                    instance=inst)
        has = np.asarray([bool(t and t.strip()) for t in texts])
        words = self.embed_texts(texts)
        return document_vectors(emb, words, has_text=has, classes=self.posteriors(image_vectors, words, has),
                                instance=inst)

    def queries(self, image_vectors: np.ndarray | None, text_vectors: np.ndarray | None,
                weights: FusionWeights) -> np.ndarray:
        """The query vectors of rows with a drawing and/or words (see :mod:`priorsight.vectors`)."""
        emb, inst = self._split(image_vectors)
        return query_vectors(emb, text_vectors, weights, self.embed_dim, self.text_dim,
                             self.posteriors(image_vectors, text_vectors), self.class_dim,
                             inst, self.instance_dim)

    @property
    def vector_dim(self) -> int:
        """The dimension of the fused vectors (what an index collection holds)."""
        return self.image_dim + self.text_dim + self.class_dim


def checkpoint_vector_dim(ckpt: dict[str, Any]) -> int:
    """The index vector dimension of a loaded checkpoint (without building the model): image and
    words (``embed_dim`` each) and the class head's classes (when it has one)."""
    dim = 2 * int(ckpt["model_config"]["embed_dim"]) + int(ckpt["model_config"].get("instance_dim") or 0)
    if "classes.prototypes" in (ckpt.get("model") or {}):
        dim += int(ckpt["model"]["classes.prototypes"].shape[0])
    return dim


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(n > 0, x / np.maximum(n, 1e-12), 0).astype(np.float32)


__all__ = ["BASELINE_BACKBONE", "Encoder", "checkpoint_vector_dim"]
