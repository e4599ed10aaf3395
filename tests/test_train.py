"""The training loop without Ray: 1 process == 2 gloo ranks on the same global batches,
checkpoints, resume, and loading the trained towers."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image, ImageDraw

from cluster.ray_env import CPU_ENV
from priorsight.manifest import DRAWING_SCHEMA, MANIFEST_FILE
from training.augment import AugmentConfig
from training.losses import LossConfig
from training.models import ModelConfig, TextConfig, VisionConfig, load_or_embed_texts, sentence_encoder_id
from training.samplers import BatchConfig, DescriptionBank
from training.train import (
    TEXT_FEATURES,
    TrainConfig,
    latest_checkpoint,
    load_trained_model,
    prepare_text_features,
    run_training,
)

# spawned ranks start a fresh interpreter: give them the malloc and OpenMP settings (docs/stack.md)
for _key, _value in CPU_ENV.items():
    os.environ.setdefault(_key, _value)

SHAPES = {"06-01": "box", "07-02": "circle", "26-03": "cross", "28-03": "triangle"}


def _draw(shape: str, jitter: int) -> Image.Image:
    img = Image.new("L", (160, 120), 255)
    d = ImageDraw.Draw(img)
    a, b = 20 + jitter, 100 - jitter
    if shape == "box":
        d.rectangle((a, a, 140 - jitter, b), outline=0, width=3)
    elif shape == "circle":
        d.ellipse((a, 10, 140 - jitter, 110), outline=0, width=3)
    elif shape == "cross":
        d.line((a, a, 140, b), fill=0, width=3)
        d.line((a, b, 140, a), fill=0, width=3)
    else:
        d.polygon([(80, 10 + jitter), (20, 110), (140, 110)], outline=0, width=3)
    return img


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rows, descriptions = [], []
    n_patents = {"06-01": 4, "07-02": 2, "26-03": 1, "28-03": 1}  # long-tailed
    for cls, shape in SHAPES.items():
        for p in range(n_patents[cls]):
            patent = f"US{cls.replace('-', '')}{p}"
            for v in range(2):
                did = f"{patent}-{v}"
                path = root / "images" / f"{did}.png"
                path.parent.mkdir(exist_ok=True)
                _draw(shape, 3 * p + 5 * v).save(path)
                rows.append(dict(drawing_id=did, patent_id=patent, image_uri=str(path), source="test",
                                 locarno_class=cls, view="front" if v else "perspective", cited_patents=[]))
                descriptions.append([f"{shape} design, figure {v + 1}", f"a drawing of a {shape}", f"{shape} outline"])
    pq.write_table(pa.Table.from_pylist(rows, schema=DRAWING_SCHEMA), root / MANIFEST_FILE)
    pq.write_table(pa.table({"drawing_id": [r["drawing_id"] for r in rows], "descriptions": descriptions,
                             "model": ["test"] * len(rows), "prompt_version": ["v0"] * len(rows)}),
                   root / "descriptions.parquet")
    return root


def _config(corpus, run_dir, **over) -> TrainConfig:
    model = ModelConfig(name="tiny", embed_dim=16,
                        vision=VisionConfig(image_size=64, head="linear", freeze_blocks=17),
                        text=TextConfig(head="linear"))
    base = dict(model=model, corpus=str(corpus), descriptions=str(corpus / "descriptions.parquet"),
                run_dir=str(run_dir), epochs=1, max_steps_per_epoch=2, lr=1e-2, backbone_lr=1e-3, feature_views=0,
                batch=BatchConfig(batch_size=8, m_per_class=4, views_per_patent=2, seed=3),
                loss=LossConfig(logit_adjusted=True), augment=AugmentConfig(gridmask_p=0.5, erase_p=0.5))
    base.update(over)
    return TrainConfig(**base)


class _HashEncoder(torch.nn.Module):
    """Stands in for MiniLM (tested in test_models): a fixed unit vector per text, same cache id."""

    feature_dim = 384

    def identity(self) -> str:
        return sentence_encoder_id(None, 128)

    def forward(self, texts):
        seeds = [int.from_bytes(t.encode()[:8].ljust(8, b"_"), "little") % 2**32 + len(t) for t in texts]
        x = torch.stack([torch.from_numpy(np.random.default_rng(s).standard_normal(384)) for s in seeds]).float()
        return torch.nn.functional.normalize(x, dim=1)


@pytest.fixture(scope="module")
def text_features(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("features")
    cfg = _config(corpus, run_dir)
    bank = DescriptionBank.read(cfg.descriptions)
    load_or_embed_texts(bank.texts, run_dir / TEXT_FEATURES, _HashEncoder())
    uri = prepare_text_features(cfg)  # finds the matching cache: no sentence encoder is loaded
    assert uri == str(run_dir / TEXT_FEATURES)
    return uri


def _rank(rank: int, world: int, init_file: str, cfg: TrainConfig, text_uri: str, results,
          doc_uri: str | None = None) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        metrics = run_training(cfg, text_uri, document_features_uri=doc_uri)
        results.put((rank, {k: v for k, v in metrics.items() if isinstance(v, float)}))
    except BaseException:
        import traceback

        results.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _two_ranks(cfg: TrainConfig, text_uri: str, tmp_path, doc_uri: str | None = None) -> dict[int, dict]:
    """Train ``cfg`` on 2 spawned gloo ranks; each rank's float metrics."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, str(tmp_path / "init"), cfg, text_uri, results, doc_uri))
             for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=300) for _ in procs)
    for r, out in got.items():
        assert isinstance(out, dict), f"rank {r} failed:\n{out}"
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    return got


