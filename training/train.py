"""Distribution-aware multimodal training on Ray Train (TorchTrainer, DDP over gloo or NCCL).

The training itself (:func:`run_training`) is plain PyTorch + ``torch.distributed`` and runs
the same under Ray (:func:`train`), under ``torch.multiprocessing`` (tests) or in one process.

Per step each rank takes its slice of a class-aware global batch
(:class:`~training.samplers.ClassAwareBatchSampler`), decodes and augments its drawings
(seeded by epoch, step and *global* batch position), picks one description per drawing
(:class:`~training.samplers.DescriptionBank`) and looks up its cached sentence features, embeds
both and computes :class:`~training.losses.PriorSightLoss` with embeddings gathered across ranks.
So N workers compute the same loss on the same global batch as one worker.

Checkpoints go through :class:`priorsight.storage.Storage` (local path or ``s3://``):
``RUN_DIR/checkpoints/epoch-0003.pt`` plus ``RUN_DIR/checkpoints/latest.json``; a run pointed
at a ``run_dir`` that holds checkpoints resumes after the latest one.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, Field
from torch import Tensor, nn

from priorsight.classes import ClassScheme, LevelChoice, SchemeChoice, labelled_counts, resolve_scheme
from priorsight.config import StorageConfig
from priorsight.images import decode_image
from priorsight.manifest import read_manifest
from priorsight.storage import NotFound, Storage, is_s3, join
from priorsight.vectors import document_text
from training.augment import AugmentConfig, DrawingAugmenter, view_rng
from training.backbones import extract_features
from training.feature_cache import (
    cached_fingerprint,
    compute_view_features,
    feature_fingerprint,
    load_cache,
    step_views,
    write_cache,
)
from training.losses import DEFAULT_LOSS, LossConfig, PriorSightLoss, world
from training.models import (
    DEFAULT_MODEL,
    DrawingTextModel,
    ImageEncoder,
    ModelConfig,
    load_model_config,
    load_or_embed_texts,
    sentence_encoder_id,
    text_cache_matches,
)
from training.samplers import BatchConfig, ClassAwareBatchSampler, DescriptionBank, class_counts, encode_labels

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"
TEXT_FEATURES = "text_features.npz"
DOCUMENT_FEATURES = "document_features.npz"


class RunMismatch(ValueError):
    """A run directory already holds checkpoints of another architecture."""


class TrainConfig(BaseModel):
    """Everything a training run needs (typed; the CLI builds it from YAML/flags)."""

    model_config = {"extra": "forbid", "arbitrary_types_allowed": True}

    model: str | ModelConfig = DEFAULT_MODEL  # shipped config name, JSON path, or the config itself
    corpus: str  # corpus directory or manifest URI
    descriptions: str | None = None  # describe-stage table (drawing_id, descriptions); needed for image-text
    run_dir: str  # checkpoints and the text feature cache: local path or s3://
    epochs: int = Field(default=1, ge=1)
    max_steps_per_epoch: int | None = Field(default=None, ge=1)
    lr: float = 1e-3  # heads, loss parameters
    backbone_lr: float = 1e-4
    weight_decay: float = 0.05
    first_description_p: float | None = None  # probability of the metadata-only description
    #: with frozen backbone modules (``freeze_blocks``: a number or ``"all"``): run the frozen part
    #: once on this many views of every drawing (plain + augmented) and train the rest on its
    #: output (0: decode and augment every step, as with a trainable backbone)
    feature_views: int = Field(default=4, ge=0)
    feature_cache: str | None = None  # where the cached features go (default: run_dir); shareable
    batch: BatchConfig = BatchConfig()
    #: class distribution that class-balanced weights and logit adjustment correct for: the one the
    #: class-aware sampler shows ("sampled") or the corpus's own ("dataset")
    prior: Literal["sampled", "dataset"] = "sampled"
    #: which classes the class-aware sampler and the class-level losses use (priorsight.classes;
    #: ``auto``: the scheme that labels more of the corpus, at its default level)
    class_scheme: SchemeChoice = "auto"
    class_level: LevelChoice = "auto"
    loss: LossConfig = DEFAULT_LOSS
    augment: AugmentConfig = AugmentConfig()
    seed: int = 0
    keep_checkpoints: int = Field(default=2, ge=1)
    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1.0, gt=0)
    storage: StorageConfig = StorageConfig()

    def model_cfg(self) -> ModelConfig:
        return self.model if isinstance(self.model, ModelConfig) else load_model_config(self.model)

    def uses_feature_cache(self) -> bool:
        v = self.model_cfg().vision
        return self.feature_views > 0 and (v.freeze_blocks == "all" or v.freeze_blocks > 0)

    def feature_cache_dir(self) -> str:
        return self.feature_cache or self.run_dir


# -- data --------------------------------------------------------------------------------------

@dataclass
class TrainingSet:
    """The drawings used for training, with integer patent and class codes (dataset-wide) and
    each drawing's words (its title: what represents it as text at query and index time)."""

    drawing_ids: list[str]
    image_uris: list[str]
    patent_codes: np.ndarray
    class_codes: np.ndarray
    class_vocab: list[str]
    scheme: ClassScheme = ClassScheme()
    titles: list[str] | None = None

    @classmethod
    def from_manifest(cls, corpus: str, storage: Storage | None = None, scheme: SchemeChoice = "auto",
                      level: LevelChoice = "auto") -> TrainingSet:
        t = read_manifest(corpus, storage)
        all_rows = t.to_pylist()
        chosen = resolve_scheme(scheme, level, labelled_counts(all_rows))
        rows = [r for r in all_rows if chosen.of(r)]
        if len(rows) < t.num_rows:
            log.warning("%d drawings without a %s class left out of training", t.num_rows - len(rows), chosen.name)
        if not rows:
            raise ValueError(f"no drawing with a {chosen.name} class ({chosen.field}) in {corpus}")
        patents, _ = encode_labels([r["patent_id"] for r in rows])
        classes, vocab = encode_labels([chosen.of(r) for r in rows])
        return cls([r["drawing_id"] for r in rows], [r["image_uri"] for r in rows], patents, classes, vocab,
                   chosen, [document_text(r) for r in rows])

    def __len__(self) -> int:
        return len(self.drawing_ids)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.class_codes, minlength=len(self.class_vocab))
        return {c: int(n) for c, n in zip(self.class_vocab, counts, strict=True)}


