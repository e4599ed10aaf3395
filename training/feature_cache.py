"""The frozen part of the backbone applied once to augmented views: the rest trains in minutes.

When the first modules of the backbone are frozen (``freeze_blocks``: a number, or ``"all"``),
they are a fixed function of the input, so training only needs their output.
:func:`compute_view_features` decodes every training drawing once and runs the frozen prefix on
``views`` versions of it: view 0 is the plain preprocessing (what a query sees), views 1.. are
the paper's augmentations (crop, flip, erasing, GridMask), each seeded by ``(seed, drawing,
view)``. Training then picks one cached view per drawing and step (:func:`step_views`, seeded by
the global batch position, so N workers see what one does) and runs the trainable rest of the
backbone and the head on it. With the whole backbone frozen the cache holds pooled feature
vectors (float32); with a frozen prefix it holds the prefix's feature maps (float16: half the
bytes; the trainable blocks compute in float32).

Decoding and augmenting the next batch runs in a thread while the backbone embeds the current
one (PIL and numpy release the GIL), so the CNN, not the image decoding, sets the pace.

On disk: ``image_features.npy`` (N, views, ...) plus ``image_features.json`` with the
fingerprint of what was embedded (drawings, backbone, frozen modules, preprocessing,
augmentations, views, seed); the JSON is written last, so a half-written cache is never taken
for a finished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from priorsight.images import ImageError, Preprocessing, decode_image
from priorsight.storage import NotFound, Storage, is_s3, join
from training.augment import AugmentConfig, DrawingAugmenter, view_rng

log = logging.getLogger(__name__)

FEATURES_FILE = "image_features.npy"
META_FILE = "image_features.json"
#: the "epoch" slot of :func:`view_rng` used for cached views (training epochs never reach it)
CACHE_EPOCH = 1_000_000
VIEW_STREAM = 7  # separates the per-step view choice from other seeded streams
#: how views are made (part of the fingerprint): 2 = augmented from the working copy
VIEWS_VERSION = 2


def feature_fingerprint(drawing_ids: Sequence[str], image_uris: Sequence[str], vision: dict,
                        augment: AugmentConfig, views: int, seed: int) -> str:
    """What a cache was computed from: drawings and their images, the frozen part of the tower
    (``vision``: backbone, weights, frozen modules, preprocessing), augmentations, views."""
    h = hashlib.sha256(json.dumps({"vision": vision, "augment": dataclasses.asdict(augment), "views": views,
                                   "seed": seed, "version": VIEWS_VERSION}, sort_keys=True, default=list).encode())
    for d, u in zip(drawing_ids, image_uris, strict=True):
        h.update(f"{d}\0{u}\0".encode())
    return h.hexdigest()


def working_copy(img: Image.Image, size: int) -> Image.Image:
    """The drawing reduced (box filter, by a whole factor) to no less than twice ``size`` on its
    long side: augmented views crop and resize it instead of the full-resolution sheet (a 1-bit
    TIFF of 2,500 x 3,300 pixels otherwise costs each view a full-resolution trim and resize)."""
    factor = max(1, max(img.size) // (2 * size))
    return img.reduce(factor) if factor > 1 else img


def _view_batches(image_uris: Sequence[str], preprocessing: Preprocessing, views: int, seed: int,
                  augment: AugmentConfig, storage: Storage, per_batch: int) -> Iterator[np.ndarray]:
    """(drawings x views, 3, S, S) arrays of ``per_batch`` drawings at a time, in order: view 0
    exactly as a query is preprocessed, views 1.. augmented from a :func:`working_copy`."""
    augmenter = DrawingAugmenter(augment, preprocessing)
    pending: list[np.ndarray] = []
    for i, uri in enumerate(image_uris):
        try:
            img = decode_image(storage.read_bytes(uri))
        except (ImageError, OSError, NotFound) as exc:
            raise ValueError(f"cannot read training drawing {uri}: {exc}") from exc
        pending.append(preprocessing(img))
        work = working_copy(img, preprocessing.size) if views > 1 else img
        pending.extend(augmenter(work, view_rng(seed, CACHE_EPOCH, i, v)) for v in range(1, views))
        if (i + 1) % per_batch == 0:
            yield np.stack(pending)
            pending.clear()
    if pending:
        yield np.stack(pending)


def _prefetched(it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``it``'s items, the next one made in a thread while the caller works on this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="feature-cache-decode") as pool:
        nxt = pool.submit(next, it, None)
        while True:
            item = nxt.result()
            if item is None:
                return
            nxt = pool.submit(next, it, None)
            yield item


def compute_view_features(image_uris: Sequence[str], prefix: nn.Module, preprocessing: Preprocessing | int,
                          views: int, seed: int, out_path: str | Path, augment: AugmentConfig = AugmentConfig(),
                          storage: Storage | None = None, batch_size: int = 32,
                          progress: bool = True) -> np.ndarray:
    """Run the frozen ``prefix`` (a backbone, or its first modules) on ``views`` versions of
    every drawing into an (N, views, ...) ``.npy`` at ``out_path`` (memory-mapped while
    written): float32 pooled vectors, or float16 feature maps. Raises ValueError naming the
    drawing when an image cannot be read or decoded."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if not image_uris:
        raise ValueError("no drawings to embed")
    storage = storage or Storage()
    pre = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(preprocessing)
    device = next((p.device for p in prefix.parameters()), torch.device("cpu"))
    was_training = prefix.training
    prefix.eval()
    out = None
    row = 0
    per_batch = max(1, batch_size // views)
    batches = _prefetched(_view_batches(image_uris, pre, views, seed, augment, storage, per_batch))
    try:
        with torch.no_grad(), tqdm(total=len(image_uris), desc="backbone features", unit=" drawings",
                                   disable=not progress, mininterval=2) as bar:
            for batch in batches:
                x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
                feats = prefix(x).float().cpu().numpy()
                n = len(batch) // views
                if out is None:
                    dtype = np.float32 if feats.ndim == 2 else np.float16
                    out = np.lib.format.open_memmap(out_path, mode="w+", dtype=dtype,
                                                    shape=(len(image_uris), views, *feats.shape[1:]))
                out[row:row + n] = feats.reshape(n, views, *feats.shape[1:])
                row += n
                bar.update(n)
    finally:
        prefix.train(was_training)
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
    """The cached (N, views, ...) features (memory-mapped when local). Raises ValueError when the
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
