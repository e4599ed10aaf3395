"""Benchmarks of the synthetic corpus.

* ``synth-realism``: is retrieval on synthetic drawings as hard as on real ones? With the
  untrained ImageNet EfficientNet-Lite0 (224 px, average-pooled features, exact cosine search)
  the shared USPTO sample gives a same-patent and a same-class mAP; synthetic galleries of the
  same shape (same number of patents, classes per patent count, figures per patent) must land
  close to both. Larger galleries (500, 5,000 patents, Zipf classes) are reported as well.
* ``synth-speed``: drawings per second per core (CPU time), by stage and supersampling.

Both write their results with :func:`priorsight.bench.record`.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from priorsight.corpus.synth.designs import load_catalog
from priorsight.corpus.synth.generate import SynthConfig, generate_patent, plan_patent
from priorsight.corpus.synth.render import render_view

log = logging.getLogger(__name__)

#: the shared real sample, relative to the project root
REAL_SAMPLE = "../shared/data/uspto-design-2021"
#: the figures the brief gives for the real sample (same-patent / same-class mAP)
BRIEF_REFERENCE = {"patent": 0.72, "class": 0.31}
TOLERANCE = 0.15
#: shape of the shared sample when it is absent: patents per Locarno main class and figures
#: per patent (front-page drawing not counted)
SAMPLE_CLASS_HISTOGRAM = (5, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1)
SAMPLE_FIGURES = (1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 7, 7, 7, 8, 8, 9, 14, 15, 67)


@dataclass
class Gallery:
    """Embedded drawings with their patent and Locarno class."""

    name: str
    features: np.ndarray
    patent_ids: list[str]
    classes: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self, max_queries: int | None = None, seed: int = 0) -> dict[str, Any]:
        from training.metrics import retrieval_metrics

        n = len(self.patent_ids)
        mask = None
        if max_queries is not None and n > max_queries:
            mask = np.zeros(n, dtype=bool)
            mask[np.random.default_rng(seed).choice(n, max_queries, replace=False)] = True
        out = {}
        for rel in ("patent", "class"):
            m = retrieval_metrics(self.features, self.patent_ids, self.classes, relevance=rel, query_mask=mask)
            out[rel] = {"mAP": m["overall"]["mAP"], "recall@10": m["overall"]["recall@10"],
                        "mrr@10": m["overall"]["mrr@10"], "queries": m["queries"], "skipped": m["skipped"],
                        "buckets": {b: m[b]["mAP"] for b in ("head", "medium", "tail")}}
        return out


class Embedder:
    """Preprocess (the shared :func:`priorsight.images.preprocess`) and embed with a backbone."""

    def __init__(self, backbone: str = "efficientnet-lite0", size: int = 224, batch_size: int = 32):
        from training.backbones import load_backbone

        self.model, self.dim = load_backbone(backbone)
        self.size = size
        self.batch_size = batch_size

    def __call__(self, images: Iterable[Image.Image]) -> np.ndarray:
        from priorsight.images import preprocess
        from training.backbones import extract_features

        feats, buf = [], []
        for img in images:
            buf.append(preprocess(img, self.size))
            if len(buf) == self.batch_size:
                feats.append(extract_features(self.model, np.stack(buf), self.batch_size))
                buf = []
        if buf:
            feats.append(extract_features(self.model, np.stack(buf), self.batch_size))
        return np.concatenate(feats) if feats else np.zeros((0, self.dim), dtype=np.float32)


# -- galleries --------------------------------------------------------------------------------------

def real_gallery(embed: Embedder, src: str | Path = REAL_SAMPLE, front_pages: bool = True) -> Gallery:
    """The shared USPTO sample read with the importer (TIFFs decoded in place)."""
    from priorsight.corpus.uspto import read_uspto
    from priorsight.images import decode_image
    from priorsight.records import Drawing

    if not Path(src).is_dir():
        raise FileNotFoundError(f"real sample not found: {src} (give --real PATH)")
    t0 = time.perf_counter()
    drawings = [d for d in read_uspto(src) if isinstance(d, Drawing)]
    if not front_pages:
        drawings = [d for d in drawings if not d.drawing_id.endswith("D00000")]
    images = (decode_image(Path(d.image_uri).read_bytes()) for d in drawings)
    feats = embed(images)
    name = "real USPTO sample" + ("" if front_pages else " (front pages removed)")
    return Gallery(name, feats, [d.patent_id for d in drawings], [d.locarno_class or "" for d in drawings],
                   {"embed": time.perf_counter() - t0})


def sample_shape(src: str | Path = REAL_SAMPLE) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(patents per Locarno main class, figures per patent) of the real sample (fallback: constants)."""
    from priorsight.corpus.uspto import read_uspto
    from priorsight.records import Drawing

    if not Path(src).is_dir():
        return SAMPLE_CLASS_HISTOGRAM, SAMPLE_FIGURES
    figs: Counter[str] = Counter()
    main: dict[str, str] = {}
    for d in read_uspto(src):
        if isinstance(d, Drawing) and not d.drawing_id.endswith("D00000"):
            figs[d.patent_id] += 1
            main[d.patent_id] = (d.locarno_class or "").split("-")[0]
    hist = tuple(sorted(Counter(main.values()).values(), reverse=True))
    return hist, tuple(sorted(figs.values()))


