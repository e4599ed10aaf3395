"""``priorsight bench retrieval``: the method's ablation on a validation split of real drawings.

The protocol (docs/training.md):

* **validation split**: the real long-tailed corpus (default: the 601 US design patents of 2007,
  one drawing each, US design class) split by patent, stratified by main class, about 75/25,
  seeded and fixed: training never sees the held-out quarter. A second real corpus with
  several views per patent (default: the 2021 USPTO sample) is split in half by patent: its
  first half joins training, its second half is a second held-out gallery (same patent, same
  Locarno class).
* **variants** (:data:`VARIANTS`), each trained on the same data, sampler, cached views, steps
  and seeds; only the loss or the descriptions differ: (a) untrained, (b) image-only class
  contrastive, (c) + image-text alignment (and the words tower), (d) + distribution-aware terms,
  then (d) without each distribution-aware part, (d) with templated text or titles instead of
  LLM descriptions. A model sweep (``models``) trains (d) on other backbones, resolutions,
  poolings or frozen depths.
* **queries**: each held-out drawing queries the rest of its gallery in three modes: its image,
  its image and title, its title (an examiner knows the application's title).
* **figures**: mean and sd over training seeds, and a bootstrap interval over queries of the
  seed-averaged per-query AP; differences between variants with a paired bootstrap on the same
  queries. The galleries are small (about 150 queries): read a difference as real only when its
  interval excludes 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from priorsight.bench import markdown_table
from priorsight.classes import ClassScheme
from priorsight.corpus.split import split_corpus
from priorsight.manifest import concat_manifests, read_manifest, write_table
from priorsight.storage import Storage, join
from priorsight.vectors import DEFAULT_WEIGHTS, FusionWeights, document_text
from training.encoder import Encoder
from training.evaluate import corpus_buckets, evaluate_corpus, resolve_corpus
from training.losses import DEFAULT_LOSS, LossConfig
from training.metrics import bootstrap_ci, paired_bootstrap
from training.models import DEFAULT_MODEL
from training.samplers import BatchConfig
from training.train import TrainConfig, prepare_image_features, prepare_text_features, run_training

log = logging.getLogger(__name__)

Descriptions = Literal["llm", "templated", "titles"]

#: the full method (d): training.losses.DEFAULT_LOSS
FULL = DEFAULT_LOSS


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a loss (None: the untrained baseline) and its descriptions."""

    label: str
    loss: LossConfig | None
    descriptions: Descriptions = "llm"


VARIANTS: dict[str, Variant] = {
    "a_untrained": Variant("(a) untrained backbone + raw MiniLM", None),
    "b_image_class": Variant("(b) image-only class contrastive", LossConfig(
        image_text=False, image_image=True, class_level="supcon", combine="sum", class_temperature=0.3,
        preserve=True)),
    "c_image_text": Variant("(c) + image-text alignment", LossConfig(
        image_text=True, image_image=True, class_level="supcon", text_class=True, combine="sum",
        class_temperature=0.3, preserve=True)),
    "d_full": Variant("(d) + distribution-aware terms", FULL),
    "d_no_class_balanced": Variant("(d) without class-balanced weights",
                                   LossConfig(**{**asdict(FULL), "class_balanced_beta": None})),
    "d_no_balanced_la": Variant("(d) without balanced contrastive and logit adjustment",
                                LossConfig(**{**asdict(FULL), "class_level": "supcon", "logit_adjusted": False})),
    "d_no_uncertainty": Variant("(d) without uncertainty weighting (sum)",
                                LossConfig(**{**asdict(FULL), "combine": "sum"})),
    "d_no_preserve": Variant("(d) without relational distillation (preserve)",
                             LossConfig(**{**asdict(FULL), "preserve": False})),
    "d_templated": Variant("(d) with templated descriptions", FULL, "templated"),
    "d_titles": Variant("(d) with titles as the only descriptions", FULL, "titles"),
}
DEFAULT_VARIANTS = tuple(VARIANTS)
MODES = ("image", "image+text", "text")