def load_images(data: TrainingSet, indices: list[int], augmenter: DrawingAugmenter, storage: Storage,
                seed: int, epoch: int, step: int, first_position: int) -> Tensor:
    """Decode and augment drawings; view ``first_position + j`` of step ``step`` seeds item j."""
    out = []
    for j, i in enumerate(indices):
        img = decode_image(storage.read_bytes(data.image_uris[i]))
        out.append(augmenter(img, view_rng(seed, epoch, step, first_position + j)))
    return torch.from_numpy(np.stack(out))


def prepare_text_features(cfg: TrainConfig, storage: Storage | None = None) -> str | None:
    """Embed every description once (frozen sentence encoder) into ``RUN_DIR/text_features.npz``
    (reused when it matches the texts). Returns its URI, or None without descriptions."""
    if cfg.descriptions is None:
        return None
    mcfg = cfg.model_cfg()
    if not mcfg.text.freeze:
        raise ValueError("cached text features need a frozen text encoder (text.freeze = true)")
    storage = storage or Storage(cfg.storage)
    bank = DescriptionBank.read(cfg.descriptions, storage)
    uri = join(cfg.run_dir, TEXT_FEATURES)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / TEXT_FEATURES
        if storage.exists(uri):
            storage.download(uri, local)
        if not text_cache_matches(local, bank.texts, _encoder_id(mcfg)):
            load_or_embed_texts(bank.texts, local, encoder_path=mcfg.text.encoder, max_tokens=mcfg.text.max_tokens)
            storage.upload(local, uri)
    return uri


def prepare_document_features(cfg: TrainConfig, data: TrainingSet, storage: Storage | None = None) -> str:
    """Embed every training drawing's words (:func:`document_text`) once with the frozen sentence
    encoder into ``RUN_DIR/document_features.npz`` (reused when it matches). Returns its URI."""
    mcfg = cfg.model_cfg()
    storage = storage or Storage(cfg.storage)
    texts = sorted(set(data.titles or []))
    uri = join(cfg.run_dir, DOCUMENT_FEATURES)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / DOCUMENT_FEATURES
        if storage.exists(uri):
            storage.download(uri, local)
        if not text_cache_matches(local, texts, _encoder_id(mcfg)):
            load_or_embed_texts(texts, local, encoder_path=mcfg.text.encoder, max_tokens=mcfg.text.max_tokens)
            storage.upload(local, uri)
    return uri


