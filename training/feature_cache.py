"""Backbone features of augmented views, computed once: a frozen backbone's head trains in seconds.

When the whole backbone is frozen (``freeze_blocks: "all"``), it is a fixed function of its
input, so training only needs its output. :func:`compute_view_features` decodes every training
drawing once and embeds ``views`` versions of it: view 0 is the plain preprocessing (what a
query sees), views 1.. are the paper's augmentations (crop, flip, erasing, GridMask), each seeded
by ``(seed, drawing, view)``. Training then picks one cached view per drawing and step
(:func:`step_views`, seeded by the global batch position, so N workers see what one does).

On disk: ``image_features.npy`` (N, views, D) float32 plus ``image_features.json`` with the
fingerprint of what was embedded (drawings, backbone, resolution, augmentations, views, seed);
the JSON is written last, so a half-written cache is never taken for a finished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from priorsight.images import ImageError, decode_image, preprocess
from priorsight.storage import NotFound, Storage, is_s3, join
from training.augment import AugmentConfig, DrawingAugmenter, view_rng
from training.backbones import extract_features

log = logging.getLogger(__name__)

FEATURES_FILE = "image_features.npy"
META_FILE = "image_features.json"
#: the "epoch" slot of :func:`view_rng` used for cached views (training epochs never reach it)
CACHE_EPOCH = 1_000_000
VIEW_STREAM = 7  # separates the per-step view choice from other seeded streams


def feature_fingerprint(drawing_ids: Sequence[str], image_uris: Sequence[str], vision: dict,
                        augment: AugmentConfig, views: int, seed: int) -> str:
    """What a cache was computed from: drawings and their images, backbone config, views."""
    h = hashlib.sha256(json.dumps({"vision": vision, "augment": dataclasses.asdict(augment), "views": views,
                                   "seed": seed}, sort_keys=True, default=list).encode())
    for d, u in zip(drawing_ids, image_uris, strict=True):
        h.update(f"{d}\0{u}\0".encode())
    return h.hexdigest()


def compute_view_features(image_uris: Sequence[str], backbone, image_size: int, views: int, seed: int,
                          out_path: str | Path, augment: AugmentConfig = AugmentConfig(),
                          storage: Storage | None = None, batch_size: int = 32,
                          progress: bool = True) -> np.ndarray:
    """Embed ``views`` versions of every drawing with ``backbone`` into an (N, views, D) float32
    ``.npy`` at ``out_path`` (memory-mapped while written). Raises ValueError naming the drawing
    when an image cannot be read or decoded."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    storage = storage or Storage()
    augmenter = DrawingAugmenter(augment, image_size)
    out = None
    pending: list[np.ndarray] = []
    row = 0  # first drawing of the pending batch

    def flush() -> None:
        nonlocal out, row
        if not pending:
            return
        feats = extract_features(backbone, np.stack(pending), batch_size=len(pending))
        n = len(pending) // views
        if out is None:
            out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32,
                                            shape=(len(image_uris), views, feats.shape[1]))
        out[row:row + n] = feats.reshape(n, views, -1)
        row += n
        pending.clear()

    per_batch = max(1, batch_size // views)
    for i, uri in enumerate(tqdm(image_uris, desc="backbone features", unit=" drawings", disable=not progress,
                                 mininterval=2)):
        try:
            img = decode_image(storage.read_bytes(uri))
        except (ImageError, OSError, NotFound) as exc:
            raise ValueError(f"cannot read training drawing {uri}: {exc}") from exc
        pending.append(preprocess(img, image_size))
        pending.extend(augmenter(img, view_rng(seed, CACHE_EPOCH, i, v)) for v in range(1, views))
        if (i + 1) % per_batch == 0:
            flush()
    flush()
    if out is None:
        raise ValueError("no drawings to embed")
    out.flush()
    return out


def cache_uris(cache_dir: str) -> tuple[str, str]:
    return join(cache_dir, FEATURES_FILE), join(cache_dir, META_FILE)


def cached_fingerprint(cache_dir: str, storage: Storage) -> str | None:
    try:
        return json.loads(storage.read_bytes(cache_uris(cache_dir)[1])).get("fingerprint")
    except (NotFound, ValueError):
        return None


def write_cache(cache_dir: str, fingerprint: str, compute, storage: Storage) -> None:
    """Run ``compute(local_npy_path)`` and store the result + its fingerprint under ``cache_dir``
    (local or ``s3://``); the fingerprint goes last."""
    npy_uri, meta_uri = cache_uris(cache_dir)
    if storage.exists(meta_uri):  # invalidate first: features and fingerprint never disagree
        storage.delete(meta_uri)
    with tempfile.TemporaryDirectory(prefix="priorsight-features-") as tmp:
        local = Path(tmp) / FEATURES_FILE
        if not is_s3(npy_uri):
            Path(npy_uri).parent.mkdir(parents=True, exist_ok=True)
            local = Path(npy_uri).with_suffix(".tmp.npy")
        arr = compute(local)
        shape = list(arr.shape)
        del arr
        if is_s3(npy_uri):
            storage.upload(local, npy_uri)
        else:
            local.replace(npy_uri)
    storage.write_bytes(meta_uri, json.dumps({"fingerprint": fingerprint, "shape": shape}).encode())


def load_cache(cache_dir: str, fingerprint: str, storage: Storage) -> np.ndarray:
    """The cached (N, views, D) features (memory-mapped when local). Raises ValueError when the
    cache was computed from other drawings or settings."""
    found = cached_fingerprint(cache_dir, storage)
    if found != fingerprint:
        raise ValueError(f"{cache_dir} holds no backbone features for this corpus and model "
                         "(run prepare_image_features)")
    npy_uri, _ = cache_uris(cache_dir)
    if not is_s3(npy_uri):
        return np.load(npy_uri, mmap_mode="r")
    with tempfile.TemporaryDirectory(prefix="priorsight-features-") as tmp:
        return np.load(storage.download(npy_uri, Path(tmp) / FEATURES_FILE))


def step_views(seed: int, epoch: int, step: int, global_batch: int, views: int) -> np.ndarray:
    """Which cached view each position of one global batch uses (same on every rank)."""
    if views == 1:
        return np.zeros(global_batch, dtype=np.int64)
    return np.random.default_rng([seed, epoch, step, VIEW_STREAM]).integers(0, views, global_batch)