def test_one_and_two_ranks_give_the_same_losses(corpus, text_features, tmp_path):
    """Two steps: the second step's loss also depends on the first update (DDP-averaged gradients)."""
    torch.set_num_threads(1)
    single = run_training(_config(corpus, tmp_path / "one"), text_features)
    got = _two_ranks(_config(corpus, tmp_path / "two"), text_features, tmp_path)
    np.testing.assert_allclose(got[0]["loss"], got[1]["loss"], rtol=1e-12)  # both ranks report the global mean
    for key in ("loss", "image_text", "image_image", "class", "logit_adjusted"):
        np.testing.assert_allclose(got[0][key], single[key], rtol=1e-4, err_msg=key)
    assert single["steps"] == 2 and np.isfinite(single["loss"])


def test_checkpoint_resume_and_load(corpus, text_features, tmp_path):
    from priorsight.storage import Storage

    run_dir = tmp_path / "run"
    first = run_training(_config(corpus, run_dir, keep_checkpoints=1, max_steps_per_epoch=1), text_features)
    assert first["epoch"] == 0
    latest = latest_checkpoint(str(run_dir), Storage())
    assert latest["epoch"] == 0 and os.path.exists(latest["uri"])
    second = run_training(_config(corpus, run_dir, epochs=2, keep_checkpoints=1, max_steps_per_epoch=1),
                          text_features)
    assert second["epoch"] == 1  # resumed after epoch 0
    assert json.loads((run_dir / "checkpoints" / "latest.json").read_text())["epoch"] == 1
    assert not (run_dir / "checkpoints" / "epoch-0000.pt").exists()  # keep_checkpoints=1
    done = run_training(_config(corpus, run_dir, epochs=2), text_features)
    assert done["epoch"] == 1 and done["loss"] == second["loss"]  # nothing left to train: latest metrics

    model = load_trained_model(str(run_dir))
    with torch.no_grad():
        emb, _ = model(torch.randn(2, 3, 64, 64))
    assert emb.shape == (2, 16)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_image_text_needs_descriptions(corpus, tmp_path):
    with pytest.raises(ValueError, match="descriptions"):
        run_training(_config(corpus, tmp_path, descriptions=None))


# -- a frozen backbone: heads trained on cached backbone features of augmented views ------------

def _frozen_config(corpus, run_dir, cache_dir, **over) -> TrainConfig:
    model = ModelConfig(name="tiny-frozen", embed_dim=16,
                        vision=VisionConfig(image_size=64, head="residual", head_hidden_dim=32, freeze_blocks="all"),
                        text=TextConfig(head="linear"))
    return _config(corpus, run_dir, **{"model": model, "feature_views": 3, "feature_cache": str(cache_dir), **over})