def _render_patent(args: tuple[dict, int, str | None, int, int]) -> tuple[str, str, list[bytes]]:
    """Worker: render patent ``index`` (class forced when given) with ``keep`` figures: extra
    perspective views when it has fewer, FIG. 1 and a random choice of the others when more."""
    cfg, index, locarno, keep, pick_seed = args
    config = SynthConfig(**cfg)
    drawings = generate_patent(config, index, locarno=locarno, min_figures=keep)
    if 0 < keep < len(drawings):
        rng = np.random.default_rng([pick_seed, index])
        rest = sorted(rng.choice(np.arange(1, len(drawings)), size=max(keep - 1, 0), replace=False).tolist())
        drawings = [drawings[0]] + [drawings[i] for i in rest]
    return drawings[0].drawing.patent_id, drawings[0].drawing.locarno_class or "", [d.png for d in drawings]


def _embed_jobs(name: str, jobs: list, embed: Embedder, workers: int) -> Gallery:
    """Render jobs in worker processes while this process embeds what comes back."""
    pids: list[str] = []
    classes: list[str] = []
    t0 = time.perf_counter()

    def images() -> Iterator[Image.Image]:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for pid, cls, pngs in pool.map(_render_patent, jobs, chunksize=4):
                for png in pngs:
                    pids.append(pid)
                    classes.append(cls)
                    yield Image.open(io.BytesIO(png))

    feats = embed(images())
    return Gallery(name, feats, pids, classes, {"render+embed": time.perf_counter() - t0})


def shaped_gallery(seed: int, embed: Embedder, class_hist: Sequence[int], figures: Sequence[int],
                   workers: int = 2, image_size: int = 256, supersample: float = 1.25) -> Gallery:
    """A synthetic gallery shaped like the real sample: ``len(class_hist)`` random Locarno classes
    with these numbers of patents, and the real sample's figure counts shuffled over the patents
    (extra perspective views where a synthetic patent has fewer figures)."""
    catalog = load_catalog()
    rng = np.random.default_rng([7919, seed])
    codes = [c.code for c in catalog.classes]
    if len(class_hist) > len(codes):
        raise ValueError(f"need {len(class_hist)} classes, the catalog has {len(codes)}")
    chosen = rng.choice(codes, size=len(class_hist), replace=False)
    per_patent = [str(c) for c, n in zip(chosen, class_hist) for _ in range(n)]
    # the real multiset of figure counts when it fits (one count per patent), else a resample
    keep = (rng.permutation(np.asarray(figures)) if len(figures) == len(per_patent)
            else rng.choice(np.asarray(figures), size=len(per_patent), replace=True))
    cfg = SynthConfig(patents=len(per_patent), seed=seed, image_size=image_size, supersample=supersample).model_dump()
    jobs = [(cfg, i, per_patent[i], int(keep[i]), seed) for i in range(len(per_patent))]
    return _embed_jobs(f"synthetic, real-sample shape, seed {seed}", jobs, embed, workers)


def zipf_gallery(patents: int, embed: Embedder, seed: int = 0, workers: int = 2, image_size: int = 256,
                 supersample: float = 1.25) -> Gallery:
    """The default generator (Zipf classes, 4-8 views and extras) for ``patents`` patents."""
    cfg = SynthConfig(patents=patents, seed=seed, image_size=image_size, supersample=supersample).model_dump()
    jobs = [(cfg, i, None, 0, seed) for i in range(patents)]
    return _embed_jobs(f"synthetic, {patents} patents (Zipf classes)", jobs, embed, workers)


# -- realism benchmark ----------------------------------------------------------------------------

