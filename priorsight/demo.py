"""``priorsight demo``: the whole pipeline on embedded defaults, one stage after another.

real drawings (the shared 2007 US design folder and the 2021 USPTO sample) -> the validation
protocol's splits (2007: stratified by US main class, 75/25; 2021: halved by patent) ->
descriptions (Ray Data; the LLM for ``llm_patents`` patents) -> training on the training splits
(Ray Train) -> evaluation on the held-out drawings, untrained vs trained, by image, by image and
title, by title -> Milvus index of every drawing (Ray Data, embedded server) -> serving (Ray
Serve) with one example query. A synthetic long-tailed corpus joins training only when asked
(``--synthetic N``): whether they help real retrieval is not measured yet (docs/training.md). Every
stage is resumable: a second run reuses what the first one finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from priorsight.config import Settings
from priorsight.storage import Storage

log = logging.getLogger(__name__)

#: the validation protocol (docs/training.md): fraction held out, and what it is stratified by
VALIDATION_FRACTION = 0.25
VALIDATION_STRATA = "uspc-main"


@dataclass
class DemoContext:
    out: Path
    shared_dir: Path
    storage: Storage
    serve: bool
    settings: Settings = field(default_factory=Settings)
    synthetic: int = 0  # synthetic patents added to training (0: none)
    llm_patents: int = 0
    train_epochs: int = 20
    seed: int = 0
    corpora: dict[str, str] = field(default_factory=dict)  # name -> corpus dir (what the index holds)
    train_parts: list[str] = field(default_factory=list)
    test_parts: dict[str, str] = field(default_factory=dict)

    run_dir: str = ""

    def path(self, *parts: str) -> str:
        return str(self.out.joinpath(*parts))

    @property
    def uspto_src(self) -> Path:
        return self.shared_dir / "data" / "uspto-design-2021"

    @property
    def table_src(self) -> Path:
        return self.shared_dir / "data" / "uspto-design-2007-first-figures"


def stage_real(ctx: DemoContext) -> None:
    from priorsight.corpus.commands import write_corpus
    from priorsight.corpus.stats import corpus_stats, format_stats
    from priorsight.corpus.table import read_table_folder
    from priorsight.corpus.uspto import read_uspto

    found = False
    for name, src, reader in (("us2007", ctx.table_src, lambda: read_table_folder(ctx.table_src, None, ctx.storage,
                                                                                     source="uspto")),
                              ("uspto2021", ctx.uspto_src, lambda: read_uspto(ctx.uspto_src,
                                                                              ctx.path("uspto2021", "images"),
                                                                              ctx.storage))):
        if not src.is_dir():
            typer.echo(f"(skipped: {src} is not there)")
            continue
        out = ctx.path(name)
        if not Path(out, "manifest.parquet").exists():
            write_corpus(reader(), out, ctx.storage, f"import {name}")
        typer.echo(f"-- {name} ({src})")
        typer.echo(format_stats(corpus_stats(out, ctx.storage), top=8))
        ctx.corpora[name] = out
        found = True
    if not found:
        typer.secho(f"error: no real drawings under {ctx.shared_dir}/data: the demo trains on them "
                    "(set PRIORSIGHT_SHARED_DIR or --shared-dir)", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)


def stage_synth(ctx: DemoContext) -> None:
    from priorsight.corpus.stats import corpus_stats, format_stats
    from priorsight.corpus.synth.generate import generate_corpus

    if not ctx.synthetic:
        typer.echo("(none: training is on real drawings; --synthetic N adds synthetic ones)")
        return
    out = ctx.path("synthetic")
    if not Path(out, "manifest.parquet").exists():
        summary = generate_corpus(out, ctx.synthetic, seed=ctx.seed, image_size=256, workers=2, storage=ctx.storage)
        typer.echo(f"generated {summary}")
    typer.echo(format_stats(corpus_stats(out, ctx.storage), top=8))
    ctx.corpora["synthetic"] = out


def stage_split(ctx: DemoContext) -> None:
    """The validation protocol: the 2007 folder stratified by US main class (75/25), the 2021
    sample halved by patent, 20 % of the synthetic patents (if any) held out."""
    from priorsight.classes import ClassScheme
    from priorsight.corpus.split import split_corpus
    from priorsight.manifest import concat_manifests

    plan = {"us2007": (VALIDATION_FRACTION, ClassScheme.parse(VALIDATION_STRATA)), "uspto2021": (0.5, None),
            "synthetic": (0.2, None)}
    for name, corpus in ctx.corpora.items():
        fraction, strata = plan[name]
        counts = split_corpus(corpus, ctx.path("splits", name), fraction, ctx.seed, ctx.storage, stratify=strata)
        typer.echo(f"{name}: {counts}")
        ctx.train_parts.append(ctx.path("splits", name, "train"))
        ctx.test_parts[name] = ctx.path("splits", name, "test")
    n = concat_manifests(ctx.train_parts, ctx.path("train"), ctx.storage)
    concat_manifests(list(ctx.corpora.values()), ctx.path("all"), ctx.storage)
    typer.echo(f"training corpus: {n} drawings -> {ctx.path('train')}")


def stage_describe(ctx: DemoContext) -> None:
    from cluster.describe_job import describe_corpus
    from priorsight.describe.pipeline import format_sample

    out = ctx.path("descriptions")
    summary = describe_corpus(ctx.path("train"), out, k=10, llm_patents=ctx.llm_patents,
                              config=ctx.settings.describe, storage=ctx.storage)
    typer.echo({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
    typer.echo(format_sample(ctx.path("train"), out, 2, ctx.storage))


def demo_train_config(ctx: DemoContext):
    """The default model's training recipe: what `bench retrieval` measures as (d)."""
    from training.bench_retrieval import FULL
    from training.models import DEFAULT_MODEL
    from training.samplers import BatchConfig
    from training.train import TrainConfig

    return TrainConfig(model=DEFAULT_MODEL, corpus=ctx.path("train"),
                       descriptions=ctx.path("descriptions", "descriptions.parquet"), run_dir=ctx.path("model"),
                       epochs=ctx.train_epochs, feature_views=8, seed=ctx.seed,
                       batch=BatchConfig(batch_size=64, m_per_class=4, views_per_patent=2, seed=ctx.seed),
                       loss=FULL, num_workers=1, cpus_per_worker=1.5, storage=ctx.settings.storage)