def test_cached_features_are_the_backbone_of_the_views(corpus, tmp_path):
    from priorsight.images import Preprocessing
    from priorsight.storage import Storage
    from training.backbones import extract_features, load_backbone
    from training.feature_cache import FEATURES_FILE, META_FILE, load_cache
    from training.train import prepare_image_features

    cfg = _frozen_config(corpus, tmp_path / "run", tmp_path / "cache")
    assert prepare_image_features(cfg) == str(tmp_path / "cache")
    feats = np.load(tmp_path / "cache" / FEATURES_FILE)
    n = 16  # drawings in the corpus fixture
    backbone, dim = load_backbone(image_size=64)
    assert feats.shape == (n, 3, dim)
    first = str(corpus / "images" / "US06010-0.png")
    plain = extract_features(backbone, Preprocessing(64).load(open(first, "rb").read())[None])
    np.testing.assert_allclose(feats[0, 0], plain[0], rtol=1e-4, atol=1e-5)  # view 0: what a query sees
    assert not np.allclose(feats[:, 1], feats[:, 0])  # views 1..: augmented

    stamp = (tmp_path / "cache" / FEATURES_FILE).stat().st_mtime_ns
    assert prepare_image_features(cfg) == str(tmp_path / "cache")  # reused, not recomputed
    assert (tmp_path / "cache" / FEATURES_FILE).stat().st_mtime_ns == stamp
    other = _frozen_config(corpus, tmp_path / "run", tmp_path / "cache", feature_views=2)
    with pytest.raises(ValueError, match="no backbone features"):
        load_cache(str(tmp_path / "cache"), "another fingerprint", Storage())
    prepare_image_features(other)  # other settings: recomputed in place
    assert np.load(tmp_path / "cache" / FEATURES_FILE).shape == (n, 2, dim)
    assert json.loads((tmp_path / "cache" / META_FILE).read_text())["shape"] == [n, 2, dim]
    assert prepare_image_features(_config(corpus, tmp_path / "run2")) is None  # trainable backbone: no cache


def test_cached_features_one_and_two_ranks_give_the_same_losses(corpus, text_features, tmp_path):
    from training.train import prepare_image_features

    torch.set_num_threads(1)
    cache = tmp_path / "cache"
    prepare_image_features(_frozen_config(corpus, tmp_path / "one", cache))
    single = run_training(_frozen_config(corpus, tmp_path / "one", cache), text_features)
    got = _two_ranks(_frozen_config(corpus, tmp_path / "two", cache), text_features, tmp_path)
    for key in ("loss", "image_text", "image_image", "class", "logit_adjusted"):
        np.testing.assert_allclose(got[0][key], single[key], rtol=1e-4, err_msg=key)
    assert single["steps"] == 2 and np.isfinite(single["loss"])


def test_trained_on_cached_features_embeds_drawings_the_same_way(corpus, text_features, tmp_path):
    """The saved model (backbone + trained head) maps a drawing where the head maps its cached
    plain view; the residual head started from the features' principal directions."""
    from priorsight.images import Preprocessing
    from training.feature_cache import FEATURES_FILE
    from training.train import prepare_image_features

    cfg = _frozen_config(corpus, tmp_path / "run", tmp_path / "cache", epochs=2)
    prepare_image_features(cfg)
    with pytest.raises(ValueError, match="no backbone features"):  # the cache is a precondition
        run_training(_frozen_config(corpus, tmp_path / "run", tmp_path / "elsewhere"), text_features)
    run_training(cfg, text_features)
    model = load_trained_model(str(tmp_path / "run"))
    feats = torch.from_numpy(np.load(tmp_path / "cache" / FEATURES_FILE)[:, 0])
    image = Preprocessing(64).load(open(corpus / "images" / "US06010-0.png", "rb").read())
    with torch.no_grad():
        from_image = model.image(torch.from_numpy(image)[None])
        from_cache = model.image(feats[:1])
    np.testing.assert_allclose(from_image.numpy(), from_cache.numpy(), rtol=1e-4, atol=1e-5)
    assert model.image.backbone_frozen and model.image.head.kind == "residual"