def _vision_fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    v = cfg.model_cfg().vision
    pre = v.preprocessing()
    return {"backbone": v.backbone, "weights": v.weights, "image_size": v.image_size, "normalize": pre.normalize,
            "pooling": v.pooling, "frozen": v.freeze_blocks}


def _feature_fingerprint(cfg: TrainConfig, data: TrainingSet) -> str:
    return feature_fingerprint(data.drawing_ids, data.image_uris, _vision_fingerprint(cfg),
                               cfg.augment, cfg.feature_views, cfg.seed)


def prepare_image_features(cfg: TrainConfig, storage: Storage | None = None, progress: bool = True) -> str | None:
    """Embed ``feature_views`` views of every training drawing with the frozen backbone into
    ``feature_cache`` (default ``run_dir``), reused when it matches. Returns the cache directory,
    or None when the backbone is trainable (or ``feature_views`` is 0)."""
    if not cfg.uses_feature_cache():
        return None
    storage = storage or Storage(cfg.storage)
    cache_dir = cfg.feature_cache_dir()
    data = _training_set(cfg, storage)
    key = _feature_fingerprint(cfg, data)
    if cached_fingerprint(cache_dir, storage) == key:
        log.info("backbone features from cache %s", cache_dir)
        return cache_dir
    mcfg = cfg.model_cfg()
    prefix = ImageEncoder.from_config(mcfg).frozen_prefix()
    if prefix is None:
        raise ValueError(f"backbone {mcfg.vision.backbone!r} cannot run its first {mcfg.vision.freeze_blocks} "
                         "modules apart: freeze all of it or none, or set feature_views: 0")
    t0 = time.perf_counter()
    write_cache(cache_dir, key, lambda path: compute_view_features(
        data.image_uris, prefix, mcfg.vision.preprocessing(), cfg.feature_views, cfg.seed, path, cfg.augment,
        storage, progress=progress), storage)
    dt = time.perf_counter() - t0
    log.info("ran the frozen backbone%s on %d views of %d drawings in %.1f s (%.1f images/s) -> %s",
             "" if prefix.whole else f" prefix ({prefix.n} modules)", cfg.feature_views, len(data), dt,
             cfg.feature_views * len(data) / max(dt, 1e-9), cache_dir)
    return cache_dir


def _training_set(cfg: TrainConfig, storage: Storage) -> TrainingSet:
    return TrainingSet.from_manifest(cfg.corpus, storage, cfg.class_scheme, cfg.class_level)


def _pretrained_sample(module: TrainModule, data: TrainingSet, features: np.ndarray | None, cfg: TrainConfig,
                       storage: Storage, rng: np.random.Generator, max_rows: int, max_images: int) -> Tensor:
    """The pretrained backbone's pooled features of (a sample of) the training drawings' plain views."""
    image = module.model.image
    with torch.no_grad():
        if features is not None:
            rows = np.sort(rng.choice(len(features), min(len(features), max_rows), replace=False))
            x = torch.from_numpy(np.ascontiguousarray(features[rows, 0], dtype=np.float32))
            return torch.cat([image.pretrained_features(c, cached=True) for c in x.split(64)])
        pre = cfg.model_cfg().vision.preprocessing()
        rows = np.sort(rng.choice(len(data), min(len(data), max_images), replace=False))
        imgs = torch.from_numpy(np.stack([pre(decode_image(storage.read_bytes(data.image_uris[i]))) for i in rows]))
        return torch.cat([image.pretrained_features(c) for c in imgs.split(32)])


