"""``priorsight corpus synth``, ``corpus synth-sheet`` and ``bench synth-realism`` /
``bench synth-speed``: thin command-line edges over the synthetic corpus generator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _command_line() -> str:
    return "priorsight " + " ".join(sys.argv[1:])


def register(corpus_app: typer.Typer, bench_app: typer.Typer) -> None:
    @corpus_app.command("synth")
    def synth(
        ctx: typer.Context,
        patents: int = typer.Option(..., "--patents", "-n", min=1, help="Number of synthetic design patents."),
        seed: int = typer.Option(0, "--seed", "-s", min=0, help="Corpus seed (patent i is a function of seed and i)."),
        out: str = typer.Option(..., "--out", "-o", help="Corpus directory (local or s3://) to write."),
        image_size: int = typer.Option(256, "--image-size", help="Long side of the drawings in pixels."),
        zipf: float = typer.Option(1.0, "--zipf", help="Class frequency exponent: P(rank r) ~ 1/r^zipf (0: uniform)."),
        supersample: float = typer.Option(1.25, "--supersample", help="Internal resolution factor (antialiasing)."),
        workers: int = typer.Option(1, "--workers", "-w", min=1, help="Local worker processes."),
        use_ray: bool = typer.Option(False, "--ray", help="Generate with Ray Data (local Ray or --address)."),
        address: str | None = typer.Option(None, "--address", help="Ray cluster to join ('auto', 'ray://host:10001')."),
        task_cpus: float = typer.Option(0.5, "--task-cpus", help="CPUs reserved per Ray task (fractional)."),
        catalog: Path | None = typer.Option(None, "--catalog", help="Object-type catalog YAML (default: packaged)."),
    ) -> None:
        """Generate a synthetic corpus of design-patent drawings (PNG + Parquet manifest)."""
        from pydantic import ValidationError

        from priorsight.cli import fail, settings_of
        from priorsight.corpus.synth.designs import CatalogError
        from priorsight.corpus.synth.generate import SynthConfig, generate_corpus, generate_corpus_ray
        from priorsight.storage import Storage, StorageError

        storage = Storage(settings_of(ctx).storage)
        options = dict(zipf=zipf, supersample=supersample, catalog=str(catalog) if catalog else None)
        try:
            if use_ray:
                import ray

                config = SynthConfig(patents=patents, seed=seed, image_size=image_size, **options)
                if not ray.is_initialized():
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                summary = generate_corpus_ray(out, config, num_cpus=task_cpus, storage=storage)
            else:
                summary = generate_corpus(out, patents, seed, image_size, workers=workers, storage=storage, **options)
        except ValidationError as exc:
            fail(f"invalid settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
            return
        except (CatalogError, StorageError, OSError) as exc:
            fail(str(exc))
            return
        typer.echo(f"{summary.drawings} drawings of {summary.patents} patents ({len(summary.classes)} Locarno classes, "
                   f"{summary.object_types} object types) in {summary.seconds:.1f} s -> {out}")

    @corpus_app.command("synth-sheet")
    def synth_sheet(
        out: Path = typer.Option(Path("docs/synthetic-contact-sheet.png"), "--out", "-o", help="PNG to write."),
        seed: int = typer.Option(0, "--seed", "-s", min=0),
        patents: int = typer.Option(12, "--patents", min=1, help="Patents on the sheet (distinct object types)."),
        per_patent: int = typer.Option(4, "--per-patent", min=1, help="Drawings per patent (FIG. 1 first)."),
        cell: int = typer.Option(256, "--cell", min=64, help="Cell size in pixels."),
    ) -> None:
        """A contact sheet of synthetic drawings (several views of each patent, with captions)."""
        from priorsight.corpus.synth.generate import contact_sheet

        img = contact_sheet(patents, per_patent, seed, cell)
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out, optimize=True)
        typer.echo(f"{patents * per_patent} drawings -> {out} ({img.width}x{img.height})")

    @bench_app.command("synth-realism")
    def bench_realism(
        seeds: int = typer.Option(10, "--seeds", min=1, help="Synthetic galleries shaped like the real sample."),
        sizes: str = typer.Option("500,5000", "--sizes", help="Larger galleries (patents), comma-separated; '' for none."),
        max_queries: int = typer.Option(5000, "--max-queries", min=100, help="Query subsample for large galleries."),
        real: Path = typer.Option(Path("../shared/data/uspto-design-2021"), "--real", help="Real USPTO sample."),
        workers: int = typer.Option(2, "--workers", min=1, help="Rendering processes."),
        docs: Path = typer.Option(Path("docs"), "--docs", help="Where benchmarks.md lives."),
    ) -> None:
        """Retrieval difficulty of synthetic vs real drawings (untrained EfficientNet-Lite0)."""
        from priorsight import bench
        from priorsight.corpus.synth.bench import realism_markdown, round_floats, run_realism

        size_list = [int(x) for x in sizes.split(",") if x.strip()]
        results = round_floats(run_realism(seeds, size_list, max_queries, real, workers))
        path = bench.record("synth-realism", results, realism_markdown(results), _command_line(), docs)
        typer.echo(json.dumps(results["checks"], indent=2))
        typer.echo(f"-> {path}")

    @bench_app.command("synth-speed")
    def bench_speed(
        patents: int = typer.Option(40, "--patents", min=1, help="Patents per setting."),
        image_size: int = typer.Option(256, "--image-size"),
        supersamples: str = typer.Option("1,1.25,1.5,2", "--supersamples", help="Supersampling factors to time."),
        repeats: int = typer.Option(3, "--repeats", min=1, help="Interleaved runs per setting (best is kept)."),
        docs: Path = typer.Option(Path("docs"), "--docs", help="Where benchmarks.md lives."),
    ) -> None:
        """Drawings per second per core of the synthetic generator."""
        from priorsight import bench
        from priorsight.corpus.synth.bench import round_floats, run_speed, speed_markdown

        results = round_floats(run_speed(patents, image_size, [float(x) for x in supersamples.split(",")], repeats=repeats))
        path = bench.record("synth-speed", results, speed_markdown(results), _command_line(), docs)
        for r in results["rows"]:
            typer.echo(f"supersample {r['supersample']}: {r['drawings_per_s_per_core']:.1f} drawings/s per core")
        typer.echo(f"-> {path}")
