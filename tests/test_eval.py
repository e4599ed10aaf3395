"""Held-out splits and the `priorsight eval` command on real drawings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from priorsight.corpus.split import split_corpus
from priorsight.manifest import read_manifest
from training.evaluate import evaluate_corpus, resolve_corpus
from training.losses import LossConfig
from training.samplers import BatchConfig
from training.train import TrainConfig, run_training

EXE = str(Path(sys.executable).parent / "priorsight")
PATENTS = ("USD0917866-20210504", "USD0917867-20210504", "USD0929296-20210831", "USD0929297-20210831",
           "USD0909824-20210209")


def _subset(uspto_sample: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for name in PATENTS:
        shutil.copytree(uspto_sample / name, src / name)
    return src


def test_split_by_patent_is_disjoint_and_stable(uspto_sample, tmp_path):
    corpus = resolve_corpus(str(uspto_sample), workdir=str(tmp_path / "all"))
    a = split_corpus(corpus, str(tmp_path / "s1"), 0.3, seed=7)
    b = split_corpus(corpus, str(tmp_path / "s2"), 0.3, seed=7)
    assert a == b
    train = set(read_manifest(str(tmp_path / "s1" / "train")).column("patent_id").to_pylist())
    test = set(read_manifest(str(tmp_path / "s1" / "test")).column("patent_id").to_pylist())
    assert train and test and not train & test and len(train | test) == 22
    assert a["train_drawings"] + a["test_drawings"] == 197


def test_eval_cli_baseline_on_a_uspto_folder(uspto_sample, tmp_path):
    src = _subset(uspto_sample, tmp_path)
    out = tmp_path / "r.json"
    p = subprocess.run([EXE, "eval", str(src), "--baseline", "--json", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert "patent" in p.stdout and "mAP" in p.stdout
    r = json.loads(out.read_text())
    assert r["drawings"] == 20 and r["patents"] == 5
    assert 0 < r["patent"]["overall"]["mAP"] <= 1
    # two shoes (02-04) and two wheels (12-16): every query of theirs has same-class drawings
    assert r["class"]["queries"] == 16


def test_eval_of_a_trained_checkpoint(uspto_sample, tmp_path):
    corpus = resolve_corpus(str(_subset(uspto_sample, tmp_path)), workdir=str(tmp_path / "c"))
    run_dir = tmp_path / "run"
    cfg = TrainConfig(model="demo-small", corpus=corpus, run_dir=str(run_dir), epochs=1, max_steps_per_epoch=1,
                      batch=BatchConfig(batch_size=8, m_per_class=4, views_per_patent=2),
                      loss=LossConfig(image_text=False))
    run_training(cfg)
    from training.commands import image_encoder_from

    encoder, size = image_encoder_from(str(run_dir), baseline=False, storage=None)
    r = evaluate_corpus(corpus, encoder, image_size=size, progress=False)
    assert r["drawings"] == 20
    assert set(r["patent"]["overall"]) == {"n", "mAP", "recall@10", "hit@10", "mrr@10"}
    assert r["patent"]["queries"] == 20


def test_eval_without_a_model_is_a_clear_error(tmp_path):
    p = subprocess.run([EXE, "eval", str(tmp_path), "--checkpoint", str(tmp_path / "none")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "no checkpoint" in p.stderr and "Traceback" not in p.stderr