def init_head(module: TrainModule, data: TrainingSet, features: np.ndarray | None, cfg: TrainConfig,
              storage: Storage, max_rows: int = 8192, max_images: int = 512,
              document_features: np.ndarray | None = None) -> None:
    """Start residual heads from the principal directions of the training features: the image
    head from the pooled features of the plain views (cached, or computed by the trainable rest
    of the backbone from the cached prefix maps, or from a sample of drawings), the text head
    from the training drawings' words."""
    image = module.model.image
    rng = np.random.default_rng(cfg.seed)
    if image.head.kind == "residual":
        if features is not None:
            rows = np.sort(rng.choice(len(features), min(len(features), max_rows), replace=False))
            x = torch.from_numpy(np.ascontiguousarray(features[rows, 0], dtype=np.float32))
            if not image.backbone_frozen:
                with torch.no_grad():
                    was = image.training
                    image.eval()
                    x = torch.cat([image.backbone.run(c.contiguous(memory_format=torch.channels_last),
                                                      image.frozen_modules) for c in x.split(64)])
                    image.train(was)
        else:
            pre = cfg.model_cfg().vision.preprocessing()
            rows = np.sort(rng.choice(len(data), min(len(data), max_images), replace=False))
            imgs = np.stack([pre(decode_image(storage.read_bytes(data.image_uris[i]))) for i in rows])
            x = torch.from_numpy(extract_features(image.backbone, imgs))
        k = image.head.init_from_features(x)
        log.info("image head initialised from %d principal directions of %d drawings' features", k, len(x))
        if image.instance is not None:
            image.instance.fit(x)  # x: the pretrained features (the backbone has not trained yet)
    elif image.instance is not None:
        image.instance.fit(_pretrained_sample(module, data, features, cfg, storage, rng, max_rows, max_images))
    text_head = module.model.text.head
    if text_head.kind == "residual" and document_features is not None and len(document_features) > 1:
        k = text_head.init_from_features(torch.from_numpy(np.asarray(document_features, np.float32)))
        log.info("text head initialised from %d principal directions of %d texts", k, len(document_features))


def _encoder_id(mcfg: ModelConfig) -> str:
    return sentence_encoder_id(mcfg.text.encoder, mcfg.text.max_tokens)


def _load_text_features(uri: str, texts: list[str], mcfg: ModelConfig, storage: Storage) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        local = storage.download(uri, Path(tmp) / TEXT_FEATURES)
        if not text_cache_matches(local, texts, _encoder_id(mcfg)):
            raise ValueError(f"{uri} was computed for other descriptions or another encoder: rerun prepare_text_features")
        with np.load(local) as z:
            return z["features"]


