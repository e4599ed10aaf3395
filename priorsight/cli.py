"""The ``priorsight`` command line.

Each stage keeps its command in its own module; this file only builds the command tree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cluster.ray_env import MODEL_COMMANDS, ensure_cpu_env
from priorsight.config import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="PriorSight: image-based prior-art search over patent drawings.")
corpus_app = typer.Typer(no_args_is_help=True, help="Import, generate and inspect drawing corpora.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (write docs/benchmarks/*.json and docs/benchmarks.md).")
app.add_typer(corpus_app, name="corpus")
app.add_typer(bench_app, name="bench")


class State:
    """What the top-level options decided (passed down through typer's context)."""

    def __init__(self, config: Path | None, overrides: dict):
        self._config = config
        self._overrides = overrides
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config, self._overrides)
        return self._settings


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", envvar="PRIORSIGHT_CONFIG",
                                          help="YAML config file (default: ./priorsight.yaml if present)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = State(config, {})
    if ctx.invoked_subcommand in MODEL_COMMANDS:
        ensure_cpu_env()


def settings_of(ctx: typer.Context) -> Settings:
    state = ctx.find_root().obj
    return state.settings if isinstance(state, State) else load_settings()


def fail(message: str, code: int = 2) -> None:
    """Print a clear error and exit (no traceback for expected failures)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


# -- commands registered by stages (one import + one line each) ---------------------------
from cluster import commands as _cluster_commands  # noqa: E402
from cluster import kuberay as _deploy_commands  # noqa: E402
from loadtests import commands as _loadtest_commands  # noqa: E402
from priorsight import demo as _demo  # noqa: E402
from priorsight import milvus_commands as _milvus_commands  # noqa: E402
from priorsight.corpus import commands as _corpus_commands  # noqa: E402
from priorsight.corpus.synth import commands as _synth_commands  # noqa: E402
from priorsight.describe import commands as _describe_commands  # noqa: E402
from services import commands as _serve_commands  # noqa: E402
from training import commands as _training_commands  # noqa: E402

_corpus_commands.register(corpus_app)
_synth_commands.register(corpus_app, bench_app)
_describe_commands.register(app, bench_app)
_training_commands.register(app, corpus_app, bench_app)
_cluster_commands.register(app, bench_app)
_milvus_commands.register(app, bench_app)
_serve_commands.register(app, bench_app)
_loadtest_commands.register(app, bench_app)
_deploy_commands.register(app)
_demo.register(app)
