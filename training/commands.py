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


def encoder_from(checkpoint: str | None, baseline: bool, storage, text: bool = True):
    """The :class:`~training.encoder.Encoder` to evaluate: the trained towers of ``checkpoint``
    (default: the demo's model), or the untrained baseline with ``baseline``."""
    from training.encoder import Encoder

    if baseline:
        return Encoder.baseline(text=text)
    return Encoder.from_checkpoint(checkpoint or DEFAULT_MODEL_DIR, storage, text=text)


def register(app: typer.Typer, corpus_app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        config: Path | None = typer.Argument(None, help="Training config YAML (fields of TrainConfig)."),
        corpus: str | None = typer.Option(None, help="Corpus directory or manifest, or a USPTO, table, DeepPatent2 or "
                                                      "image folder (imported once into data/corpora/)."),
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
        from training.evaluate import imported_corpus_dir, resolve_corpus
        from training.train import train

        try:
            if corpus is not None:
                corpus = resolve_corpus(corpus, workdir=imported_corpus_dir(corpus), reuse=True)
            cfg = load_train_config(config, {"corpus": corpus, "descriptions": descriptions, "run_dir": run_dir,
                                             "epochs": epochs, "num_workers": workers,
                                             "cpus_per_worker": cpus_per_worker,
                                             "max_steps_per_epoch": max_steps_per_epoch,
                                             "storage": settings_of(ctx).storage.model_dump(),
                                             **{k: v for k, v in (("class_scheme", settings_of(ctx).corpus.class_scheme),
                                                                  ("class_level", settings_of(ctx).corpus.class_level))
                                                if v != "auto"}})
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
            return
        with init_ray(address):
            metrics = train(cfg)
        typer.echo(json.dumps({k: v for k, v in metrics.items()}, indent=2, default=str))

    @app.command("eval")
    def eval_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="A corpus dir/manifest, or a USPTO, table, DeepPatent2 or image folder."),
        checkpoint: str | None = typer.Option(None, help=f"Run dir or .pt (default: {DEFAULT_MODEL_DIR})."),
        baseline: bool = typer.Option(False, help="Evaluate the untrained baseline (pretrained backbone, raw MiniLM)."),
        query_text: str | None = typer.Option(None, help="Words each query brings: a drawing field, e.g. 'title' "
                                                          "(adds the image+text and text query modes)."),
        mode: list[str] = typer.Option([], "--mode", help="Query modes to report: image, image+text, text "
                                                          "(default: image, and all three with --query-text)."),
        class_scheme: str | None = typer.Option(None, help="locarno|uspc[-main|-subclass] (default: corpus.class_scheme; "
                                                           "auto: the scheme that "
                                                      "labels more drawings, at its default level)."),
        image_weight: float | None = typer.Option(None, help="Weight of image similarity in fused queries."),
        text_weight: float | None = typer.Option(None, help="Weight of words similarity in fused queries."),
        classes_weight: float | None = typer.Option(None, help="Weight of the class posteriors' similarity "
                                                                "(0: the drawing's image similarity alone)."),
        instance_weight: float | None = typer.Option(None, help="Weight of the pretrained backbone's instance "
                                                                 "similarity (near-duplicates, other views)."),
        calibrate: bool = typer.Option(False, help="First find the words weight that gives the best image+text "
                                                   "class mAP on this corpus (a validation split), then use it."),
        compare: bool = typer.Option(True, "--compare/--no-compare",
                                     help="Also evaluate the untrained baseline on the same queries (per-class flags)."),
        k: int = typer.Option(10),
        per_class: int = typer.Option(12, help="Classes to print, worst first (all of them go to --json)."),
        out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
    ) -> None:
        """mAP, Recall@k, hit@k, MRR@k (same patent; same class), per head/medium/tail bucket and per class,
        with bootstrap intervals; query modes image, image+text and text."""
        from priorsight.cli import fail, settings_of
        from priorsight.storage import NotFound, Storage, StorageError
        from training.evaluate import calibrate_weights, evaluate_corpus, format_results

        settings = settings_of(ctx)
        storage = Storage(settings.storage)
        if class_scheme is None:
            c = settings.corpus
            class_scheme = "auto" if c.class_scheme == "auto" else \
                f"{c.class_scheme}{'' if c.class_level == 'auto' else '-' + c.class_level}"
        weights = settings.query_weights.model_copy(
            update={k_: v for k_, v in (("image", image_weight), ("text", text_weight), ("classes", classes_weight),
                                        ("instance", instance_weight)) if v is not None})
        try:
            encoder = encoder_from(checkpoint, baseline, storage, text=bool(query_text) or not baseline)
            base = None if baseline or not compare else encoder_from(None, True, storage, text=bool(query_text))
            calibration = None
            if calibrate:
                if not query_text:
                    fail("--calibrate needs --query-text (the words whose weight it calibrates)")
                    return
                calibration = calibrate_weights(corpus, encoder, query_text, class_scheme, storage)
                weights = weights.model_validate(calibration["best"])
                best = max(calibration["curve"], key=lambda c: c["mean"])
                typer.echo(f"calibrated weights: image 1, words {weights.text:g}, classes {weights.classes:g} "
                           f"(class mAP image {best['image']:.3f}, image+text {best['image+text']:.3f}, text "
                           f"{best['text']:.3f}; {len(calibration['curve'])} settings tried)\nto use them: "
                           f"query_weights: {{text: {weights.text:g}, classes: {weights.classes:g}}} in priorsight.yaml")
            result = evaluate_corpus(corpus, encoder, k=k, storage=storage, scheme=class_scheme, query_text=query_text,
                                     modes=mode or None, weights=weights, baseline=base,
                                     train_counts=encoder.info.get("class_counts") or None)
        except (FileNotFoundError, NotFound, StorageError) as exc:
            fail(f"{exc} (train a model with `make demo` or `priorsight train`, or pass --checkpoint / --baseline)")
            return
        except ValueError as exc:
            fail(str(exc))
            return
        result["model"] = f"baseline:{encoder.name.split(':', 1)[-1]}" if baseline else (checkpoint or DEFAULT_MODEL_DIR)
        if calibration is not None:
            result["calibration"] = calibration
        typer.echo(f"{result['drawings']} drawings, {result['patents']} patents; model {result['model']}")
        typer.echo(format_results(result, k, per_class))
        if out is not None:
            out.write_text(json.dumps(result, indent=2, default=str))

    @corpus_app.command("split")
    def split_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument(..., help="Corpus directory or manifest."),
        out: str = typer.Option(..., "--out", "-o"),
        test_fraction: float = typer.Option(0.2),
        seed: int = typer.Option(0),
        stratify: str | None = typer.Option(None, help="Hold out the same share of every class: a class scheme, "
                                                       "e.g. uspc-main or locarno-subclass (default: not stratified)."),
    ) -> None:
        """Split by patent into OUT/train and OUT/test (no patent on both sides)."""
        from priorsight.classes import ClassScheme
        from priorsight.cli import fail, settings_of
        from priorsight.corpus.split import split_corpus
        from priorsight.storage import NotFound, Storage

        try:
            strata = ClassScheme.parse(stratify) if stratify else None
            counts = split_corpus(corpus, out, test_fraction, seed, Storage(settings_of(ctx).storage), stratify=strata)
        except (NotFound, ValueError, KeyError) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(counts))

    @bench_app.command("retrieval")
    def bench_retrieval_cmd(
        ctx: typer.Context,
        corpus: str = typer.Argument("../shared/data/uspto-design-2007-first-figures",
                                     help="A real long-tailed corpus: its validation split is what every figure measures."),
        workdir: Path = typer.Option(Path("data/bench-retrieval"), help="Splits, descriptions and runs go here."),
        holdout: str | None = typer.Option("../shared/data/uspto-design-2021", envvar="PRIORSIGHT_USPTO_SAMPLE",
                                           help="A second real corpus, halved: half trains, half is a second "
                                                "held-out gallery ('' to skip)."),
        model: str = typer.Option(DEFAULT_MODEL, help="Model config (shipped name or JSON path)."),
        sweep: list[str] = typer.Option([], "--sweep", help="Also train (d) on these model configs (repeatable)."),
        variant: list[str] = typer.Option([], "--variant", help="Variants to run (default: all; repeatable)."),
        epochs: int = typer.Option(20),
        max_steps_per_epoch: int | None = typer.Option(None),
        batch_size: int = typer.Option(64),
        feature_views: int = typer.Option(8, help="Cached views per drawing (plain + augmented)."),
        seed: int = typer.Option(0, help="Split seed and first training seed."),
        seeds: int = typer.Option(3, min=1, help="Training seeds per variant; the table holds their mean and sd."),
        llm_cache: str | None = typer.Option(None, help="Describe cache with the LLM descriptions "
                                                         "(`priorsight describe` on the corpus first; else generated)."),
        image_weight: float | None = typer.Option(None), text_weight: float | None = typer.Option(None),
        classes_weight: float | None = typer.Option(None),
        synthetic: int = typer.Option(0, help="Also train (d) with this many synthetic patents added (d_synthetic)."),
        record_as: str = typer.Option("retrieval", help="Benchmark record name (docs/benchmarks/NAME.json)."),
    ) -> None:
        """Ablation on a real validation split: (a) untrained, (b) image-only class contrastive, (c) + image-text,
        (d) + distribution-aware, (d) minus each part, (d) with templated text or titles; --sweep for backbones."""
        from priorsight.bench import record
        from priorsight.cli import fail, settings_of
        from priorsight.storage import Storage
        from training.bench_retrieval import RetrievalBenchConfig, markdown, parse_variants, run_bench

        settings = settings_of(ctx)
        weights = settings.query_weights.model_copy(
            update={k_: v for k_, v in (("image", image_weight), ("text", text_weight), ("classes", classes_weight))
                    if v is not None})
        try:
            variants = parse_variants(variant) if variant else None
        except ValueError as exc:
            fail(str(exc))
            return
        use_holdout = holdout if holdout and Path(holdout).exists() else None
        cfg = RetrievalBenchConfig(corpus=corpus, workdir=str(workdir), holdout=use_holdout, model=model,
                                   models=list(sweep), epochs=epochs, max_steps_per_epoch=max_steps_per_epoch,
                                   batch_size=batch_size, feature_views=feature_views, seed=seed, seeds=seeds,
                                   llm_cache=llm_cache, weights=weights, synthetic=synthetic)
        if variants is not None:
            cfg.variants = variants
        try:
            r = run_bench(cfg, Storage(settings.storage))
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
            return
        md = markdown(r)
        command = (f"priorsight bench retrieval {corpus} --model {model} --epochs {epochs} --batch-size {batch_size} "
                   f"--seed {seed} --seeds {seeds}" + "".join(f" --variant {v}" for v in variant)
                   + "".join(f" --sweep {m}" for m in sweep) + (f" --synthetic {synthetic}" if synthetic else "")
                   + (f" --max-steps-per-epoch {max_steps_per_epoch}" if max_steps_per_epoch else ""))
        record(record_as, r, md, command)
        typer.echo(md)