def _load_document_features(uri: str, data: TrainingSet, mcfg: ModelConfig, storage: Storage
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(distinct texts' features, each drawing's row in them; -1: no words)."""
    texts = sorted(set(data.titles or []))
    feats = _load_text_features(uri, texts, mcfg, storage)
    row = {t: i for i, t in enumerate(texts)}
    return feats, np.asarray([row[t] if t else -1 for t in data.titles or []], dtype=np.int64)


# -- model + loss --------------------------------------------------------------------------------

class TrainModule(nn.Module):
    """Model and loss in one module, so DDP also averages the loss's own parameters
    (logit scale, class prototypes, uncertainty weights)."""

    def __init__(self, model: DrawingTextModel, loss: PriorSightLoss):
        super().__init__()
        self.model = model
        self.loss = loss
        #: the pretrained backbone, frozen (not optimised): the preserve term's teacher; the image
        #: tower's own instance head holds one already when it has one
        self.anchor: nn.Module | None = None
        image = model.image
        if "preserve" in loss.terms and image.instance is None and not image.backbone_frozen:
            self.anchor = copy.deepcopy(image.backbone).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> TrainModule:
        super().train(mode)
        if self.anchor is not None:
            self.anchor.eval()
        return self

    def _anchor(self, images: Tensor, cached: bool) -> Tensor | None:
        if "preserve" not in self.loss.terms:
            return None
        image = self.model.image
        with torch.no_grad():
            if self.anchor is None:  # the instance head's pretrained copy, or the frozen backbone itself
                return image.pretrained_features(images, cached)
            x = images.contiguous(memory_format=torch.channels_last)
            return self.anchor.run(x, image.frozen_modules) if cached else self.anchor(x)

    def forward(self, images: Tensor, patents: Tensor, classes: Tensor, text_features: Tensor | None,
                cached: bool = False, document_features: Tensor | None = None,
                has_document: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        img = self.model.image.forward_cached(images) if cached else self.model.image(images)
        txt = None if text_features is None else self.model.text(text_features)
        doc = None if document_features is None else self.model.text(document_features)
        protos = None if self.model.classes is None else self.model.classes.prototypes
        return self.loss(img, patents, classes, text_emb=txt, doc_emb=doc, doc_mask=has_document,
                         anchor=self._anchor(images, cached), prototypes=protos)


def build_module(cfg: TrainConfig, mcfg: ModelConfig, counts: list[int]) -> TrainModule:
    torch.manual_seed(cfg.seed)  # same initial heads on every rank (DDP also broadcasts rank 0's)
    loss = PriorSightLoss(cfg.loss, counts, mcfg.embed_dim)
    model = DrawingTextModel.from_config(mcfg, load_text_encoder=False,
                                         num_classes=len(counts) if loss.needs_prototypes else 0,
                                         class_temperature=loss.la_temperature)
    return TrainModule(model, loss)


def make_optimizer(module: TrainModule, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.backbone_lr if name.startswith("model.image.backbone.") else cfg.lr
        no_decay = p.ndim < 2 or name.startswith("loss.")  # biases, norms, scales, log-variances
        groups.setdefault((lr, 0.0 if no_decay else cfg.weight_decay), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])


def _unwrap(module: nn.Module) -> TrainModule:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def train_step(module: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, patents: Tensor,
               classes: Tensor, text_features: Tensor | None, cached: bool = False,
               document_features: Tensor | None = None, has_document: Tensor | None = None) -> dict[str, float]:
    """One optimisation step; returns this rank's loss terms (before the update)."""
    module.train()
    optimizer.zero_grad(set_to_none=True)
    total, parts = module(images, patents, classes, text_features, cached, document_features, has_document)
    total.backward()
    optimizer.step()
    clip = _unwrap(module).loss.terms["image_text"] if "image_text" in _unwrap(module).loss.terms else None
    if clip is not None:
        with torch.no_grad():  # as open_clip: keep the logit scale within [0, ln 100]
            clip.logit_scale.clamp_(0, math.log(clip.max_logit_scale))
    return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}


def _mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    _, size = world()
    if size == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / size for k, v in zip(keys, t.tolist(), strict=True)}


# -- checkpoints ---------------------------------------------------------------------------------

def latest_checkpoint(run_dir: str, storage: Storage) -> dict[str, Any] | None:
    """``{"epoch": E, "uri": ..., "metrics": {...}}`` of the latest checkpoint under ``run_dir``."""
    try:
        return json.loads(storage.read_bytes(join(run_dir, CHECKPOINT_DIR, LATEST)))
    except NotFound:
        return None


def save_checkpoint(run_dir: str, storage: Storage, module: TrainModule, optimizer: torch.optim.Optimizer,
                    epoch: int, metrics: dict[str, float], mcfg: ModelConfig, class_vocab: list[str],
                    keep: int, class_scheme: str = "", class_counts: dict[str, int] | None = None) -> str:
    uri = join(run_dir, CHECKPOINT_DIR, f"epoch-{epoch:04d}.pt")
    buf = io.BytesIO()
    torch.save({"epoch": epoch, "model": module.model.state_dict(), "loss": module.loss.state_dict(),
                "optimizer": optimizer.state_dict(), "metrics": metrics,
                "model_config": mcfg.model_dump(mode="json"), "class_vocab": class_vocab,
                "class_scheme": class_scheme, "class_counts": class_counts or {}}, buf)
    storage.write_bytes(uri, buf.getvalue())
    latest = {"epoch": epoch, "uri": uri, "metrics": metrics}
    storage.write_bytes(join(run_dir, CHECKPOINT_DIR, LATEST), json.dumps(latest).encode())
    for old in range(epoch - keep, -1, -1):
        old_uri = join(run_dir, CHECKPOINT_DIR, f"epoch-{old:04d}.pt")
        if not storage.exists(old_uri):
            break
        storage.delete(old_uri)
    log.info("checkpoint %s", uri)
    return uri