def run_realism(seeds: int = 10, sizes: Sequence[int] = (500, 5000), max_queries: int = 5000,
                real: str | Path = REAL_SAMPLE, workers: int = 2, image_size: int = 256,
                supersample: float = 1.25) -> dict[str, Any]:
    """Measure real vs synthetic retrieval difficulty; returns the results (see module doc)."""
    embed = Embedder()
    results: dict[str, Any] = {"backbone": "efficientnet-lite0 (ImageNet, untrained), 224 px, avg-pool, cosine",
                               "brief_reference": BRIEF_REFERENCE, "tolerance": TOLERANCE}
    real_rows = []
    if Path(real).is_dir():
        for fp in (True, False):
            g = real_gallery(embed, real, front_pages=fp)
            m = g.metrics()
            real_rows.append({"gallery": g.name, "patents": len(set(g.patent_ids)), "drawings": len(g.patent_ids),
                              "classes": len(set(g.classes)), **_flat(m)})
        results["real"] = real_rows
        reference = {"patent": real_rows[0]["patent_mAP"], "class": real_rows[0]["class_mAP"]}
    else:
        log.warning("real sample not found at %s: comparing with the brief's figures only", real)
        reference = dict(BRIEF_REFERENCE)
    results["reference"] = reference
    class_hist, figures = sample_shape(real)
    results["shape"] = {"class_histogram": list(class_hist), "figures_per_patent": list(figures)}
    per_seed = []
    for s in range(seeds):
        g = shaped_gallery(s, embed, class_hist, figures, workers, image_size, supersample)
        m = g.metrics()
        per_seed.append({"seed": s, "patents": len(set(g.patent_ids)), "drawings": len(g.patent_ids),
                         "classes": len(set(g.classes)), **_flat(m)})
        log.info("seed %d: same-patent mAP %.3f, same-class mAP %.3f", s, per_seed[-1]["patent_mAP"],
                 per_seed[-1]["class_mAP"])
    results["shaped_per_seed"] = per_seed
    shaped = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0] if k != "seed"}
    shaped.update({f"{k}_std": float(np.std([r[k] for r in per_seed])) for k in ("patent_mAP", "class_mAP")})
    results["shaped_mean"] = shaped
    checks = {}
    for rel in ("patent", "class"):
        for ref_name, ref in (("measured", reference), ("brief", BRIEF_REFERENCE)):
            diff = shaped[f"{rel}_mAP"] - ref[rel]
            checks[f"{rel}_vs_{ref_name}"] = {"synthetic": shaped[f"{rel}_mAP"], "real": ref[rel],
                                              "difference": diff, "within_tolerance": abs(diff) <= TOLERANCE}
    results["checks"] = checks
    large = []
    for n in sizes:
        g = zipf_gallery(n, embed, 0, workers, image_size, supersample)
        t0 = time.perf_counter()
        mq = max_queries if len(g.patent_ids) > max_queries else None
        m = g.metrics(max_queries=mq)
        large.append({"gallery": g.name, "patents": n, "drawings": len(g.patent_ids), "classes": len(set(g.classes)),
                      "query_subsample": mq or "all", **_flat(m), "seconds": round(g.seconds["render+embed"] +
                                                                                   time.perf_counter() - t0, 1)})
        log.info("%d patents: same-patent mAP %.3f, same-class mAP %.3f", n, large[-1]["patent_mAP"],
                 large[-1]["class_mAP"])
    results["large"] = large
    return results


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for rel in ("patent", "class"):
        out[f"{rel}_mAP"] = m[rel]["mAP"]
        out[f"{rel}_recall@10"] = m[rel]["recall@10"]
        out[f"{rel}_mrr@10"] = m[rel]["mrr@10"]
        out[f"{rel}_queries"] = m[rel]["queries"]
    for b, v in m["class"]["buckets"].items():
        out[f"class_mAP_{b}"] = v
    return out


def realism_markdown(results: dict[str, Any]) -> str:
    from priorsight.bench import markdown_table

    cols = ["gallery", "patents", "drawings", "classes", "patent_mAP", "patent_recall@10", "patent_queries",
            "class_mAP", "class_recall@10", "class_queries"]
    rows = list(results.get("real", []))
    sm = results["shaped_mean"]
    n = len(results["shaped_per_seed"])
    rows.append({**{c: sm.get(c, "") for c in cols},
                 "gallery": f"synthetic, real-sample shape (mean of {n} seeds)",
                 "patent_mAP": f"{sm['patent_mAP']:.3f} ± {sm['patent_mAP_std']:.3f}",
                 "class_mAP": f"{sm['class_mAP']:.3f} ± {sm['class_mAP_std']:.3f}",
                 **{c: f"{sm[c]:.1f}".removesuffix(".0") for c in ("patents", "drawings", "classes", "patent_queries",
                                                                    "class_queries")}})
    for r in results.get("large", []):
        rows.append({**r, "gallery": r["gallery"] + ("" if r["query_subsample"] == "all"
                                                     else f", {r['query_subsample']} random queries")})
    lines = [results["backbone"] + "; same-class relevance = same Locarno subclass (CC-SS), other patents.",
             "", markdown_table(rows, cols)]
    shape = results["shape"]
    lines.append(f"Real-sample shape: {len(shape['class_histogram'])} random classes with "
                 f"{shape['class_histogram']} patents, and the real figure counts {shape['figures_per_patent']} "
                 "shuffled over the patents (a synthetic patent with fewer figures adds perspective views from "
                 "further angles; one with more keeps FIG. 1 and a random subset). Synthetic galleries have no "
                 "front-page duplicates.\n")
    chk = results["checks"]
    lines.append(f"| check (±{results['tolerance']:.2f}) | synthetic | real | difference | ok |\n|---|---|---|---|---|")
    for k, v in chk.items():
        lines.append(f"| {k} | {v['synthetic']:.3f} | {v['real']:.3f} | {v['difference']:+.3f} | "
                     f"{'yes' if v['within_tolerance'] else 'NO'} |")
    if results.get("large"):
        lines.append("\nHead / medium / tail same-class mAP (large galleries): " + "; ".join(
            f"{r['patents']} patents: {r['class_mAP_head']:.3f} / {r['class_mAP_medium']:.3f} / {r['class_mAP_tail']:.3f}"
            for r in results["large"]))
    return "\n".join(lines) + "\n"


