"""``priorsight train`` and ``priorsight eval``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from training import DEFAULT_MODEL

#: Where `make demo` leaves its trained model; `priorsight eval` uses it without --checkpoint.
DEFAULT_MODEL_DIR = "data/demo/model"


def load_train_config(path: Path | None, overrides: dict):
    """A TrainConfig from a YAML file, with CLI overrides on top."""
    from training.train import TrainConfig

    data: dict = {}
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"training config not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(data)


def image_encoder_from(checkpoint: str | None, baseline: bool, storage):
    """An encoder ``(B,3,H,W) array -> (B,D)`` and its image size: the trained image tower, or
    the untrained pretrained backbone (average-pooled features) with ``baseline``."""
    import numpy as np
    import torch

    if baseline:
        from training.backbones import extract_features, load_backbone

        model, _ = load_backbone("efficientnet-lite0")
        return (lambda x: extract_features(model, x)), 224
    from training.train import load_trained_model

    model = load_trained_model(checkpoint or DEFAULT_MODEL_DIR, storage)

    @torch.no_grad()
    def encode(x: np.ndarray) -> np.ndarray:
        return model.image(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return encode, model.config.vision.image_size


def register(app: typer.Typer, corpus_app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        config: Path | None = typer.Argument(None, help="Training config YAML (fields of TrainConfig)."),
        corpus: str | None = typer.Option(None, help="Corpus directory or manifest."),
        descriptions: str | None = typer.Option(None, help="Descriptions table from `priorsight describe`."),
        run_dir: str | None = typer.Option(None, help="Checkpoints go here (local or s3://)."),
        epochs: int | None = typer.Option(None),
        workers: int | None = typer.Option(None, help="Ray Train workers (DDP)."),
        cpus_per_worker: float | None = typer.Option(None),
        max_steps_per_epoch: int | None = typer.Option(None),
        address: str | None = typer.Option(None, help="Existing Ray cluster (default: start a local one)."),
    ) -> None:
        """Train the drawing encoder with Ray Train; resumes from the latest checkpoint in RUN_DIR."""
        from cluster.ray_env import init_ray
        from priorsight.cli import fail, settings_of
        from training.train import train

        try:
            cfg = load_train_config(config, {"corpus": corpus, "descriptions": descriptions, "run_dir": run_dir,
                                             "epochs": epochs, "num_workers": workers,
                                             "cpus_per_worker": cpus_per_worker,
                                             "max_steps_per_epoch": max_steps_per_epoch,
                                             "storage": settings_of(ctx).storage.model_dump()})
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
            return
        with init_ray(address):
            metrics = train(cfg)
        typer.echo(json.dumps({k: v for k, v in metrics.items()}, indent=2, default=str))

    @app.command("eval")
    def eval_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="A corpus dir/manifest, or a USPTO, DeepPatent2 or image folder."),
        checkpoint: str | None = typer.Option(None, help=f"Run dir or .pt (default: {DEFAULT_MODEL_DIR})."),
        baseline: bool = typer.Option(False, help="Evaluate the untrained pretrained backbone instead."),
        k: int = typer.Option(10),
        out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
    ) -> None:
        """mAP, Recall@k, hit@k, MRR@k (same patent; same Locarno class), per head/medium/tail bucket."""
        from priorsight.cli import fail, settings_of
        from priorsight.storage import NotFound, Storage, StorageError
        from training.evaluate import evaluate_corpus, format_results

        storage = Storage(settings_of(ctx).storage)
        try:
            encoder, size = image_encoder_from(checkpoint, baseline, storage)
            result = evaluate_corpus(corpus, encoder, image_size=size, k=k, storage=storage)
        except (FileNotFoundError, NotFound, StorageError) as exc:
            fail(f"{exc} (train a model with `make demo` or `priorsight train`, or pass --checkpoint / --baseline)")
            return
        result["model"] = "baseline:efficientnet-lite0" if baseline else (checkpoint or DEFAULT_MODEL_DIR)
        typer.echo(f"{result['drawings']} drawings, {result['patents']} patents; model {result['model']}")
        typer.echo(format_results(result, k))
        if out is not None:
            out.write_text(json.dumps(result, indent=2, default=str))

    @corpus_app.command("split")
    def split_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="Corpus directory or manifest."),
        out: str = typer.Option(..., "--out", "-o"),
        test_fraction: float = typer.Option(0.2),
        seed: int = typer.Option(0),
    ) -> None:
        """Split by patent into OUT/train and OUT/test (no patent on both sides)."""
        from priorsight.cli import fail, settings_of
        from priorsight.corpus.split import split_corpus
        from priorsight.storage import NotFound, Storage

        try:
            counts = split_corpus(corpus, out, test_fraction, seed, Storage(settings_of(ctx).storage))
        except (NotFound, ValueError) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(counts))

    @bench_app.command("retrieval")
    def bench_retrieval_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="A long-tailed corpus, e.g. from `priorsight corpus synth`."),
        workdir: Path = typer.Option(Path("data/bench-retrieval"), help="Splits, descriptions and runs go here."),
        uspto: str | None = typer.Option("../shared/data/uspto-design-2021", envvar="PRIORSIGHT_USPTO_SAMPLE",
                                            help="Real sample to evaluate on ('' to skip)."),
        model: str = typer.Option(DEFAULT_MODEL, help="Model config (shipped name or JSON path)."),
        epochs: int = typer.Option(40),
        max_steps_per_epoch: int | None = typer.Option(None),
        batch_size: int = typer.Option(64),
        seed: int = typer.Option(0, help="Split seed and first training seed."),
        seeds: int = typer.Option(1, min=1, help="Training seeds per variant; the table holds their mean."),
    ) -> None:
        """Ablation on held-out patents: (a) pretrained, (b) image-only, (c) + image-text, (d) full method."""
        from priorsight.bench import record
        from priorsight.cli import settings_of
        from priorsight.storage import Storage
        from training.bench_retrieval import RetrievalBenchConfig, markdown, run_bench

        use_uspto = uspto if uspto and Path(uspto).exists() else None
        cfg = RetrievalBenchConfig(corpus=corpus, workdir=str(workdir), uspto=use_uspto, model=model, epochs=epochs,
                                   max_steps_per_epoch=max_steps_per_epoch, batch_size=batch_size, seed=seed,
                                   seeds=seeds)
        r = run_bench(cfg, Storage(settings_of(ctx).storage))
        md = markdown(r)
        command = (f"priorsight bench retrieval {corpus} --model {model} --epochs {epochs} --batch-size {batch_size} "
                   f"--seed {seed} --seeds {seeds}" + (f" --max-steps-per-epoch {max_steps_per_epoch}" if max_steps_per_epoch else ""))
        record("retrieval", r, md, command)
        typer.echo(md)