def load_checkpoint(uri: str, storage: Storage | None = None) -> dict[str, Any]:
    ckpt = torch.load(io.BytesIO((storage or Storage()).read_bytes(uri)), map_location="cpu", weights_only=False)
    vision = (ckpt.get("model_config") or {}).get("vision")
    if isinstance(vision, dict):  # trained before the normalisation was part of the config: ImageNet's
        vision.setdefault("normalize", "imagenet")
    return ckpt


def checkpoint_model_config(run_dir: str, storage: Storage) -> dict | None:
    """The model config (JSON form) of the latest checkpoint under ``run_dir``, if any."""
    latest = latest_checkpoint(run_dir, storage)
    return None if latest is None else load_checkpoint(latest["uri"], storage).get("model_config")


def set_aside_other_run(cfg: TrainConfig, storage: Storage) -> str | None:
    """When the local ``run_dir`` holds checkpoints of another architecture (e.g. a demo run
    from before its model changed), rename it to ``RUN_DIR.<old model>-<time>`` (nothing is
    deleted) and return the new path; else None."""
    found = checkpoint_model_config(cfg.run_dir, storage)
    if found is None or found == cfg.model_cfg().model_dump(mode="json") or is_s3(cfg.run_dir):
        return None
    target = f"{cfg.run_dir.rstrip('/')}.{found.get('name', 'old')}-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(cfg.run_dir, target)
    log.warning("%s held a run of model %r: moved to %s", cfg.run_dir, found.get("name"), target)
    return target


def checkpoint_uri(run_dir_or_checkpoint: str, storage: Storage) -> str:
    """The checkpoint file of a run directory (its latest) or a checkpoint URI as is."""
    uri = run_dir_or_checkpoint
    if not uri.endswith(".pt"):
        latest = latest_checkpoint(uri, storage)
        if latest is None:
            raise NotFound(f"no checkpoint under {uri}")
        uri = latest["uri"]
    return uri


def load_trained_model(run_dir_or_checkpoint: str, storage: Storage | None = None,
                       with_info: bool = False) -> DrawingTextModel | tuple[DrawingTextModel, dict[str, Any]]:
    """The trained towers (for indexing and serving) from a run directory or checkpoint URI;
    with ``with_info`` also what the checkpoint says of its training (``class_scheme``,
    ``class_counts``, ``class_vocab``, ``epoch``, ``uri``)."""
    storage = storage or Storage()
    uri = checkpoint_uri(run_dir_or_checkpoint, storage)
    ckpt = load_checkpoint(uri, storage)
    head = "classes.prototypes" in ckpt["model"]
    model = DrawingTextModel.from_config(ModelConfig.model_validate(ckpt["model_config"]), load_text_encoder=False,
                                         num_classes=len(ckpt.get("class_vocab") or []) if head else 0)
    model.load_state_dict(ckpt["model"])
    model.eval()
    if not with_info:
        return model
    info = {k: ckpt.get(k) for k in ("class_scheme", "class_counts", "class_vocab", "epoch")}
    return model, {**info, "uri": uri}


# -- the loop ------------------------------------------------------------------------------------

