"""Augmentations: exact behaviour of each op, seeding, the PIL path through preprocess."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from priorsight.images import Preprocessing, preprocess, white_value
from training.augment import (
    AugmentConfig,
    DrawingAugmenter,
    crop_resize,
    grid_mask,
    grid_mask_array,
    hflip,
    random_erasing,
    sample_crop_box,
    view_rng,
)


def _array(size=32, seed=0):
    return np.random.default_rng(seed).standard_normal((3, size, size)).astype(np.float32)


def _drawing():
    img = Image.new("L", (300, 200), 255)
    d = ImageDraw.Draw(img)
    d.rectangle((40, 30, 260, 170), outline=0, width=4)
    d.line((40, 30, 260, 170), fill=0, width=4)
    return img


def test_hflip_mirrors_columns():
    x = _array()
    y = hflip(x)
    assert y[0, 3, 0] == x[0, 3, -1] and y[2, 5, 7] == x[2, 5, 31 - 7]
    np.testing.assert_array_equal(hflip(y), x)


def test_crop_boxes_respect_scale_ratio_and_bounds():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        top, left, h, w = sample_crop_box(rng, 100, 80, scale=(0.3, 0.7), ratio=(0.5, 2.0))
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 80
        if (h, w) != (100, 80):  # the fallback is the whole image
            area = h * w / 8000
            assert 0.3 - 0.03 <= area <= 0.7 + 0.03  # rounding to whole pixels
            assert 0.5 * 0.9 <= w / h <= 2.0 * 1.1


def test_crop_resize_identity_and_known_region():
    x = _array()
    np.testing.assert_allclose(crop_resize(x, (0, 0, 32, 32), 32), x, atol=1e-6)
    q = np.zeros((3, 32, 32), np.float32)
    q[:, :16, :16] = 1.0  # top-left quadrant
    q[:, 16:, 16:] = -2.0
    np.testing.assert_allclose(crop_resize(q, (0, 0, 16, 16), 24), 1.0, atol=1e-6)
    np.testing.assert_allclose(crop_resize(q, (16, 16, 16, 16), 8), -2.0, atol=1e-6)


def test_random_erasing_fills_one_rectangle_with_white():
    x = _array(64)
    rng = np.random.default_rng(3)
    y = random_erasing(x, rng, scale=(0.1, 0.2), fill="white")
    changed = np.any(y != x, axis=0)
    rows, cols = np.where(changed)
    assert changed.any()
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert changed.sum() == h * w  # one solid rectangle
    assert 0.1 * 0.9 <= h * w / 64 ** 2 <= 0.2 * 1.1
    np.testing.assert_allclose(y[:, changed], np.broadcast_to(white_value()[:, :, 0], (3, changed.sum())))
    np.testing.assert_array_equal(y[:, ~changed], x[:, ~changed])


def test_grid_mask_geometry():
    rng = np.random.default_rng(0)
    mask = grid_mask_array(rng, 100, 100, d_range=(0.2, 0.2), ratio=0.5)  # d = 20, squares of 10
    assert abs(mask.mean() - 0.25) < 0.03
    # periodic with period d in both directions
    np.testing.assert_array_equal(mask[:80, :80], mask[20:100, 20:100])
    x = _array(100)
    y = grid_mask(x, np.random.default_rng(0), d_range=(0.2, 0.2), ratio=0.5, fill="mean")
    np.testing.assert_array_equal(y[:, mask], 0.0)
    np.testing.assert_array_equal(y[:, ~mask], x[:, ~mask])


def test_grid_mask_rotation_keeps_the_dropped_share():
    rng = np.random.default_rng(1)
    mask = grid_mask_array(rng, 96, 96, d_range=(0.25, 0.25), ratio=0.5, rotate=45)
    assert mask.shape == (96, 96)
    assert abs(mask.mean() - 0.25) < 0.06


def test_augmenter_is_seeded():
    aug = DrawingAugmenter(AugmentConfig(flip_p=0.5, crop_p=1, erase_p=1, gridmask_p=1), 32)
    x = _array(40)
    a = aug(x, view_rng(7, 0, 3, 0))
    b = aug(x, view_rng(7, 0, 3, 0))
    c = aug(x, view_rng(7, 0, 3, 1))
    assert a.shape == (3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augmenter_off_is_identity_on_arrays_and_preprocess_on_pil():
    off = DrawingAugmenter(AugmentConfig(flip_p=0, crop_p=0, erase_p=0, gridmask_p=0), 32)
    x = _array(32)
    np.testing.assert_array_equal(off(x, np.random.default_rng(0)), x)
    img = _drawing()
    np.testing.assert_array_equal(off(img, np.random.default_rng(0)), preprocess(img, size=32))


def test_augmenter_pil_crop_goes_through_preprocess():
    aug = DrawingAugmenter(AugmentConfig(flip_p=0, crop_p=1, crop_scale=(0.3, 0.3), erase_p=0, gridmask_p=0), 48)
    img = _drawing()
    out = aug(img, np.random.default_rng(5))
    assert out.shape == (3, 48, 48) and out.dtype == np.float32
    assert not np.array_equal(out, preprocess(img, size=48))


def test_config_validation():
    with pytest.raises(ValueError):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError):
        AugmentConfig(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        DrawingAugmenter()(np.zeros((1, 8, 8), np.float32), np.random.default_rng(0))
    assert math.isclose(float(white_value("imagenet")[0, 0, 0]), (1 - 0.485) / 0.229, rel_tol=1e-6)
    assert float(white_value("inception")[0, 0, 0]) == 1.0  # (1 - 0.5) / 0.5: EfficientNet-Lite's [-1, 1]


def test_erasing_fills_white_in_the_preprocessing_s_own_normalisation():
    img = Image.new("L", (64, 64), 0)  # all ink: whatever is erased turns white
    cfg = AugmentConfig(flip_p=0, crop_p=0, erase_p=1, gridmask_p=0)
    for norm in ("imagenet", "inception"):
        out = DrawingAugmenter(cfg, Preprocessing(32, norm))(img, np.random.default_rng(3))
        assert np.allclose(out.max(axis=(1, 2)), white_value(norm).ravel())
