"""Generate synthetic design patents: the pure per-patent function, the local corpus writer
(optionally over several processes) and a Ray Data source for clusters.

Every patent is a pure function of ``(config, index)``: its random generator is seeded with
``(config.seed, index)``, so patents can be generated in any order, on any machine, and a
corpus of N patents is a prefix of a corpus of M > N patents with the same settings.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from priorsight.corpus.synth.designs import Catalog, load_catalog, make_design
from priorsight.corpus.synth.geometry import Design
from priorsight.corpus.synth.patents import (
    BROKEN_LINES,
    MAX_INDEX,
    PatentPlan,
    drawing_style,
    grant_date,
    patent_id,
    pick_object_type,
    plan_figures,
)
from priorsight.corpus.synth.render import render_view
from priorsight.records import Drawing

log = logging.getLogger(__name__)

SOURCE = "synthetic"
STAGE = "synth"


class SynthConfig(BaseModel):
    """Settings of a synthetic corpus (all generation is a function of these and the index)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    patents: int = Field(default=100, ge=1, le=MAX_INDEX)
    seed: int = Field(default=0, ge=0)
    image_size: int = Field(default=256, ge=64, le=4096)
    #: class frequencies ~ 1 / rank**zipf (0 = uniform); 1.0 gives a few head classes and
    #: many tail classes, like DeepPatent2
    zipf: float = Field(default=1.0, ge=0.0, le=4.0)
    supersample: float = Field(default=1.25, ge=1.0, le=4.0)  # internal resolution factor (antialiasing)
    min_views: int = Field(default=4, ge=2, le=8)
    max_views: int = Field(default=8, ge=2, le=8)
    p_second_perspective: float = Field(default=0.35, ge=0, le=1)
    p_exploded: float = Field(default=0.3, ge=0, le=1)
    p_detail: float = Field(default=0.15, ge=0, le=1)
    catalog: str | None = None  # object_types.yaml path (default: the packaged one)
    png_compress_level: int = Field(default=3, ge=0, le=9)

    @model_validator(mode="after")
    def _views(self) -> SynthConfig:
        if self.min_views > self.max_views:
            raise ValueError(f"min_views ({self.min_views}) must be <= max_views ({self.max_views})")
        return self


@dataclass(frozen=True)
class SyntheticDrawing:
    """A rendered drawing and its manifest record (``image_uri`` already set)."""

    drawing: Drawing
    png: bytes


def plan_patent(config: SynthConfig, index: int, catalog: Catalog | None = None,
                locarno: str | None = None, min_figures: int = 0) -> tuple[PatentPlan, Design]:
    """The design and the metadata of patent ``index`` (pure function of config and index).

    ``locarno`` forces the class (the object type is then drawn among that class' types);
    ``min_figures`` adds perspective views from further angles up to that many figures."""
    catalog = catalog or load_catalog(config.catalog)
    rng = np.random.default_rng([config.seed, index])
    if locarno is None:
        obj = pick_object_type(rng, catalog, catalog.class_probabilities(config.zipf))
    else:
        types = catalog.types_of(locarno)
        if not types:
            raise ValueError(f"no object type of class {locarno!r} in the catalog")
        obj = types[int(rng.integers(len(types)))]
    design = make_design(obj, rng)
    style = drawing_style(rng, config.supersample)
    args = (obj, obj.explode and design.explodable, design.detail_anchor, config.min_views, config.max_views,
            config.p_second_perspective, config.p_exploded, config.p_detail)
    state = rng.bit_generator.state
    figures = plan_figures(rng, *args)
    if len(figures) < min_figures:  # same choices, plus extra views
        rng.bit_generator.state = state
        figures = plan_figures(rng, *args, extra_views=min_figures - len(figures))
    unclaimed = any(not p.claimed for p in design.parts)
    plan = PatentPlan(
        patent_id=patent_id(config.seed, index),
        index=index,
        object_type=obj,
        title=obj.title,
        grant_date=grant_date(rng),
        figures=tuple(figures),
        style=style,
        broken_lines_note=BROKEN_LINES.format(obj=obj.name) if unclaimed else None,
    )
    return plan, design