def run_training(cfg: TrainConfig, text_features_uri: str | None = None,
                 report: Callable[[dict[str, float]], None] | None = None,
                 wrap: Callable[[nn.Module], nn.Module] | None = None,
                 document_features_uri: str | None = None) -> dict[str, float]:
    """Train on this process's rank (``torch.distributed`` if initialised, else alone).

    ``wrap`` turns the module into its data-parallel form (Ray's ``prepare_model``; default:
    DDP when distributed); ``report`` receives the metrics of every epoch (all ranks call it).
    ``document_features_uri``: the training drawings' words, embedded
    (:func:`prepare_document_features`; computed here when the loss needs them and it is None).
    Returns the last epoch's metrics (rank 0's include the checkpoint URI); when ``run_dir``
    already holds ``epochs`` epochs, the latest checkpoint's metrics, without training."""
    rank, size = world()
    storage = Storage(cfg.storage)
    latest = latest_checkpoint(cfg.run_dir, storage)
    mcfg = cfg.model_cfg()
    ckpt = None if latest is None else load_checkpoint(latest["uri"], storage)  # read once: checked, resumed
    if ckpt is not None:
        found = ckpt.get("model_config")
        if found != mcfg.model_dump(mode="json"):
            raise RunMismatch(f"{cfg.run_dir} holds a run of model {(found or {}).get('name')!r}, not of "
                              f"{mcfg.name!r} as configured: use another run_dir (or move that one away)")
    if latest is not None and int(latest["epoch"]) + 1 >= cfg.epochs:
        log.info("%s already holds epoch %d of %d: nothing to train", cfg.run_dir, latest["epoch"], cfg.epochs)
        return dict(latest.get("metrics") or {})
    data = _training_set(cfg, storage)
    log.info("training on %d drawings of %d patents in %d %s classes", len(data), len(set(data.patent_codes.tolist())),
             len(data.class_vocab), data.scheme.name)
    sampler = ClassAwareBatchSampler([data.class_vocab[c] for c in data.class_codes], data.patent_codes.tolist(),
                                     cfg.batch, num_replicas=size, rank=rank)
    if cfg.prior == "dataset":
        counts = class_counts(data.class_codes, len(data.class_vocab))
    else:
        counts = np.maximum(np.rint(sampler.expected_class_counts()), 1).astype(int).tolist()
    bank = None
    text_features = None
    titles_only = cfg.loss.image_text and cfg.descriptions is None  # no describe stage: the titles align
    if titles_only and not all(data.titles or []):
        raise ValueError("the image-text loss needs descriptions (priorsight describe) or a title on every training "
                         f"drawing; {sum(not t for t in data.titles or [])} have none")
    if cfg.loss.image_text and not titles_only:
        if text_features_uri is None:
            raise ValueError("the image-text loss needs the descriptions' features (prepare_text_features)")
        bank = DescriptionBank.read(cfg.descriptions, storage)
        text_features = torch.from_numpy(_load_text_features(text_features_uri, bank.texts, mcfg, storage))

    doc_features = doc_rows = None
    if cfg.loss.text_class or titles_only or (latest is None and mcfg.text.head == "residual"):
        doc_uri = document_features_uri or prepare_document_features(cfg, data, storage)
        doc_np, doc_rows = _load_document_features(doc_uri, data, mcfg, storage)
        doc_features = torch.from_numpy(doc_np)
    if titles_only:
        log.info("no descriptions given: each drawing's title is its description")
        bank = DescriptionBank(data.drawing_ids, [[t] for t in data.titles or []])
        row = {t: i for i, t in enumerate(sorted(set(data.titles or [])))}
        text_features = doc_features[torch.as_tensor([row[t] for t in bank.texts])]

    features = None
    if cfg.uses_feature_cache():
        cache_dir = cfg.feature_cache_dir()
        features = load_cache(cache_dir, _feature_fingerprint(cfg, data), storage)
        log.info("training on cached frozen-backbone outputs %s from %s", features.shape, cache_dir)

    module = build_module(cfg, mcfg, counts)
    if latest is None:
        init_head(module, data, features, cfg, storage,
                  document_features=None if doc_features is None else doc_features.numpy())
    optimizer = make_optimizer(module, cfg)
    start_epoch = 0
    if ckpt is not None:
        module.model.load_state_dict(ckpt["model"])
        module.loss.load_state_dict(ckpt["loss"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"]) + 1
        log.info("resuming after epoch %d from %s", ckpt["epoch"], latest["uri"])
    if size > 1 and cfg.use_gpu and not mcfg.vision.freeze_batchnorm:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # BN statistics over the global batch
    if wrap is not None:
        ddp = wrap(module)  # Ray's prepare_model also moves the module to the worker's device
    elif cfg.use_gpu:
        if not torch.cuda.is_available():
            raise RuntimeError("use_gpu is set but CUDA is not available")
        module = module.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))))
    if wrap is None:
        ddp = nn.parallel.DistributedDataParallel(module) if size > 1 else module

    augmenter = DrawingAugmenter(cfg.augment, mcfg.vision.preprocessing())
    local_b = cfg.batch.batch_size // size
    device = next(_unwrap(ddp).parameters()).device
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        steps = 0
        t0 = time.perf_counter()
        for step, indices in enumerate(sampler):
            if cfg.max_steps_per_epoch is not None and step >= cfg.max_steps_per_epoch:
                break
            if features is None:
                images = load_images(data, indices, augmenter, storage, cfg.seed, epoch, step, rank * local_b)
            else:  # one cached view per drawing, chosen by its global batch position
                views = step_views(cfg.seed, epoch, step, cfg.batch.batch_size, features.shape[1])
                views = views[rank * local_b:rank * local_b + len(indices)]
                images = torch.from_numpy(np.ascontiguousarray(features[np.asarray(indices), views], dtype=np.float32))
            feats = None
            if bank is not None:
                ids = [data.drawing_ids[i] for i in indices]
                chosen = bank.choose(ids, cfg.seed, epoch, step, cfg.first_description_p)
                feats = text_features[torch.from_numpy(chosen)].to(device)
            docs = has_doc = None
            if doc_features is not None and cfg.loss.text_class:
                r = doc_rows[np.asarray(indices)]
                docs = doc_features[torch.from_numpy(np.maximum(r, 0))].to(device)
                has_doc = torch.from_numpy(r >= 0).to(device)
            out = train_step(ddp, optimizer, images.to(device), torch.from_numpy(data.patent_codes[indices]).to(device),
                             torch.from_numpy(data.class_codes[indices]).to(device), feats, features is not None,
                             docs, has_doc)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        metrics = _mean_over_ranks({k: v / max(steps, 1) for k, v in sums.items()}, device)
        metrics.update(epoch=epoch, steps=steps, seconds=time.perf_counter() - t0)
        weighting = _unwrap(ddp).loss.weighting
        if weighting is not None:
            metrics.update({f"weight/{k}": v for k, v in weighting.weights().items()})
        if rank == 0:
            metrics["checkpoint"] = save_checkpoint(cfg.run_dir, storage, _unwrap(ddp), optimizer, epoch, metrics,
                                                    mcfg, data.class_vocab, cfg.keep_checkpoints, data.scheme.name,
                                                    data.class_counts())
            log.info("epoch %d: %s", epoch, {k: v for k, v in metrics.items() if k != "checkpoint"})
        if size > 1:
            dist.barrier()  # the checkpoint exists before anyone moves on
        if report is not None:
            report(metrics)
    return metrics


