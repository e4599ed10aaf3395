"""USPTO-style metadata of synthetic design patents: ids, titles, grant dates, Locarno classes,
the figure list (which views, in which order) and figure descriptions.

Everything here is a pure function of ``(seed, index)`` through a ``numpy`` generator.
Figure sentences follow the USPTO idiom ("FIG. 1 is a perspective view of a cup showing my new
design;" / "FIG. 2 is a front elevational view thereof;") so that the figure parser
(:func:`priorsight.corpus.figures.parse_figure_sentence`) reads back the intended view.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from priorsight.corpus.synth.designs import Catalog, ObjectType
from priorsight.corpus.synth.render import DrawingStyle, ViewSpec

PATENT_PREFIX = "SYN-D"
MAX_INDEX = 10**9  # patent ids hold the index in 9 digits
_ID_RE = re.compile(r"^SYN-D(\d+)(\d{9})$")

#: first and last grant dates (US design patents are granted on Tuesdays)
FIRST_GRANT = dt.date(2007, 1, 2)
LAST_GRANT = dt.date(2024, 12, 31)

ORTHO_ORDER = ("front", "rear", "left", "right", "top", "bottom")

#: ways to write each view in a figure sentence (the parser maps all of them back)
VIEW_WORDS: dict[str, tuple[str, ...]] = {
    "front": ("front", "front elevational", "front elevation", "front side"),
    "rear": ("rear", "rear elevational", "back", "rear elevation", "back side"),
    "left": ("left side", "left side elevational", "left", "left elevation"),
    "right": ("right side", "right side elevational", "right", "right elevation"),
    "top": ("top", "top plan", "plan"),
    "bottom": ("bottom", "bottom plan", "underside"),
    "perspective": ("perspective", "front perspective", "front right perspective", "top perspective",
                    "front left perspective", "isometric"),
    "perspective2": ("rear perspective", "second perspective", "rear left perspective", "bottom perspective"),
    "exploded": ("exploded perspective", "exploded isometric"),
    "detail": ("enlarged detail", "enlarged partial", "partial enlarged detail"),
    "extra": ("another perspective", "further perspective", "perspective", "additional perspective"),
}

FIRST_SENTENCE = (
    "FIG. {n} is {a_words} view of {a_obj} showing my new design;",
    "FIG. {n} is {a_words} view of {a_obj} showing our new design;",
    "FIG. {n} is {a_words} view of {a_obj} according to the present design;",
    "FIG. {n} is {a_words} view of {a_obj} in accordance with the claimed design;",
)
OTHER_SENTENCE = {
    "plain": "FIG. {n} is {a_words} view thereof;",
    "of": "FIG. {n} is {a_words} view of the {obj} of FIG. 1;",
    "exploded": "FIG. {n} is {a_words} view of the {obj} of FIG. 1, the parts shown separated;",
    "detail": "FIG. {n} is {a_words} view of a portion of the {obj} shown in FIG. 1;",
}
BROKEN_LINES = ("The broken lines shown in the drawings depict portions of the {obj} that form no part of the "
                "claimed design.")


class PatentIdError(ValueError):
    """A synthetic patent id is malformed or out of range."""


def patent_id(seed: int, index: int) -> str:
    """``SYN-D`` + seed + the index in 9 digits: never a real USPTO number, unique per (seed, index)."""
    if seed < 0 or not 0 <= index < MAX_INDEX:
        raise PatentIdError(f"need seed >= 0 and 0 <= index < {MAX_INDEX}, got seed={seed}, index={index}")
    return f"{PATENT_PREFIX}{seed}{index:09d}"


def parse_patent_id(pid: str) -> tuple[int, int]:
    """Inverse of :func:`patent_id`: ``(seed, index)``."""
    m = _ID_RE.match(pid)
    if not m:
        raise PatentIdError(f"not a synthetic patent id: {pid!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class FigurePlan:
    number: int
    view: str  # normalised view (records.VIEWS): what the parser reads from the sentence
    kind: str  # "perspective", "perspective2", "exploded", "detail" or an orthographic view
    view_text: str  # viewpoint words as written
    description: str  # the figure sentence
    spec: ViewSpec


@dataclass(frozen=True)
class PatentPlan:
    patent_id: str
    index: int
    object_type: ObjectType
    title: str
    grant_date: str
    figures: tuple[FigurePlan, ...]
    style: DrawingStyle
    broken_lines_note: str | None


def grant_date(rng: np.random.Generator) -> str:
    weeks = (LAST_GRANT - FIRST_GRANT).days // 7
    return (FIRST_GRANT + dt.timedelta(weeks=int(rng.integers(0, weeks + 1)))).isoformat()


def pick_object_type(rng: np.random.Generator, catalog: Catalog, class_probs: np.ndarray) -> ObjectType:
    cls = catalog.classes[int(rng.choice(len(catalog.classes), p=class_probs))]
    types = catalog.types_of(cls.code)
    return types[int(rng.integers(len(types)))]


def drawing_style(rng: np.random.Generator, supersample: float) -> DrawingStyle:
    """The patent's drafting style: drafters differ in line weight, ink, shading and layout, and
    all figures of one patent share it."""
    return DrawingStyle(
        line_width=float(np.exp(rng.uniform(np.log(0.45), np.log(2.4)))),
        ink=float(rng.uniform(0.8, 2.2)),
        crease_deg=float(rng.uniform(28, 40)),
        shading=int(rng.choice([0, 2, 3, 5, 8], p=[0.2, 0.2, 0.2, 0.2, 0.2])),
        shading_spread=float(rng.uniform(0.3, 0.8)),
        shade_strokes=bool(rng.random() < 0.6),
        outline=1.0 if rng.random() < 0.6 else float(rng.uniform(1.4, 2.5)),
        flat_hatch=0.0 if rng.random() < 0.65 else float(rng.uniform(3.0, 9.0)),
        hatch_angle=1 if rng.random() < 0.5 else -1,
        dash=float(rng.uniform(2.5, 5.0)),
        margin=float(rng.uniform(0.04, 0.14)),
        label=bool(rng.random() < 0.92),
        label_size=float(rng.uniform(0.035, 0.07)),
        label_gap=float(rng.uniform(0.0, 0.3)) ** 1.3,
        label_above=bool(rng.random() < 0.1),
        supersample=supersample,
    )


def _a(phrase: str) -> str:
    """The phrase with its indefinite article: "a front", "an isometric"."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def plan_figures(rng: np.random.Generator, obj: ObjectType, explodable: bool,
                 detail_target: tuple[float, float, float] | None,
                 min_views: int = 4, max_views: int = 8, p_second_perspective: float = 0.35,
                 p_exploded: float = 0.3, p_detail: float = 0.15, extra_views: int = 0) -> list[FigurePlan]:
    """Which views the patent shows, in USPTO order, with their figure sentences.

    ``extra_views`` adds further perspective views from other angles (patents with many
    figures show the design from many sides)."""
    if not 2 <= min_views <= max_views <= 8:
        raise ValueError(f"need 2 <= min_views <= max_views <= 8, got {min_views}, {max_views}")
    n_std = int(rng.integers(min_views, max_views + 1))
    second = n_std >= 3 and rng.random() < p_second_perspective
    n_ortho = min(n_std - 1 - int(second), len(ORTHO_ORDER))
    chosen = {str(v) for v in rng.choice(ORTHO_ORDER, size=n_ortho, replace=False)}
    ortho = [v for v in ORTHO_ORDER if v in chosen]
    az = float(rng.uniform(25, 55)) * (1 if rng.random() < 0.75 else -1)
    el = float(rng.uniform(15, 35))
    dist = float(rng.uniform(3.0, 8.0))
    kinds: list[tuple[str, ViewSpec]] = [("perspective", ViewSpec("perspective", az, el, dist))]
    if second:
        kinds.append(("perspective2", ViewSpec("perspective", az + 180 + float(rng.uniform(-20, 20)),
                                               float(rng.uniform(-30, 35)), dist)))
    kinds += [(v, ViewSpec(v)) for v in ortho]
    if explodable and rng.random() < p_exploded:
        kinds.append(("exploded", ViewSpec("perspective", az, el, dist, exploded=1.0)))
    for _ in range(extra_views):
        kinds.append(("extra", ViewSpec("perspective", float(rng.uniform(-180, 180)), float(rng.uniform(-40, 60)),
                                        float(rng.uniform(3.0, 8.0)))))
    if detail_target is not None and rng.random() < p_detail:
        kinds.append(("detail", ViewSpec("perspective", az, el, dist, zoom=float(rng.uniform(2.0, 3.0)),
                                         target=detail_target)))
    obj_name = obj.name
    figures = []
    style = "of" if rng.random() < 0.25 else "plain"
    first = FIRST_SENTENCE[int(rng.integers(len(FIRST_SENTENCE)))]
    for i, (kind, spec) in enumerate(kinds):
        n = i + 1
        words = VIEW_WORDS[kind][int(rng.integers(len(VIEW_WORDS[kind])))]
        if i == 0:
            text = first.format(n=n, a_words=_a(words), a_obj=_a(obj_name))
        else:
            tmpl = OTHER_SENTENCE[kind if kind in ("exploded", "detail") else "plain" if kind == "extra" else style]
            text = tmpl.format(n=n, a_words=_a(words), obj=obj_name)
        if i == len(kinds) - 1:
            text = text.rstrip(";") + "."
        elif i == len(kinds) - 2:
            text += " and,"
        view = ("perspective" if kind in ("perspective", "perspective2", "exploded", "extra")
                else "other" if kind == "detail" else kind)
        figures.append(FigurePlan(n, view, kind, words, text, spec))
    return figures