def stage_train(ctx: DemoContext) -> None:
    from cluster.ray_env import init_ray
    from training.train import set_aside_other_run, train

    # data/demo/model: the default model of `priorsight eval` and `index`. The backbone's first 12
    # modules stay frozen: their output for 8 views of every drawing is computed once, then the
    # last blocks and both heads train on it (docs/training.md)
    cfg = demo_train_config(ctx)
    moved = set_aside_other_run(cfg, ctx.storage)
    if moved:
        typer.echo(f"{cfg.run_dir} held a model of another architecture: moved to {moved}")
    with init_ray():
        metrics = train(cfg)
    typer.echo(f"trained: {({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})}")
    ctx.run_dir = cfg.run_dir


def stage_eval(ctx: DemoContext) -> None:
    from priorsight.classes import ClassScheme
    from training.encoder import Encoder
    from training.evaluate import corpus_buckets, evaluate_corpus, format_results

    trained, baseline = Encoder.from_checkpoint(ctx.run_dir, ctx.storage), Encoder.baseline()
    for name, test in ctx.test_parts.items():
        if name == "synthetic":
            continue
        scheme = ClassScheme.parse(VALIDATION_STRATA) if name == "us2007" else ClassScheme("locarno", "subclass")
        r = evaluate_corpus(test, trained, storage=ctx.storage, progress=False, scheme=scheme, query_text="title",
                            weights=ctx.settings.query_weights, baseline=baseline,
                            bucket_of_class=corpus_buckets(ctx.corpora[name], scheme, ctx.storage),
                            train_counts=trained.info.get("class_counts"),
                            modes=None if name == "us2007" else ["image"])
        typer.secho(f"\ntrained model vs untrained baseline on held-out {name} ({r['drawings']} drawings, "
                    f"{r['patents']} patents):", bold=True)
        typer.echo(format_results(r, per_class=6))


def stage_index(ctx: DemoContext) -> None:
    from cluster.index_job import index_corpus
    from priorsight.milvus import EmbeddedMilvus

    m = ctx.settings.milvus
    if m.target == "embedded":
        status = EmbeddedMilvus.from_config(m).start()
        typer.echo(f"embedded Milvus at {status.uri} (data {m.data_dir})")
    r = index_corpus(ctx.path("all"), ctx.run_dir, m, ctx.settings.storage, swap=True)
    typer.echo(f"indexed {r.rows_in_collection} drawings into {r.collection} (alias {r.alias} -> {r.live}), "
               f"{r.failed} failed, {r.seconds:.1f} s")


def stage_serve(ctx: DemoContext) -> None:
    from priorsight.milvus import EmbeddedMilvus
    from services.commands import serve_demo

    m = ctx.settings.milvus
    try:
        serve_demo(ctx.run_dir, ctx.path("all"), m.alias, m, block=ctx.serve, weights=ctx.settings.query_weights)
    finally:
        if m.target == "embedded" and not ctx.serve:
            EmbeddedMilvus.from_config(m).stop()


STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("import the real drawings (2007 US design folder, 2021 USPTO sample)", stage_real),
    ("synthetic drawings (only with --synthetic N)", stage_synth),
    ("hold out patents: the validation split", stage_split),
    ("describe every training drawing (Ray Data)", stage_describe),
    ("train the drawing and words encoders (Ray Train)", stage_train),
    ("evaluate on held-out patents, untrained vs trained", stage_eval),
    ("index every drawing in Milvus (Ray Data, embedded server)", stage_index),
    ("serve (Ray Serve) and run an example query", stage_serve),
]


def run_demo(ctx: DemoContext) -> None:
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, (title, fn) in enumerate(STAGES, 1):
        typer.secho(f"\n== [{i}/{len(STAGES)}] {title}", bold=True)
        t = time.perf_counter()
        fn(ctx)
        typer.echo(f"   ({time.perf_counter() - t:.1f} s)")
    typer.secho(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; outputs under {ctx.out}", bold=True)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        out: Path = typer.Option(Path("data/demo"), help="Where the demo writes its corpora, models and index."),
        shared_dir: Path = typer.Option(Path("../shared"), envvar="PRIORSIGHT_SHARED_DIR",
                                        help="The shared folder with the real drawings."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="End by serving the demo index until Ctrl-C."),
        synthetic: int = typer.Option(0, help="Synthetic patents to add to training (0: none)."),
        llm_patents: int = typer.Option(0, help="Patents described by the LLM (the rest: metadata-only and "
                                                "templated text)."),
        train_epochs: int = typer.Option(20, help="Training epochs (one epoch: every training drawing once)."),
    ) -> None:
        """Run the end-to-end demo on embedded defaults."""
        from priorsight.cli import settings_of

        settings = settings_of(ctx)
        run_demo(DemoContext(out=out, shared_dir=shared_dir, storage=Storage(settings.storage), serve=serve,
                             settings=settings, synthetic=synthetic, llm_patents=llm_patents,
                             train_epochs=train_epochs))