def _ray_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    cfg: TrainConfig = loop_config["config"]
    cwd = loop_config.get("cwd")
    if cwd and os.path.isdir(cwd):  # Ray Train starts workers elsewhere; local relative paths
        os.chdir(cwd)  # (corpus, run dir, image URIs in the manifest) mean the driver's directory
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    run_training(cfg, loop_config["text_features_uri"],
                 report=lambda m: ray.train.report({k: v for k, v in m.items() if not isinstance(v, str)}),
                 wrap=lambda m: ray.train.torch.prepare_model(m, parallel_strategy="ddp" if world()[1] > 1 else None),
                 document_features_uri=loop_config.get("document_features_uri"))


def train(cfg: TrainConfig, ray_results_dir: str | None = None, text_features_uri: str | None = None) -> dict[str, Any]:
    """Run training on Ray Train (Ray must be initialised, e.g. ``cluster.ray_env.init_ray``).

    Sentence features of the descriptions are computed here, once (:func:`prepare_text_features`),
    unless ``text_features_uri`` names ones already computed.

    Returns the metrics of the latest checkpoint (the last epoch trained, now or before)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    text_uri = text_features_uri or (prepare_text_features(cfg) if cfg.loss.image_text and cfg.descriptions else None)
    needs_docs = cfg.loss.text_class or cfg.model_cfg().text.head == "residual" or \
        (cfg.loss.image_text and cfg.descriptions is None)
    doc_uri = prepare_document_features(cfg, _training_set(cfg, Storage(cfg.storage))) if needs_docs else None
    prepare_image_features(cfg)
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"config": cfg, "text_features_uri": text_uri, "document_features_uri": doc_uri,
                           "cwd": os.getcwd()},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker={"CPU": cfg.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        run_config=RunConfig(name=f"train-{os.getpid()}-{int(time.time())}",
                             storage_path=ray_results_dir or str(Path(tempfile.gettempdir()) / "priorsight-ray")),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    latest = latest_checkpoint(cfg.run_dir, Storage(cfg.storage))
    return dict(latest["metrics"]) if latest else {}