def generate_patent(config: SynthConfig, index: int, images_root: str = "images",
                    catalog: Catalog | None = None, locarno: str | None = None,
                    min_figures: int = 0) -> list[SyntheticDrawing]:
    """Render all drawings of patent ``index`` as PNG bytes with their manifest records.

    ``image_uri`` is ``{images_root}/{patent_id}/{drawing_id}.png``; nothing is written.
    """
    from priorsight.storage import join

    plan, design = plan_patent(config, index, catalog, locarno, min_figures)
    out = []
    for fig in plan.figures:
        img = render_view(design, fig.spec, plan.style, config.image_size, label=f"FIG. {fig.number}")
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=config.png_compress_level)
        drawing_id = f"{plan.patent_id}-D{fig.number:05d}"
        out.append(SyntheticDrawing(Drawing(
            drawing_id=drawing_id,
            patent_id=plan.patent_id,
            image_uri=join(images_root, plan.patent_id, f"{drawing_id}.png"),
            source=SOURCE,
            figure_number=fig.number,
            figure_label=f"FIG. {fig.number}",
            view=fig.view,
            view_text=fig.view_text,
            object_name=plan.object_type.name,
            locarno_class=plan.object_type.locarno,
            grant_date=plan.grant_date,
            title=plan.title,
            figure_description=fig.description,
            width=img.width,
            height=img.height,
        ), buf.getvalue()))
    return out


# -- local corpus writer ------------------------------------------------------------------------

