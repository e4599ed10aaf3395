"""``priorsight bench retrieval``: the ablation of the method on held-out patents.

(a) the pretrained backbone untrained, (b) image-only contrastive (views of a patent are
positives), (c) + image-text alignment with the descriptions, (d) + distribution-aware
class-level terms (balanced contrastive with class-averaged denominators, class-balanced
weights by effective number, logit adjustment, uncertainty weighting) — the full method.
Every trained variant uses the same data, sampler, augmentations, steps and seed; only the
loss differs. Evaluated on the held-out split (patents never seen in training) and on the real
USPTO sample (never trained on).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from priorsight.bench import markdown_table
from priorsight.corpus.split import split_corpus
from priorsight.storage import Storage, join
from training.commands import image_encoder_from
from training.evaluate import evaluate_corpus, resolve_corpus
from training.losses import LossConfig
from training.models import DEFAULT_MODEL
from training.samplers import BatchConfig
from training.train import TrainConfig, prepare_image_features, prepare_text_features, run_training

log = logging.getLogger(__name__)

VARIANTS: dict[str, LossConfig | None] = {
    "a_pretrained": None,
    "b_image_only": LossConfig(image_text=False, image_image=True, class_level="none", combine="sum"),
    "c_image_text": LossConfig(image_text=True, image_image=True, class_level="none", combine="uncertainty"),
    "d_full": LossConfig(image_text=True, image_image=True, class_level="bcl", logit_adjusted=True,
                         class_balanced_beta=0.999, combine="uncertainty"),
}


@dataclass
class RetrievalBenchConfig:
    corpus: str  # a long-tailed corpus (e.g. `priorsight corpus synth` output)
    workdir: str
    uspto: str | None = None
    model: str = DEFAULT_MODEL
    epochs: int = 40
    max_steps_per_epoch: int | None = None
    batch_size: int = 64
    seed: int = 0  # the split's seed and the first training seed
    seeds: int = 1  # training seeds per variant (seed, seed + 1, ...): the table holds their mean
    test_fraction: float = 0.2
    k_descriptions: int = 8


def _describe(manifest: str, out: str, k: int) -> str:
    from cluster.describe_job import describe_corpus

    # metadata-only + templated descriptions (no LLM) keep the ablation about the losses and fast;
    # the LLM's descriptions go through the same table.
    describe_corpus(manifest, out, k=k, llm_patents=0, runner="local", progress=False)
    return join(out, "descriptions.parquet")


def run_bench(cfg: RetrievalBenchConfig, storage: Storage | None = None) -> dict:
    storage = storage or Storage()
    work = Path(cfg.workdir)
    split = work / "split"
    from priorsight.corpus.stats import corpus_stats

    full = resolve_corpus(cfg.corpus, storage)
    counts = split_corpus(full, str(split), cfg.test_fraction, cfg.seed, storage)
    buckets = corpus_stats(full, storage).bucket_of_class  # head/medium/tail of the whole corpus
    train_m, test_m = str(split / "train"), str(split / "test")
    descriptions = _describe(train_m, str(work / "descriptions"), cfg.k_descriptions)
    uspto = resolve_corpus(cfg.uspto, storage, workdir=str(work / "uspto")) if cfg.uspto else None

    results: dict[str, dict] = {}
    text_features = None
    for name, loss in VARIANTS.items():
        runs = []
        for seed in range(cfg.seed, cfg.seed + (1 if loss is None else cfg.seeds)):
            t0 = time.perf_counter()
            if loss is None:  # untrained: nothing depends on the seed
                encoder, size = image_encoder_from(None, baseline=True, storage=storage)
                train_s = 0.0
            else:
                run_dir = str(work / "runs" / f"{name}-seed{seed}")
                tcfg = TrainConfig(model=cfg.model, corpus=train_m, descriptions=descriptions, run_dir=run_dir,
                                   epochs=cfg.epochs, max_steps_per_epoch=cfg.max_steps_per_epoch, seed=seed,
                                   feature_cache=str(work / "features" / f"seed{seed}"),
                                   batch=BatchConfig(batch_size=cfg.batch_size, m_per_class=4, views_per_patent=2,
                                                     seed=seed),
                                   loss=loss)
                if loss.image_text and text_features is None:
                    text_features = prepare_text_features(tcfg, storage)
                prepare_image_features(tcfg, storage, progress=False)  # shared by the variants of a seed
                metrics = run_training(tcfg, text_features if loss.image_text else None)
                train_s = time.perf_counter() - t0
                log.info("%s seed %d trained: %s", name, seed, metrics)
                encoder, size = image_encoder_from(run_dir, baseline=False, storage=storage)
            run = {"seed": seed, "train_s": train_s,
                   "held_out": evaluate_corpus(test_m, encoder, size, storage=storage, progress=False,
                                               bucket_of_class=buckets)}
            if uspto:
                run["uspto"] = evaluate_corpus(uspto, encoder, size, storage=storage, progress=False)
            runs.append(run)
            log.info("%s seed %d: held-out class mAP %.3f", name, seed, run["held_out"]["class"]["overall"]["mAP"])
        results[name] = {**mean_of(runs), "runs": runs}
    return {"config": cfg.__dict__, "split": counts, "variants": results}


def mean_of(runs: list[dict]) -> dict:
    """The element-wise mean of the numbers in a list of like-shaped result dicts (other values:
    the first run's), plus ``class_mAP_sd`` per gallery: the spread over the runs."""
    def mean(values: list):
        first = values[0]
        if isinstance(first, dict):
            return {k: mean([v[k] for v in values]) for k in first}
        return float(np.mean(values)) if isinstance(first, float) else first  # counts, names: as run

    out = mean([{k: v for k, v in r.items() if k != "seed"} for r in runs])
    for where in ("held_out", "uspto"):
        if where in out:
            out[where]["class_mAP_sd"] = float(np.std([r[where]["class"]["overall"]["mAP"] for r in runs]))
    return out


def summary_rows(r: dict) -> list[dict]:
    rows = []
    for name, v in r["variants"].items():
        for where in ("held_out", "uspto"):
            if where not in v:
                continue
            m = v[where]
            rows.append({
                "variant": name, "gallery": where,
                "class mAP": m["class"]["overall"]["mAP"], "class mAP sd": m.get("class_mAP_sd", 0.0),
                "class R@10": m["class"]["overall"]["recall@10"],
                "class MRR@10": m["class"]["overall"]["mrr@10"], "tail class mAP": m["class"]["tail"]["mAP"],
                "patent mAP": m["patent"]["overall"]["mAP"], "patent R@10": m["patent"]["overall"]["recall@10"],
                "train s": v["train_s"],
            })
    return rows


def ratios(r: dict, where: str = "held_out") -> dict[str, float]:
    v = r["variants"]
    b, d = v["b_image_only"][where]["class"], v["d_full"][where]["class"]
    out = {"class_mAP_d_over_b": d["overall"]["mAP"] / max(b["overall"]["mAP"], 1e-9)}
    if b["tail"]["n"] and d["tail"]["n"]:
        out["tail_class_mAP_d_over_b"] = d["tail"]["mAP"] / max(b["tail"]["mAP"], 1e-9)
    return out


def markdown(r: dict) -> str:
    c = r["config"]
    s = r["split"]
    lines = [
        f"Corpus `{c['corpus']}` split by patent (seed {c['seed']}): {s['train_patents']} training patents "
        f"({s['train_drawings']} drawings), {s['test_patents']} held-out patents ({s['test_drawings']} drawings). "
        f"Model config `{c['model']}`, {c['epochs']} epochs, batch {c['batch_size']}; descriptions: metadata-only + "
        f"templated ({c['k_descriptions']} per drawing, no LLM). (a) is EfficientNet-Lite0 average-pooled at 224 px. "
        f"Trained variants: mean over {c['seeds']} training seed(s) from {c['seed']} (`class mAP sd`: their "
        f"spread); the USPTO sample is never trained on.",
        "",
        markdown_table(summary_rows(r)),
    ]
    for where in ("held_out", "uspto"):
        if all(where in v for v in r["variants"].values()):
            q = ratios(r, where)
            lines.append(f"- {where}: (d)/(b) same-class mAP = **{q['class_mAP_d_over_b']:.2f}x**"
                         + (f", tail bucket **{q['tail_class_mAP_d_over_b']:.2f}x**" if "tail_class_mAP_d_over_b" in q
                            else "") + " (goal >= 1.6x, more on the tail)")
    return "\n".join(lines) + "\n"
