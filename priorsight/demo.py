"""``priorsight demo``: the whole pipeline on embedded defaults, one stage after another.

Stages so far: import the shared real USPTO sample (when ``../shared`` is present) and print
its statistics. Later stages (synthetic corpus, descriptions, training, index, serving) append
themselves to :data:`STAGES`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import typer

from priorsight.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class DemoContext:
    out: Path
    shared_dir: Path
    storage: Storage
    serve: bool

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
    write_corpus(read_uspto(ctx.uspto_src, str(ctx.uspto_corpus / "images"), ctx.storage), out, ctx.storage,
                 "import-uspto")
    typer.echo(format_stats(corpus_stats(out, ctx.storage)))


STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("import the real USPTO design sample", stage_uspto),
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
    ) -> None:
        """Run the end-to-end demo on embedded defaults."""
        from priorsight.cli import settings_of

        settings = settings_of(ctx)
        run_demo(DemoContext(out=out, shared_dir=shared_dir, storage=Storage(settings.storage), serve=serve))
