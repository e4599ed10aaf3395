"""Held-out splits and the `priorsight eval` command on real drawings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

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
                      feature_views=0, batch=BatchConfig(batch_size=8, m_per_class=4, views_per_patent=2),
                      loss=LossConfig(image_text=False))
    run_training(cfg)
    from training.encoder import Encoder

    r = evaluate_corpus(corpus, Encoder.from_checkpoint(str(run_dir)), progress=False)
    assert r["drawings"] == 20 and r["class_scheme"] == "locarno-subclass"
    assert set(r["patent"]["overall"]) == {"n", "mAP", "recall@10", "hit@10", "mrr@10", "mAP_ci", "recall@10_ci",
                                           "mrr@10_ci"}
    assert r["patent"]["queries"] == 20 and r["patent"] == r["image"]["patent"]
    lo, hi = r["patent"]["overall"]["mAP_ci"]
    assert lo <= r["patent"]["overall"]["mAP"] <= hi


def test_eval_without_a_model_is_a_clear_error(tmp_path):
    p = subprocess.run([EXE, "eval", str(tmp_path), "--checkpoint", str(tmp_path / "none")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "no checkpoint" in p.stderr and "Traceback" not in p.stderr


def _table_subset(design_2007: Path, tmp_path: Path, per_class: int = 4, classes: int = 5) -> Path:
    """A table folder of real 2007 drawings: the first ``per_class`` patents of the ``classes``
    largest US main classes (copied images, a metadata.csv like the shared one)."""
    import csv
    from collections import defaultdict

    rows = list(csv.DictReader((design_2007 / "metadata.csv").open()))
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["us_design_class"].split("-")[0]].append(r)
    chosen = [r for _, rs in sorted(by.items(), key=lambda kv: -len(kv[1]))[:classes] for r in rs[:per_class]]
    out = tmp_path / "table"
    (out / "images").mkdir(parents=True)
    for r in chosen:
        shutil.copy(design_2007 / r["image"], out / r["image"])
    with (out / "metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(chosen[0]))
        w.writeheader()
        w.writerows(chosen)
    return out


def test_eval_cli_on_a_table_folder_with_words(design_2007, tmp_path):
    """A corpus with only US classes evaluates on them; --query-text adds the image+text and
    text modes, each an object shaped like the image-only keys; bootstrap intervals; per class."""
    src = _table_subset(design_2007, tmp_path)
    out = tmp_path / "r.json"
    p = subprocess.run([EXE, "eval", str(src), "--baseline", "--query-text", "title", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "query: image+text" in p.stdout and "per class" in p.stdout
    r = json.loads(out.read_text())
    assert r["class_scheme"] == "uspc-main" and r["drawings"] == 20 and r["classes"] == 5
    assert r["modes"] == ["image", "image+text", "text"]
    for mode in r["modes"]:
        block = r[mode]["class"]
        assert block["queries"] == 20 and set(block) >= {"overall", "head", "medium", "tail"}
        lo, hi = block["overall"]["mAP_ci"]
        assert 0 <= lo <= block["overall"]["mAP"] <= hi <= 1
    assert r["class"] == r["image"]["class"]  # today's keys: the image-only queries
    assert r["patent"]["queries"] == 0  # one drawing per patent: no same-patent query
    rows = r["per_class"]["image"]
    assert len(rows) == 5 and all(x["queries"] == 4 and x["gallery"] == 4 for x in rows)
    assert [x["mAP"] for x in rows] == sorted(x["mAP"] for x in rows)  # worst first
    # titles name the objects: words find same-class patents far better than untrained image features
    assert r["text"]["class"]["overall"]["mAP"] > r["image"]["class"]["overall"]["mAP"]


def test_eval_of_a_trained_model_against_the_baseline(design_2007, tmp_path):
    from training.encoder import Encoder
    from training.evaluate import format_results

    corpus = resolve_corpus(str(_table_subset(design_2007, tmp_path)), workdir=str(tmp_path / "c"))
    run_dir = tmp_path / "run"
    cfg = TrainConfig(model="efficientnet-lite0-tail-256", corpus=corpus, run_dir=str(run_dir), epochs=1,
                      max_steps_per_epoch=2, feature_views=2, batch=BatchConfig(batch_size=8, m_per_class=4,
                                                                                views_per_patent=1),
                      loss=LossConfig(image_text=False, class_level="bcl", text_class=True, logit_adjusted=True))
    from training.train import prepare_image_features

    prepare_image_features(cfg, progress=False)
    run_training(cfg)
    model = Encoder.from_checkpoint(str(run_dir))
    assert model.info["class_scheme"] == "uspc-main" and sum(model.info["class_counts"].values()) == 20
    assert model.class_dim == 5 and model.vector_dim == 3 * 256 + 5  # [image ; instance ; words ; classes]
    post = model.posteriors(np.eye(512, dtype=np.float32)[:3], None)  # image vectors: embedding + instance
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-5)
    r = evaluate_corpus(corpus, model, progress=False, query_text="title", baseline=Encoder.baseline(),
                        train_counts=model.info["class_counts"], resamples=200)
    for mode in ("image", "image+text", "text"):
        assert r[mode]["baseline"]["class"]["queries"] == r[mode]["class"]["queries"] == 20
        v = r[mode]["vs_baseline"]["class"]
        assert v["lo"] <= v["diff"] <= v["hi"] and 0 <= v["p_better"] <= 1
    rows = r["per_class"]["image"]
    assert all(x["train"] == 4 for x in rows)  # the model trained on these very drawings: 4 per class
    assert all(x["below_baseline"] == (x["mAP"] < x["baseline_mAP"]) for x in rows)
    text = format_results(r)
    assert "below the untrained baseline" in text and "mAP vs baseline" in text


def test_stratified_validation_split_of_the_2007_folder(design_2007, tmp_path):
    """The validation protocol: by patent, stratified by US main class, about 75/25, seeded; every
    class with two or more patents on both sides, a class of one patent in training only."""
    from collections import Counter

    from priorsight.classes import ClassScheme

    corpus = resolve_corpus(str(design_2007), workdir=str(tmp_path / "c"))
    main = ClassScheme("uspc", "main")
    counts = split_corpus(corpus, str(tmp_path / "s"), 0.25, seed=0, stratify=main)
    again = split_corpus(corpus, str(tmp_path / "s2"), 0.25, seed=0, stratify=main)
    assert counts == again and counts["train_patents"] + counts["test_patents"] == 601
    assert 0.24 < counts["test_patents"] / 601 < 0.27
    train = main.labels(read_manifest(str(tmp_path / "s" / "train")).to_pylist())
    test = main.labels(read_manifest(str(tmp_path / "s" / "test")).to_pylist())
    whole = Counter(train) + Counter(test)
    for cls, n in whole.items():
        expected = min(n - 1, int(n * 0.25 + 0.5))
        assert Counter(test)[cls] == expected, cls
    assert Counter(test)["D99"] == 0 and Counter(train)["D99"] == 1  # the folder's one D99 patent
    other = split_corpus(corpus, str(tmp_path / "s3"), 0.25, seed=1, stratify=main)
    assert other["test_patents"] == counts["test_patents"]  # same sizes per class, other patents
    assert set(read_manifest(str(tmp_path / "s3" / "test")).column("patent_id").to_pylist()) != \
        set(read_manifest(str(tmp_path / "s" / "test")).column("patent_id").to_pylist())


def test_a_folder_is_imported_once_where_train_and_index_find_it_again(design_2007, tmp_path, monkeypatch):
    from training import evaluate

    src = _table_subset(design_2007, tmp_path, per_class=2, classes=2)
    monkeypatch.setattr(evaluate, "IMPORTED_DIR", tmp_path / "corpora")
    work = evaluate.imported_corpus_dir(str(src))
    assert work.startswith(str(tmp_path / "corpora" / "table-"))
    first = resolve_corpus(str(src), workdir=work, reuse=True)
    stamp = (Path(first) / "manifest.parquet").stat().st_mtime_ns
    assert resolve_corpus(str(src), workdir=work, reuse=True) == first  # found again, not re-imported
    assert (Path(first) / "manifest.parquet").stat().st_mtime_ns == stamp
    assert read_manifest(first).num_rows == 4