# -- speed benchmark -------------------------------------------------------------------------------

def _time_corpus(config: SynthConfig, catalog) -> dict[str, float]:
    """CPU seconds by stage for patents 0..N-1 of ``config`` (one process, no I/O)."""
    stage = {"design+metadata": 0.0, "render": 0.0, "png": 0.0}
    n = 0
    wall0 = time.perf_counter()
    for i in range(config.patents):
        c = time.process_time()
        plan, design = plan_patent(config, i, catalog)
        stage["design+metadata"] += time.process_time() - c
        for fig in plan.figures:
            c = time.process_time()
            img = render_view(design, fig.spec, plan.style, config.image_size, label=f"FIG. {fig.number}")
            c2 = time.process_time()
            img.save(io.BytesIO(), format="PNG", compress_level=config.png_compress_level)
            stage["png"] += time.process_time() - c2
            stage["render"] += c2 - c
            n += 1
    return {"drawings": n, "cpu": sum(stage.values()), "wall": time.perf_counter() - wall0, **stage}


def run_speed(patents: int = 40, image_size: int = 256, supersamples: Sequence[float] = (1.0, 1.25, 1.5, 2.0),
              seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """CPU time per drawing of the whole per-patent function, by stage, for several supersampling
    factors. ``drawings_per_s_per_core`` = drawings / CPU seconds of this (single-threaded)
    process, best of ``repeats`` interleaved runs (the machine is shared; contention only slows)."""
    catalog = load_catalog()
    _time_corpus(SynthConfig(patents=3, seed=seed, image_size=image_size), catalog)  # warm-up
    runs: dict[float, list[dict[str, float]]] = {ss: [] for ss in supersamples}
    for _ in range(repeats):
        for ss in supersamples:
            config = SynthConfig(patents=patents, seed=seed, image_size=image_size, supersample=ss)
            runs[ss].append(_time_corpus(config, catalog))
    rows = []
    for ss, rs in runs.items():
        best = min(rs, key=lambda r: r["cpu"])
        n = best["drawings"]
        rows.append({"image_size": image_size, "supersample": ss, "patents": patents, "drawings": n,
                     "drawings_per_s_per_core": n / best["cpu"],
                     "median_drawings_per_s_per_core": float(np.median([r["drawings"] / r["cpu"] for r in rs])),
                     "wall_drawings_per_s": n / best["wall"],
                     **{f"ms_{k}": 1000 * best[k] / n for k in ("design+metadata", "render", "png")}})
        log.info("supersample %.2f: %.1f drawings/s per core", ss, n / best["cpu"])
    return {"rows": rows, "repeats": repeats, "goal_drawings_per_s_per_core": 50,
            "default_supersample": SynthConfig().supersample}


def speed_markdown(results: dict[str, Any]) -> str:
    from priorsight.bench import markdown_table

    return ("Whole per-patent function (design, metadata, rendering, PNG encoding; no file I/O) in one "
            "process; per-core rate = drawings / CPU seconds, best of "
            f"{results['repeats']} interleaved runs (median beside it; the machine is shared). "
            f"Default supersampling: {results['default_supersample']}. "
            f"Goal: {results['goal_drawings_per_s_per_core']} drawings/s per core at 256 px.\n\n"
            + markdown_table(results["rows"]))


def round_floats(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 4) if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: round_floats(v) for k, v in x.items()}
    if isinstance(x, list):
        return [round_floats(v) for v in x]
    return x
