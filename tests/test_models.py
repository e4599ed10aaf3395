"""Model towers and configs: shapes, unit norm, freezing, offline MiniLM, cached text features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from training.models import (
    DrawingTextModel,
    ImageEncoder,
    ModelConfig,
    SentenceEncoder,
    TextEncoder,
    embed_texts,
    list_model_configs,
    load_model_config,
    load_or_embed_texts,
)

TEXTS = ["a perspective view of a lighting fixture", "front view of a bottle with a pump dispenser",
         "top plan view of a toy car"]


@pytest.fixture(scope="module")
def sentence_encoder():
    return SentenceEncoder()


@pytest.fixture(scope="module")
def small_config():
    cfg = load_model_config("demo-small")
    return cfg.model_copy(update={"vision": cfg.vision.model_copy(update={"image_size": 64})})


def test_shipped_configs_parse():
    names = list_model_configs()
    assert {"efficientnet-lite0-256", "demo-small", "efficientnet-lite0-256-gpu"} <= set(names)
    for n in names:
        cfg = load_model_config(n)
        assert cfg.name == n and cfg.embed_dim > 0


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped are"):
        load_model_config("no-such-model")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "vision": {"backbone": "efficientnet-lite0", "typo": 1}}))
    with pytest.raises(ValidationError):
        load_model_config(bad)


def test_image_encoder_shape_norm_and_freezing(small_config):
    enc = ImageEncoder.from_config(small_config)
    frozen_params = {id(p) for m in enc.frozen for p in m.parameters()}
    assert len(enc.frozen) == small_config.vision.freeze_blocks
    assert all(not p.requires_grad for m in enc.frozen for p in m.parameters())
    trainable = [p for p in enc.parameters() if p.requires_grad]
    assert trainable and all(id(p) not in frozen_params for p in trainable)

    enc.train()
    assert all(not m.training for f in enc.frozen for m in f.modules())  # frozen BN stays in eval
    x = torch.randn(4, 3, 64, 64)
    emb = enc(x)
    assert emb.shape == (4, small_config.embed_dim)
    np.testing.assert_allclose(emb.norm(dim=1).detach().numpy(), 1.0, rtol=1e-5)
    emb.sum().backward()
    assert all(p.grad is None for m in enc.frozen for p in m.parameters())
    assert enc.head.net[0].weight.grad is not None


def test_freeze_batchnorm_keeps_every_backbone_bn_in_eval(small_config):
    from training.backbones import load_backbone

    backbone, _ = load_backbone("efficientnet-lite0", image_size=64)
    enc = ImageEncoder(backbone, 16, freeze_batchnorm=True).train()
    bns = [m for m in enc.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert enc.head.training
    before = bns[-1].running_mean.clone()
    enc(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(bns[-1].running_mean, before)  # statistics untouched


def test_freeze_all_and_too_many_blocks(small_config):
    from training.backbones import load_backbone

    backbone, _ = load_backbone("efficientnet-lite0", image_size=64)
    enc = ImageEncoder(backbone, 16, head="linear", freeze_blocks="all")
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    assert all(p.requires_grad for p in enc.head.parameters())
    with pytest.raises(ValueError, match="blocks"):
        ImageEncoder(backbone, 16, freeze_blocks=999)


def test_sentence_encoder_matches_sentence_transformers(sentence_encoder):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(sentence_encoder.path, device="cpu").encode(TEXTS, convert_to_numpy=True)
    ours = embed_texts(TEXTS, sentence_encoder, batch_size=2)
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_cached_features_give_the_same_text_embeddings(sentence_encoder, tmp_path):
    torch.manual_seed(0)
    with_encoder = TextEncoder(32, sentence_encoder)
    from_cache = TextEncoder(32, None)
    from_cache.head.load_state_dict(with_encoder.head.state_dict())
    feats = load_or_embed_texts(TEXTS, tmp_path / "cache.npz", sentence_encoder)
    again = load_or_embed_texts(TEXTS, tmp_path / "cache.npz", sentence_encoder)  # read from the cache
    np.testing.assert_array_equal(feats, again)
    a = with_encoder(TEXTS)
    b = from_cache(torch.from_numpy(feats))
    assert a.shape == (3, 32)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-5)
    # a frozen encoder gets no gradient; the head does
    with_encoder.train()
    with_encoder(TEXTS).sum().backward()
    assert all(p.grad is None for p in with_encoder.sentence_encoder.parameters())
    assert all(p.grad is not None for p in with_encoder.head.parameters())
    with pytest.raises(ValueError, match="cached"):
        from_cache(TEXTS)


def test_stale_cache_is_recomputed(sentence_encoder, tmp_path):
    path = tmp_path / "cache.npz"
    first = load_or_embed_texts(TEXTS[:2], path, sentence_encoder)
    second = load_or_embed_texts(TEXTS, path, sentence_encoder)
    assert first.shape == (2, 384) and second.shape == (3, 384)
    np.testing.assert_allclose(second[:2], first, rtol=1e-5, atol=1e-6)


def test_drawing_text_model_forward(small_config):
    model = DrawingTextModel.from_config(small_config, load_text_encoder=False)
    img, txt = model(torch.randn(2, 3, 64, 64), torch.randn(2, 384))
    assert img.shape == txt.shape == (2, small_config.embed_dim)
    img_only, none = model(torch.randn(1, 3, 64, 64))
    assert none is None and img_only.shape == (1, small_config.embed_dim)


def test_model_config_defaults():
    cfg = ModelConfig(name="x")
    assert cfg.embed_dim == 256 and cfg.vision.backbone == "efficientnet-lite0" and cfg.text.freeze


def test_residual_head_starts_linear_and_takes_principal_directions():
    from training.models import ProjectionHead

    torch.manual_seed(0)
    head = ProjectionHead(8, 3, "residual", hidden_dim=5)
    x = torch.randn(50, 8) * torch.tensor([5.0, 1, 1, 3, 1, 1, 0.1, 1]) + 2.0
    # the MLP's output layer starts at zero: the head is its linear map, normalised
    torch.testing.assert_close(head(x), torch.nn.functional.normalize(head.linear(x), dim=1))
    assert head.init_from_features(x) == 3
    centred = x - x.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    torch.testing.assert_close(head.linear.weight, vt[:3])
    torch.testing.assert_close(head.linear(x), centred @ vt[:3].T, atol=1e-4, rtol=1e-4)
    assert abs(head.linear.weight[0, 0]) > 0.9  # the largest-variance axis comes first
    # fewer drawings than output dimensions: N - 1 directions, the rest keep their init
    small = ProjectionHead(8, 3, "residual")
    before = small.linear.weight[2].clone()
    assert small.init_from_features(torch.randn(3, 8)) == 2
    torch.testing.assert_close(small.linear.weight[2], before)
    assert ProjectionHead(8, 3, "mlp").init_from_features(x) == 0  # other heads: untouched


def test_frozen_config_ships():
    cfg = load_model_config("efficientnet-lite0-frozen-256")
    assert cfg.vision.freeze_blocks == "all" and cfg.vision.head == "residual" and cfg.vision.image_size == 224