@dataclass
class RetrievalBenchConfig:
    corpus: str  # real long-tailed corpus: validation split source (table/USPTO folder or corpus dir)
    workdir: str
    holdout: str | None = None  # a second real corpus, halved: half trains, half is a second gallery
    model: str = DEFAULT_MODEL
    models: list[str] = field(default_factory=list)  # the sweep: (d) on each of these model configs
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    epochs: int = 20
    max_steps_per_epoch: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr: float = 1e-4
    feature_views: int = 8
    seed: int = 0  # the split's seed and the first training seed
    seeds: int = 3
    test_fraction: float = 0.25
    stratify: str = "uspc-main"  # the validation split's strata (a ClassScheme name)
    class_scheme: str = "auto"  # training and evaluation classes (auto: per corpus)
    k_descriptions: int = 10
    llm_cache: str | None = None  # describe cache holding LLM descriptions (the "llm" descriptions)
    llm_backend: str = "llama-cpp"
    query_text: str = "title"
    weights: FusionWeights = field(default_factory=lambda: DEFAULT_WEIGHTS.model_copy())
    resamples: int = 1000
    #: with N > 0, also train (d) on the training split plus N synthetic patents (the variant
    #: ``d_synthetic``): whether the generator's drawings help on real ones
    synthetic: int = 0


# -- data ------------------------------------------------------------------------------------

@dataclass
class BenchData:
    train: str  # training manifest (validation source's train part + holdout's first half)
    val: str  # held-out validation gallery
    holdout: str | None  # held-out half of the second corpus
    buckets: dict[str, str]  # head/medium/tail of the validation source's classes
    split: dict[str, int]
    descriptions: dict[str, str] = field(default_factory=dict)  # kind -> table URI
    train_synthetic: str | None = None  # the training manifest plus synthetic patents


def prepare_data(cfg: RetrievalBenchConfig, storage: Storage) -> BenchData:
    work = Path(cfg.workdir)
    full = resolve_corpus(cfg.corpus, storage, workdir=str(work / "corpus"))
    strata = ClassScheme.parse(cfg.stratify)
    split = split_corpus(full, str(work / "split"), cfg.test_fraction, cfg.seed, storage, stratify=strata)
    parts = [str(work / "split" / "train")]
    holdout = None
    if cfg.holdout:
        h = resolve_corpus(cfg.holdout, storage, workdir=str(work / "holdout-corpus"))
        hs = split_corpus(h, str(work / "holdout-split"), 0.5, cfg.seed, storage)
        split.update({f"holdout_{k}": v for k, v in hs.items()})
        parts.append(str(work / "holdout-split" / "train"))
        holdout = str(work / "holdout-split" / "test")
    train = str(work / "train")
    split["train_total_drawings"] = concat_manifests(parts, train, storage)
    data = BenchData(train, str(work / "split" / "test"), holdout, corpus_buckets(full, strata, storage), split)
    if cfg.synthetic:
        from priorsight.corpus.synth.generate import generate_corpus

        synth = work / f"synthetic-{cfg.synthetic}"
        if not (synth / "manifest.parquet").exists():
            generate_corpus(str(synth), cfg.synthetic, seed=cfg.seed, image_size=256, workers=2, storage=storage)
        data.train_synthetic = str(work / f"train-synthetic-{cfg.synthetic}")
        split["train_synthetic_drawings"] = concat_manifests([train, str(synth)], data.train_synthetic, storage)
    return data


def titles_table(train: str, out: str, storage: Storage) -> str:
    """A description table whose only description of a drawing is its title."""
    rows = read_manifest(train, storage, columns=["drawing_id", "title"]).to_pylist()
    table = pa.table({"drawing_id": [r["drawing_id"] for r in rows],
                      "descriptions": [[document_text(r) or "design"] for r in rows]})
    uri = join(out, "descriptions.parquet")
    write_table(table, uri, storage)
    return uri