def test_a_run_dir_of_another_model_is_refused_or_set_aside(corpus, text_features, tmp_path):
    from priorsight.storage import Storage
    from training.train import RunMismatch, prepare_image_features, set_aside_other_run

    run_dir = tmp_path / "model"
    run_training(_config(corpus, run_dir, max_steps_per_epoch=1), text_features)
    frozen = _frozen_config(corpus, run_dir, tmp_path / "cache", epochs=2)
    prepare_image_features(frozen)
    with pytest.raises(RunMismatch, match="'tiny'"):  # never resumes into another architecture
        run_training(frozen, text_features)
    assert set_aside_other_run(_config(corpus, run_dir), Storage()) is None  # same model: stays
    moved = set_aside_other_run(frozen, Storage())
    assert moved and moved.startswith(f"{run_dir}.tiny-") and (tmp_path / moved / "checkpoints").is_dir()
    assert not run_dir.exists()
    assert run_training(frozen, text_features)["epoch"] == 1  # trains from scratch in the freed dir



# -- a frozen prefix: the last blocks and the heads trained on cached feature maps ---------------

def _prefix_config(corpus, run_dir, cache_dir, **over) -> TrainConfig:
    model = ModelConfig(name="tiny-prefix", embed_dim=16,
                        vision=VisionConfig(image_size=64, head="residual", head_hidden_dim=32, freeze_blocks=12,
                                            drop_connect=0.0),
                        text=TextConfig(head="residual", head_hidden_dim=32))
    loss = LossConfig(logit_adjusted=True, text_class=True)
    return _config(corpus, run_dir, **{"model": model, "feature_views": 2, "feature_cache": str(cache_dir),
                                       "loss": loss, **over})


@pytest.fixture(scope="module")
def document_features(corpus, tmp_path_factory):
    """The drawings' words (titles) embedded by the stand-in encoder into a run dir's cache."""
    from training.train import DOCUMENT_FEATURES, TrainingSet

    titles = sorted(set(TrainingSet.from_manifest(str(corpus)).titles))
    run_dir = tmp_path_factory.mktemp("docs")
    load_or_embed_texts(titles, run_dir / DOCUMENT_FEATURES, _HashEncoder())
    return str(run_dir / DOCUMENT_FEATURES)


def test_cached_prefix_maps_train_the_last_blocks_like_full_images(corpus, text_features, document_features, tmp_path):
    """The cache holds the frozen first modules' feature maps (float16); training runs the rest of
    the backbone on them: 1 and 2 ranks agree, the trained backbone blocks moved, the frozen ones
    did not, and the saved model embeds a drawing where the cache path puts its plain view."""
    from priorsight.images import Preprocessing
    from training.backbones import load_backbone
    from training.feature_cache import FEATURES_FILE
    from training.train import prepare_image_features

    torch.set_num_threads(1)
    cache = tmp_path / "cache"
    cfg = _prefix_config(corpus, tmp_path / "one", cache)
    prepare_image_features(cfg)
    maps = np.load(cache / FEATURES_FILE)
    backbone, _ = load_backbone(image_size=64)
    image = Preprocessing(64).load(open(corpus / "images" / "US06010-0.png", "rb").read())
    with torch.no_grad():
        expected = backbone.run(torch.from_numpy(image)[None], 0, 12)[0].numpy()
    assert maps.dtype == np.float16 and maps.shape[:2] == (16, 2) and maps.shape[2:] == expected.shape
    np.testing.assert_allclose(maps[0, 0].astype(np.float32), expected, rtol=2e-2, atol=2e-2)

    single = run_training(cfg, text_features, document_features_uri=document_features)
    for key in ("text_class", "text_logit_adjusted", "class", "logit_adjusted", "image_text"):
        assert np.isfinite(single[key]), key
    got = _two_ranks(_prefix_config(corpus, tmp_path / "two", cache), text_features, tmp_path, document_features)
    for key in ("loss", "class", "text_class", "text_logit_adjusted"):
        np.testing.assert_allclose(got[0][key], single[key], rtol=1e-3, err_msg=key)

    model = load_trained_model(str(tmp_path / "one"))
    before, _ = load_backbone(image_size=64)
    trained = dict(model.image.backbone.named_parameters())
    for name, p in before.named_parameters():
        block = int(name.split(".")[2]) if name.startswith("net._blocks.") else None
        moved = not torch.equal(p, trained[name])
        if block is not None and block < 11:  # stem + blocks 0..10: the frozen 12 modules
            assert not moved, name
    assert any(not torch.equal(p, trained[n]) for n, p in before.named_parameters() if "_conv_head" in n)
    with torch.no_grad():
        from_image = model.image(torch.from_numpy(image)[None])
        from_maps = model.image.forward_cached(torch.from_numpy(maps[:1, 0].astype(np.float32)))
    np.testing.assert_allclose(from_image.numpy(), from_maps.numpy(), rtol=2e-2, atol=2e-2)


