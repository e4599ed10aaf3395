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

# spawned ranks start a fresh interpreter: give them the malloc settings (docs/stack.md)
os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "4294967296")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "68719476736")

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
                run_dir=str(run_dir), epochs=1, max_steps_per_epoch=2, lr=1e-2, backbone_lr=1e-3,
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


def _rank(rank: int, world: int, init_file: str, cfg: TrainConfig, text_uri: str, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        metrics = run_training(cfg, text_uri)
        results.put((rank, {k: v for k, v in metrics.items() if isinstance(v, float)}))
    except BaseException:
        import traceback

        results.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_one_and_two_ranks_give_the_same_losses(corpus, text_features, tmp_path):
    """Two steps: the second step's loss also depends on the first update (DDP-averaged gradients)."""
    torch.set_num_threads(1)
    single = run_training(_config(corpus, tmp_path / "one"), text_features)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    cfg2 = _config(corpus, tmp_path / "two")
    procs = [ctx.Process(target=_rank, args=(r, 2, str(tmp_path / "init"), cfg2, text_features, results))
             for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=300) for _ in procs)
    for r, out in got.items():
        assert isinstance(out, dict), f"rank {r} failed:\n{out}"
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
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