def descriptions_for(kind: Descriptions, data: BenchData, cfg: RetrievalBenchConfig, storage: Storage) -> str:
    """The description table of one kind for the training drawings (made once per bench run)."""
    if kind in data.descriptions:
        return data.descriptions[kind]
    from cluster.describe_job import describe_corpus
    from priorsight.describe.config import DescribeConfig

    out = str(Path(cfg.workdir) / f"descriptions-{kind}")
    if kind == "titles":
        uri = titles_table(data.train, out, storage)
    elif kind == "templated":
        describe_corpus(data.train, out, k=cfg.k_descriptions, llm_patents=0, runner="local", progress=False,
                        storage=storage)
        uri = join(out, "descriptions.parquet")
    else:  # LLM descriptions; generated here unless cached (run `priorsight describe` on the corpus first)
        dcfg = DescribeConfig(cache_dir=cfg.llm_cache) if cfg.llm_cache else DescribeConfig()
        dcfg.backend.kind = cfg.llm_backend  # type: ignore[assignment]
        summary = describe_corpus(data.train, out, k=cfg.k_descriptions, config=dcfg, runner="local",
                                  progress=True, storage=storage)
        log.info("LLM descriptions: %d of %d patents generated now (%d cached)", summary["patents_generated"],
                 summary["patents_llm"], summary["patents_cached"])
        uri = join(out, "descriptions.parquet")
    data.descriptions[kind] = uri
    return uri


def synthetic_descriptions(data: BenchData, cfg: RetrievalBenchConfig, storage: Storage) -> str:
    """The real training drawings' LLM descriptions plus templated ones of the synthetic drawings."""
    from cluster.describe_job import describe_corpus
    from priorsight.manifest import read_table

    real = read_table(descriptions_for("llm", data, cfg, storage), storage)
    out = str(Path(cfg.workdir) / "descriptions-synthetic")
    synth = str(Path(cfg.workdir) / f"synthetic-{cfg.synthetic}")
    describe_corpus(synth, out, k=cfg.k_descriptions, llm_patents=0, runner="local", progress=False, storage=storage)
    both = pa.concat_tables([real.select(["drawing_id", "descriptions"]),
                             read_table(join(out, "descriptions.parquet"), storage).select(["drawing_id", "descriptions"])])
    uri = join(out, "all.parquet")
    write_table(both, uri, storage)
    return uri


# -- runs ------------------------------------------------------------------------------------

def _evaluate(encoder: Encoder, data: BenchData, cfg: RetrievalBenchConfig, storage: Storage) -> dict:
    out = {"val": evaluate_corpus(data.val, encoder, storage=storage, progress=False, bucket_of_class=data.buckets,
                                  scheme=cfg.class_scheme, query_text=cfg.query_text, weights=cfg.weights,
                                  resamples=0, keep_per_query=True)}
    # the drawing alone against the drawings alone: image similarity only (the README's protocol)
    pure = evaluate_corpus(data.val, encoder, storage=storage, progress=False, bucket_of_class=data.buckets,
                           scheme=cfg.class_scheme, modes=["image"], resamples=0, keep_per_query=True,
                           weights=cfg.weights.model_copy(update={"classes": 0.0}))
    out["val"]["pixels"] = pure["image"]
    out["val"]["per_query"]["pixels"] = pure["per_query"]["image"]
    if data.holdout:
        out["holdout"] = evaluate_corpus(data.holdout, encoder, storage=storage, progress=False,
                                         scheme="locarno-subclass", query_text=cfg.query_text, modes=["image"],
                                         weights=cfg.weights, resamples=0, keep_per_query=True)
    return out