def test_training_set_uses_the_configured_class_scheme(tmp_path):
    from priorsight.manifest import CorpusWriter
    from priorsight.records import Drawing
    from training.train import TrainingSet

    def corpus_of(path, classes):
        with CorpusWriter(str(path)) as w:
            for i, (loc, us) in enumerate(classes):
                w.write(Drawing(f"d{i}", f"P{i}", "/x.png", "test", locarno_class=loc, us_class=us, title=f"Thing {i}"))
        return str(path)

    mixed = corpus_of(tmp_path / "mixed", [("14-04", "D14-486"), ("14-04", "D14-487"), (None, "D7-654"), (None, "D7-1")])
    auto = TrainingSet.from_manifest(mixed)  # US classes label more drawings: uspc, main classes
    assert auto.scheme.name == "uspc-main" and auto.class_vocab == ["D14", "D7"] and len(auto) == 4
    assert auto.class_counts() == {"D14": 2, "D7": 2} and auto.titles[2] == "Thing 2"
    assert TrainingSet.from_manifest(mixed, level="subclass").class_vocab == ["D14-486", "D14-487", "D7-1", "D7-654"]
    loc = TrainingSet.from_manifest(mixed, scheme="locarno")  # drawings without a Locarno class are left out
    assert loc.class_vocab == ["14-04"] and len(loc) == 2
    us_only = corpus_of(tmp_path / "us", [(None, "D7-1")])
    with pytest.raises(ValueError, match="no drawing with a locarno-main class"):
        TrainingSet.from_manifest(us_only, scheme="locarno", level="main")


def test_views_of_a_large_sheet_come_from_a_reduced_working_copy():
    from training.feature_cache import working_copy

    sheet = Image.new("L", (2550, 3300), 255)
    small = working_copy(sheet, 224)
    assert small.size == (-(-2550 // 7), -(-3300 // 7)) and max(small.size) >= 2 * 224  # reduce(7) rounds up
    assert working_copy(Image.new("L", (512, 512), 255), 224).size == (512, 512)  # already small: as is


def test_the_instance_head_is_the_pretrained_backbone_projected(corpus, text_features, document_features, tmp_path):
    """With instance_dim, the image tower carries what the pretrained backbone says of a drawing
    (PCA of its features, fitted on the training drawings): training does not move it."""
    from priorsight.images import Preprocessing
    from training.backbones import load_backbone
    from training.encoder import Encoder
    from training.train import prepare_image_features

    torch.set_num_threads(1)
    cfg = _prefix_config(corpus, tmp_path / "run", tmp_path / "cache")
    cfg = cfg.model_copy(update={"model": cfg.model_cfg().model_copy(update={"name": "tiny-inst", "instance_dim": 8})})
    prepare_image_features(cfg)
    run_training(cfg, text_features, document_features_uri=document_features)
    enc = Encoder.from_checkpoint(str(tmp_path / "run"), text=False)
    assert enc.instance_dim == 8 and enc.image_dim == 16 + 8 and enc.vector_dim == 16 + 8 + 16 + enc.class_dim
    head = enc.image_tower.instance
    pretrained, _ = load_backbone(image_size=64)
    for (name, p), (_, q) in zip(pretrained.named_parameters(), head.tail.named_parameters(), strict=True):
        assert torch.equal(p, q), name  # the pretrained weights, untouched by training
    image = Preprocessing(64).load(open(corpus / "images" / "US06010-0.png", "rb").read())
    with torch.no_grad():
        feats = pretrained(torch.from_numpy(image)[None])
    expected = torch.nn.functional.normalize((feats - head.mean) @ head.components.T, dim=1).numpy()
    vec = enc.embed_images(image[None])
    np.testing.assert_allclose(vec[:, 16:], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vec[:, :16], axis=1), 1.0, rtol=1e-5)
