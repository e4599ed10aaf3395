"""``priorsight demo``: the whole pipeline on embedded defaults, one stage after another.

corpus (real USPTO sample + synthetic long-tailed corpus) -> held-out splits by patent ->
LLM descriptions (Ray Data) -> training (Ray Train) -> evaluation -> Milvus index (Ray Data,
embedded server) -> serving (Ray Serve) with one example query. Every stage is resumable:
a second run reuses what the first one finished.
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


@dataclass
class DemoContext:
    out: Path
    shared_dir: Path
    storage: Storage
    serve: bool
    settings: Settings = field(default_factory=Settings)
    patents: int = 240
    llm_patents: int = 4
    train_epochs: int = 40
    seed: int = 0
    corpora: list[str] = field(default_factory=list)  # what the index and the service hold
    train_parts: list[str] = field(default_factory=list)
    test_parts: dict[str, str] = field(default_factory=dict)

    run_dir: str = ""

    def path(self, *parts: str) -> str:
        return str(self.out.joinpath(*parts))

    @property
    def uspto_src(self) -> Path:
        return self.shared_dir / "data" / "uspto-design-2021"

    @property
    def uspto_corpus(self) -> Path:
        return self.out / "uspto"


def stage_uspto(ctx: DemoContext) -> None:
    from priorsight.corpus.commands import write_corpus
    from priorsight.corpus.stats import corpus_stats, format_stats
    from priorsight.corpus.uspto import read_uspto

    if not ctx.uspto_src.is_dir():
        typer.echo(f"(skipped: the shared USPTO sample is not at {ctx.uspto_src})")
        return
    out = str(ctx.uspto_corpus)
    if not (ctx.uspto_corpus / "manifest.parquet").exists():
        write_corpus(read_uspto(ctx.uspto_src, str(ctx.uspto_corpus / "images"), ctx.storage), out, ctx.storage,
                     "import-uspto")
    typer.echo(format_stats(corpus_stats(out, ctx.storage), top=15))
    ctx.corpora.append(out)


def stage_synth(ctx: DemoContext) -> None:
    from priorsight.corpus.stats import corpus_stats, format_stats
    from priorsight.corpus.synth.generate import generate_corpus

    out = ctx.path("synthetic")
    if not Path(out, "manifest.parquet").exists():
        summary = generate_corpus(out, ctx.patents, seed=ctx.seed, image_size=256, workers=2, storage=ctx.storage)
        typer.echo(f"generated {summary}")
    typer.echo(format_stats(corpus_stats(out, ctx.storage), top=12))
    ctx.corpora.append(out)


def stage_split(ctx: DemoContext) -> None:
    """Patents held out of training: 20 % of the synthetic ones, half of the real ones."""
    from priorsight.corpus.split import split_corpus
    from priorsight.manifest import concat_manifests

    for corpus, fraction in zip(ctx.corpora, (0.5, 0.2) if len(ctx.corpora) == 2 else (0.2,), strict=True):
        name = Path(corpus).name
        counts = split_corpus(corpus, ctx.path("splits", name), fraction, ctx.seed, ctx.storage)
        typer.echo(f"{name}: {counts}")
        ctx.train_parts.append(ctx.path("splits", name, "train"))
        ctx.test_parts[name] = ctx.path("splits", name, "test")
    n = concat_manifests(ctx.train_parts, ctx.path("train"), ctx.storage)
    concat_manifests(ctx.corpora, ctx.path("all"), ctx.storage)
    typer.echo(f"training corpus: {n} drawings -> {ctx.path('train')}")


def stage_describe(ctx: DemoContext) -> None:
    from cluster.describe_job import describe_corpus
    from priorsight.describe.pipeline import format_sample

    out = ctx.path("descriptions")
    summary = describe_corpus(ctx.path("train"), out, k=10, llm_patents=ctx.llm_patents,
                              config=ctx.settings.describe, storage=ctx.storage)
    typer.echo({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
    typer.echo(format_sample(ctx.path("train"), out, 2, ctx.storage))


def stage_train(ctx: DemoContext) -> None:
    from cluster.ray_env import init_ray
    from training.losses import LossConfig
    from training.models import DEFAULT_MODEL
    from training.samplers import BatchConfig
    from training.train import TrainConfig, set_aside_other_run, train

    run_dir = ctx.path("model")  # data/demo/model: the default model of `priorsight eval` and `index`
    # the pretrained backbone stays frozen at 224 px: 4 views of every drawing are embedded once
    # (about a minute here), then the heads train on those features (about 25 ms a step)
    cfg = TrainConfig(model=DEFAULT_MODEL, corpus=ctx.path("train"),
                      descriptions=ctx.path("descriptions", "descriptions.parquet"), run_dir=run_dir,
                      epochs=ctx.train_epochs, feature_views=4, seed=ctx.seed,
                      batch=BatchConfig(batch_size=48, m_per_class=4, views_per_patent=2, seed=ctx.seed),
                      loss=LossConfig(image_text=True, image_image=True, class_level="bcl", logit_adjusted=True,
                                      class_balanced_beta=0.999), num_workers=1, cpus_per_worker=1.5,
                      storage=ctx.settings.storage)
    moved = set_aside_other_run(cfg, ctx.storage)
    if moved:
        typer.echo(f"{run_dir} held a model of another architecture: moved to {moved}")
    with init_ray():
        metrics = train(cfg)
    typer.echo(f"trained: {({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})}")
    ctx.run_dir = run_dir


def stage_eval(ctx: DemoContext) -> None:
    from priorsight.corpus.stats import corpus_stats
    from training.commands import image_encoder_from
    from training.evaluate import evaluate_corpus, format_results

    # head / medium / tail as in each whole corpus, not in its small held-out part
    buckets = {Path(c).name: corpus_stats(c, ctx.storage).bucket_of_class for c in ctx.corpora}
    for which, enc in (("pretrained backbone", image_encoder_from(None, True, ctx.storage)),
                       ("trained model", image_encoder_from(ctx.run_dir, False, ctx.storage))):
        encoder, size = enc
        for name, test in ctx.test_parts.items():
            r = evaluate_corpus(test, encoder, size, storage=ctx.storage, progress=False,
                                bucket_of_class=buckets[name])
            typer.secho(f"\n{which} on held-out {name} ({r['drawings']} drawings, {r['patents']} patents):", bold=True)
            typer.echo(format_results(r))


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
        serve_demo(ctx.run_dir, ctx.path("all"), m.alias, m, block=ctx.serve)
    finally:
        if m.target == "embedded" and not ctx.serve:
            EmbeddedMilvus.from_config(m).stop()


STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("import the real USPTO design sample", stage_uspto),
    ("generate the synthetic long-tailed corpus", stage_synth),
    ("hold out patents for evaluation", stage_split),
    ("describe every training drawing (LLM on a few patents, Ray Data)", stage_describe),
    ("train the drawing encoder (Ray Train)", stage_train),
    ("evaluate on held-out patents", stage_eval),
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
                                        help="The shared folder with the real USPTO sample."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="End by serving the demo index until Ctrl-C."),
        patents: int = typer.Option(240, help="Synthetic patents to generate."),
        llm_patents: int = typer.Option(4, help="Patents described by the LLM (the rest: metadata-only text)."),
        train_epochs: int = typer.Option(40, help="Training epochs (one epoch: every training drawing once)."),
    ) -> None:
        """Run the end-to-end demo on embedded defaults."""
        from priorsight.cli import settings_of

        settings = settings_of(ctx)
        run_demo(DemoContext(out=out, shared_dir=shared_dir, storage=Storage(settings.storage), serve=serve,
                             settings=settings, patents=patents, llm_patents=llm_patents,
                             train_epochs=train_epochs))