def train_variant(name: str, variant: Variant, model: str, seed: int, data: BenchData, cfg: RetrievalBenchConfig,
                  storage: Storage) -> tuple[str, float]:
    """Train one variant for one seed; returns (run dir, seconds)."""
    work = Path(cfg.workdir)
    tag = f"{name}-{Path(model).stem}-seed{seed}"
    run_dir = str(work / "runs" / tag)
    synthetic = name == "d_synthetic"
    corpus = data.train_synthetic if synthetic else data.train
    descriptions = None
    if variant.loss.image_text:  # synthetic drawings: their own templated descriptions, as the demo made them
        descriptions = synthetic_descriptions(data, cfg, storage) if synthetic else \
            descriptions_for(variant.descriptions, data, cfg, storage)
    tcfg = TrainConfig(model=model, corpus=corpus, descriptions=descriptions, run_dir=run_dir,
                       epochs=cfg.epochs, max_steps_per_epoch=cfg.max_steps_per_epoch, seed=seed, lr=cfg.lr,
                       backbone_lr=cfg.backbone_lr, feature_views=cfg.feature_views,
                       feature_cache=str(work / "features" / f"{Path(model).stem}{'-synthetic' if synthetic else ''}"
                                                                   f"-seed{seed}"),
                       **_scheme_fields(cfg.class_scheme),
                       batch=BatchConfig(batch_size=cfg.batch_size, m_per_class=4, views_per_patent=2, seed=seed),
                       loss=variant.loss, storage=storage.config)
    t0 = time.perf_counter()
    text_uri = prepare_text_features(tcfg, storage) if variant.loss.image_text else None
    prepare_image_features(tcfg, storage, progress=False)  # shared by the variants of a model and seed
    metrics = run_training(tcfg, text_uri)
    log.info("%s trained in %.0f s: %s", tag, time.perf_counter() - t0,
             {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return run_dir, time.perf_counter() - t0


def _scheme_fields(name: str) -> dict[str, str]:
    """TrainConfig's class_scheme / class_level for a scheme name ("auto", "uspc", "uspc-main")."""
    if name == "auto":
        return {"class_scheme": "auto", "class_level": "auto"}
    scheme, _, level = name.partition("-")
    return {"class_scheme": scheme, "class_level": level or "auto"}


def run_bench(cfg: RetrievalBenchConfig, storage: Storage | None = None) -> dict:
    storage = storage or Storage()
    data = prepare_data(cfg, storage)
    log.info("bench retrieval: %s", data.split)
    rows: list[tuple[str, Variant, str]] = [(n, VARIANTS[n], cfg.model) for n in cfg.variants]
    if cfg.synthetic:
        rows.append(("d_synthetic", Variant(f"(d) + {cfg.synthetic} synthetic patents in training", FULL), cfg.model))
    rows += [(f"d_full@{Path(m).stem}", VARIANTS["d_full"], m) for m in cfg.models if m != cfg.model]
    results: dict[str, dict] = {}
    for name, variant, model in rows:
        runs = []
        seeds = [cfg.seed] if variant.loss is None else list(range(cfg.seed, cfg.seed + cfg.seeds))
        for seed in seeds:
            if variant.loss is None:
                t0 = time.perf_counter()
                encoder = Encoder.baseline()
                train_s = time.perf_counter() - t0
            else:
                run_dir, train_s = train_variant(name, variant, model, seed, data, cfg, storage)
                encoder = Encoder.from_checkpoint(run_dir, storage)
            runs.append({"seed": seed, "train_s": train_s, **_evaluate(encoder, data, cfg, storage)})
            log.info("%s seed %d: val image class mAP %.3f, image+text %.3f", name, seed,
                     runs[-1]["val"]["image"]["class"]["overall"]["mAP"],
                     runs[-1]["val"]["image+text"]["class"]["overall"]["mAP"])
        results[name] = summarise_runs(runs, cfg.resamples)
        results[name].update(label=variant.label + ("" if model == cfg.model else f", {Path(model).stem}"),
                             model=model, descriptions=variant.descriptions if variant.loss else None)
    out = {"config": {**asdict(cfg), "weights": cfg.weights.model_dump()}, "split": data.split, "variants": results}
    out["comparisons"] = comparisons(results, cfg.resamples)
    return out


# -- figures ---------------------------------------------------------------------------------

#: (gallery, mode, relevance) figures every variant reports
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("val", "image", "class"), ("val", "pixels", "class"), ("val", "image+text", "class"), ("val", "text", "class"),
    ("holdout", "image", "patent"), ("holdout", "image", "class"),
)


def _key(gallery: str, mode: str, rel: str) -> str:
    return f"{gallery}/{mode}/{rel}"


def summarise_runs(runs: list[dict], resamples: int = 1000) -> dict:
    """Per figure: the mean and sd over seeds of mAP (and tail mAP, R@10, MRR@10), and the
    bootstrap interval over queries of the seed-averaged per-query AP; plus the seed-averaged
    per-query APs themselves (for paired comparisons)."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "train_s": float(np.mean([r["train_s"] for r in runs])),
                           "figures": {}, "per_query": {}}
    for gallery, mode, rel in FIGURES:
        blocks = [r[gallery][mode][rel] for r in runs if gallery in r and mode in r[gallery]]
        if not blocks or not blocks[0]["queries"]:
            continue
        maps = [b["overall"]["mAP"] for b in blocks]
        fig = {"mAP": float(np.mean(maps)), "mAP_sd": float(np.std(maps)), "queries": blocks[0]["queries"],
               "tail_mAP": float(np.nanmean([b["tail"]["mAP"] for b in blocks])),
               "recall@10": float(np.mean([b["overall"]["recall@10"] for b in blocks])),
               "mrr@10": float(np.mean([b["overall"]["mrr@10"] for b in blocks]))}
        per = [r[gallery]["per_query"][mode][rel] for r in runs]
        ids = sorted(set.intersection(*(set(p) for p in per)))
        avg = {i: float(np.mean([p[i] for p in per])) for i in ids}
        fig["mAP_ci"] = list(bootstrap_ci(np.asarray(list(avg.values())), resamples)) if avg else [np.nan, np.nan]
        out["figures"][_key(gallery, mode, rel)] = fig
        out["per_query"][_key(gallery, mode, rel)] = avg
    out["per_class"] = runs[0]["val"].get("per_class", {}).get("image", [])
    return out


#: (name, variant a, variant b, figure of a, figure of b): the ratios the issue's goals name
RATIOS: tuple[tuple[str, str, str, str, str], ...] = (
    ("default image vs untrained", "d_full", "a_untrained", "val/image/class", "val/image/class"),
    ("default image (drawings only) vs untrained", "d_full", "a_untrained", "val/pixels/class", "val/image/class"),
    ("(d) vs (b), image", "d_full", "b_image_class", "val/image/class", "val/image/class"),
    ("(c) vs (b), image", "c_image_text", "b_image_class", "val/image/class", "val/image/class"),
    ("(d) vs (c), image", "d_full", "c_image_text", "val/image/class", "val/image/class"),
    ("image+text vs title-only MiniLM", "d_full", "a_untrained", "val/image+text/class", "val/text/class"),
    ("(d) vs (b), image+text", "d_full", "b_image_class", "val/image+text/class", "val/image+text/class"),
    ("holdout same patent vs untrained", "d_full", "a_untrained", "holdout/image/patent", "holdout/image/patent"),
    ("holdout same Locarno vs untrained", "d_full", "a_untrained", "holdout/image/class", "holdout/image/class"),
    ("LLM vs templated descriptions, image", "d_full", "d_templated", "val/image/class", "val/image/class"),
    ("LLM vs titles as descriptions, image", "d_full", "d_titles", "val/image/class", "val/image/class"),
    ("with vs without synthetic drawings, image", "d_synthetic", "d_full", "val/image/class", "val/image/class"),
    ("with vs without synthetic drawings, image+text", "d_synthetic", "d_full", "val/image+text/class",
     "val/image+text/class"),
)


def comparisons(results: dict[str, dict], resamples: int = 1000) -> list[dict]:
    """The ratios of :data:`RATIOS` that this run has both sides of, each with the paired
    bootstrap of the difference on the same queries (seed-averaged APs)."""
    out = []
    for name, a, b, fa, fb in RATIOS:
        if a not in results or b not in results or fa not in results[a]["figures"] or fb not in results[b]["figures"]:
            continue
        ma, mb = results[a]["figures"][fa]["mAP"], results[b]["figures"][fb]["mAP"]
        pa, pb = results[a]["per_query"][fa], results[b]["per_query"][fb]
        ids = sorted(set(pa) & set(pb))
        paired = paired_bootstrap(np.asarray([pa[i] for i in ids]), np.asarray([pb[i] for i in ids]), resamples)
        out.append({"comparison": name, "a": f"{a} {fa}", "b": f"{b} {fb}", "a_mAP": ma, "b_mAP": mb,
                    "ratio": ma / mb if mb else float("nan"), **{f"diff_{k}": v for k, v in paired.items()}})
    return out


def _cell(fig: dict | None) -> str:
    if not fig:
        return "-"
    return f"{fig['mAP']:.3f} ± {fig['mAP_sd']:.3f}"


def summary_rows(r: dict) -> list[dict]:
    rows = []
    for name, v in r["variants"].items():
        f = v["figures"]
        val = f.get("val/image/class")
        rows.append({
            "variant": v.get("label", name),
            "image: class mAP (sd)": _cell(val),
            "95% CI": f"[{val['mAP_ci'][0]:.3f}, {val['mAP_ci'][1]:.3f}]" if val else "-",
            "image: tail mAP": f"{val['tail_mAP']:.3f}" if val else "-",
            "image, drawings only": _cell(f.get("val/pixels/class")),
            "image+text": _cell(f.get("val/image+text/class")),
            "text": _cell(f.get("val/text/class")),
            "2021 held-out: patent": _cell(f.get("holdout/image/patent")),
            "2021 held-out: Locarno": _cell(f.get("holdout/image/class")),
            "train s": f"{v['train_s']:.0f}",
        })
    return rows


def markdown(r: dict) -> str:
    c, s = r["config"], r["split"]
    lines = [
        f"Validation split of `{c['corpus']}`: stratified by {c['stratify']}, seed {c['seed']}, "
        f"{s['train_patents']} training patents ({s['train_drawings']} drawings, {s.get('train_classes', '?')} "
        f"classes) and {s['test_patents']} held out ({s['test_drawings']} drawings, {s.get('test_classes', '?')} "
        "classes)"
        + (f"; `{c['holdout']}` halved by patent: {s['holdout_train_patents']} patents "
           f"({s['holdout_train_drawings']} drawings) join training, {s['holdout_test_patents']} "
           f"({s['holdout_test_drawings']} drawings) are the second held-out gallery" if c.get("holdout") else "")
        + f". Model `{c['model']}`, {c['epochs']} epochs, batch {c['batch_size']}, {c['feature_views']} cached "
        f"views; mean ± sd over {c['seeds']} training seeds; 95% CI: bootstrap over queries of the seed-averaged "
        f"per-query AP. Queries: each held-out drawing, by image, by image and its title, by title, against the "
        f"index vectors [image ; instance ; title ; class posterior] (weights image {c['weights']['image']}, "
        f"instance {c['weights'].get('instance', 0)}, words {c['weights']['text']}, classes "
        f"{c['weights']['classes']}); `image, drawings only`: the drawing's similarities alone (classes weight 0). "
        "Relevance: same US main class (validation), same patent and same Locarno subclass (2021 held-out half).",
        "",
        markdown_table(summary_rows(r)),
    ]
    comp = r.get("comparisons") or []
    if comp:
        lines.append("Ratios and paired differences (same queries, seed-averaged AP; the difference is real "
                     "when its interval excludes 0):\n")
        lines.append(markdown_table([{
            "comparison": x["comparison"], "a": f"{x['a_mAP']:.3f}", "b": f"{x['b_mAP']:.3f}",
            "ratio": f"{x['ratio']:.2f}x", "difference [95% CI]": f"{x['diff_diff']:+.3f} "
            f"[{x['diff_lo']:+.3f}, {x['diff_hi']:+.3f}]", "a better in": f"{x['diff_p_better']:.0%}"} for x in comp]))
    return "\n".join(lines) + "\n"


def ratios(r: dict, figure: str = "val/image/class") -> dict[str, float]:
    """(d)/(b) and (d)/(a) of one figure (mAP and tail mAP), where both variants ran."""
    v = r["variants"]
    out: dict[str, float] = {}
    for other in ("b_image_class", "a_untrained"):
        if "d_full" in v and other in v and figure in v["d_full"]["figures"] and figure in v[other]["figures"]:
            d, o = v["d_full"]["figures"][figure], v[other]["figures"][figure]
            out[f"d_over_{other[0]}"] = d["mAP"] / max(o["mAP"], 1e-9)
            out[f"tail_d_over_{other[0]}"] = d["tail_mAP"] / max(o["tail_mAP"], 1e-9)
    return out


__all__ = ["FULL", "MODES", "VARIANTS", "RetrievalBenchConfig", "Variant", "comparisons", "markdown", "prepare_data",
           "ratios", "run_bench", "summarise_runs", "summary_rows"]


def parse_variants(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}: choose from {list(VARIANTS)}")
    return list(names)