@dataclass
class SynthSummary:
    """What :func:`generate_corpus` wrote."""

    out_dir: str
    patents: int
    drawings: int
    seconds: float
    classes: dict[str, int] = field(default_factory=dict)  # drawings per Locarno class
    object_types: int = 0

    @property
    def drawings_per_second(self) -> float:
        return self.drawings / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "patents": self.patents, "drawings": self.drawings,
                "seconds": round(self.seconds, 3), "drawings_per_second": round(self.drawings_per_second, 2),
                "classes": dict(sorted(self.classes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "object_types": self.object_types}


def _patent_chunk(args: tuple[dict, list[int], str]) -> list[SyntheticDrawing]:
    cfg, indices, images_root = args
    config = SynthConfig(**cfg)
    catalog = load_catalog(config.catalog)
    return [d for i in indices for d in generate_patent(config, i, images_root, catalog)]


def iter_patents(config: SynthConfig, images_root: str, workers: int = 1, start: int = 0,
                 chunk: int = 8) -> Iterator[list[SyntheticDrawing]]:
    """Patents ``start .. config.patents-1`` in order, each as its list of drawings, generated in
    ``workers`` processes (1 = in this process)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        catalog = load_catalog(config.catalog)
        for i in range(start, config.patents):
            yield generate_patent(config, i, images_root, catalog)
        return
    cfg = config.model_dump()
    jobs = [(cfg, list(range(a, min(a + chunk, config.patents))), images_root)
            for a in range(start, config.patents, chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for drawings in pool.map(_patent_chunk, jobs):
            by_patent: dict[str, list[SyntheticDrawing]] = {}
            for d in drawings:
                by_patent.setdefault(d.drawing.patent_id, []).append(d)
            yield from by_patent.values()


def generate_corpus(out_dir: str, patents: int, seed: int = 0, image_size: int = 256, *,
                    workers: int = 1, storage=None, progress: bool = True, **options: Any) -> SynthSummary:
    """Write a synthetic corpus: ``OUT/images/<patent>/<drawing>.png`` and the Parquet manifest
    ``OUT/manifest.parquet`` (same schema as the importers, ``source="synthetic"``).

    ``options`` are further :class:`SynthConfig` fields (``zipf``, ``supersample``, ...).
    Returns a :class:`SynthSummary`. This is the function ``make demo`` calls.
    """
    from tqdm import tqdm

    from priorsight.manifest import CorpusWriter
    from priorsight.storage import Storage, join

    config = SynthConfig(patents=patents, seed=seed, image_size=image_size, **options)
    storage = storage or Storage()
    images_root = join(out_dir, "images")
    classes: Counter[str] = Counter()
    types: set[str] = set()
    t0 = time.perf_counter()
    n_drawings = 0
    with CorpusWriter(out_dir, storage) as writer, \
            tqdm(total=config.patents, desc="synth", unit=" patents", disable=not progress,
                 dynamic_ncols=True, mininterval=1.0) as bar:
        for drawings in iter_patents(config, images_root, workers):
            for d in drawings:
                storage.write_bytes(d.drawing.image_uri, d.png)
                writer.write(d.drawing)
                classes[d.drawing.locarno_class or ""] += 1
                types.add(d.drawing.object_name)
            n_drawings += len(drawings)
            bar.update(1)
            bar.set_postfix(drawings=n_drawings, refresh=False)
    summary = SynthSummary(out_dir, config.patents, n_drawings, time.perf_counter() - t0, dict(classes), len(types))
    log.info("synthetic corpus: %d patents, %d drawings, %d classes, %d object types in %.1f s -> %s",
             summary.patents, summary.drawings, len(classes), len(types), summary.seconds, out_dir)
    return summary


# -- Ray Data source ------------------------------------------------------------------------------

class _RayPatents:
    """``flat_map`` callable: one patent index -> its drawings' manifest rows. With
    ``images_root`` the PNGs are written to storage by the worker, else rows carry ``png`` bytes."""

    def __init__(self, config: dict, images_root: str | None, storage_config: Any = None):
        self.config = SynthConfig(**config)
        self.images_root = images_root
        self.storage_config = storage_config

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        from priorsight.storage import Storage

        drawings = generate_patent(self.config, int(row["id"]), self.images_root or "images")
        rows = []
        storage = Storage(self.storage_config) if self.images_root else None
        for d in drawings:
            r = d.drawing.to_row()
            if storage is not None:
                storage.write_bytes(d.drawing.image_uri, d.png)
            else:
                r["png"] = d.png
            rows.append(r)
        return rows


def ray_dataset(config: SynthConfig, images_root: str | None = None, num_cpus: float = 0.5,
                blocks: int | None = None, storage_config: Any = None):
    """A Ray Dataset of the corpus' manifest rows: ``ray.data.range(N).flat_map(...)`` over the
    same pure per-patent function. With ``images_root`` the workers write the PNGs there (through
    :class:`~priorsight.storage.Storage` with ``storage_config``), else each row carries its
    ``png`` bytes. Each task asks for ``num_cpus`` (fractional: keeps small clusters from
    starving). Order follows the patent index when the data context preserves order."""
    import ray

    ds = ray.data.range(config.patents, override_num_blocks=blocks or max(1, min(config.patents, 1000)))
    return ds.flat_map(_RayPatents(config.model_dump(), images_root, storage_config), num_cpus=num_cpus)


def generate_corpus_ray(out_dir: str, config: SynthConfig, num_cpus: float = 0.5, storage=None,
                        progress: bool = True) -> SynthSummary:
    """Generate with Ray Data (workers write the PNGs) and stream rows into the manifest."""
    import ray
    from tqdm import tqdm

    from priorsight.manifest import CorpusWriter
    from priorsight.storage import Storage, join

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    storage = storage or Storage()
    t0 = time.perf_counter()
    classes: Counter[str] = Counter()
    types: set[str] = set()
    n = 0
    with CorpusWriter(out_dir, storage) as writer, \
            tqdm(desc="synth (ray)", unit=" drawings", disable=not progress, mininterval=1.0) as bar:
        for row in ray_dataset(config, join(out_dir, "images"), num_cpus, storage_config=storage.config).iter_rows():
            d = Drawing.from_row(row)
            writer.write(d)
            classes[d.locarno_class or ""] += 1
            types.add(d.object_name)
            n += 1
            bar.update(1)
    return SynthSummary(out_dir, config.patents, n, time.perf_counter() - t0, dict(classes), len(types))


def contact_sheet(patents: int = 12, per_patent: int = 4, seed: int = 0, cell: int = 256,
                  config: SynthConfig | None = None):
    """A grid of synthetic drawings: ``per_patent`` views (FIG. 1 first, then spread over the
    rest) of ``patents`` patents of distinct object types, captioned with object, class, view."""
    from PIL import Image, ImageDraw, ImageFont

    config = config or SynthConfig(patents=1, seed=seed, image_size=cell)
    catalog = load_catalog(config.catalog)
    picked: list[list[SyntheticDrawing]] = []
    seen: set[str] = set()
    index = 0
    while len(picked) < patents and index < 100 * patents:
        plan, _ = plan_patent(config, index, catalog)
        if plan.object_type.name not in seen:
            seen.add(plan.object_type.name)
            drawings = generate_patent(config, index, catalog=catalog)
            rest = np.unique(np.linspace(1, len(drawings) - 1, per_patent - 1).round().astype(int))
            picked.append(([drawings[0]] + [drawings[i] for i in rest])[:per_patent])
        index += 1
    cols = per_patent * max(1, 8 // per_patent)
    cells = [d for p in picked for d in p]
    rows = -(-len(cells) // cols)
    caption = 14
    sheet = Image.new("L", (cols * cell, rows * (cell + caption)), 255)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for k, d in enumerate(cells):
        img = Image.open(io.BytesIO(d.png))
        img.thumbnail((cell - 6, cell - 6))
        x, y = (k % cols) * cell, (k // cols) * (cell + caption)
        sheet.paste(img, (x + (cell - img.width) // 2, y + (cell - img.height) // 2))
        text = f"{d.drawing.object_name} ({d.drawing.locarno_class}), {d.drawing.view_text}"
        draw.text((x + 4, y + cell), text[: cell // 6], fill=90, font=font)
        draw.rectangle((x, y, x + cell - 1, y + cell + caption - 1), outline=215)
    return sheet
