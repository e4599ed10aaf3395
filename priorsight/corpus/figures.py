"""Figure descriptions: "FIG. 3 is a top plan view thereof" -> figure 3, view "top".

Pure functions shared by every importer (and the synthetic generator's round-trip tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Ordered rules: the first that matches the viewpoint words wins. Each maps a regex over the
# lower-cased text to a normalised view in priority order (perspective dominates "front
# perspective"; "bottom" beats "plan" in "bottom plan view").
_VIEW_RULES: list[tuple[str, str]] = [
    (r"\bperspective|\bisometric|\baxonometric", "perspective"),
    (r"\b(bottom|underside|under side|lower)\b", "bottom"),
    (r"\b(top|plan)\b|\bupper\b", "top"),
    (r"\b(rear|back)\b", "rear"),
    (r"\bleft\b", "left"),
    (r"\bright\b|\bopposite side\b", "right"),
    (r"\b(front|frontal)\b|\bfrom view\b", "front"),
    (r"\b(side|elevation(al)?)\b", "left"),
    (r"\b(section(al)?|cross|exploded|enlarged|detail|partial|environment|state of use|reference|"
     r"sequence|image|view)\b", "other"),
]
_VIEW_RES = [(re.compile(p), v) for p, v in _VIEW_RULES]

# "FIG. 3", "FIGS. 3", "Fig 3A", "1.2", "FIGURE 4", "The FIGURE"
_FIG_LABEL_RE = re.compile(
    r"^\s*(?:the\s+)?(?:(?:fig(?:ure)?s?\.?)\s*(?P<num>\d+[a-z]?(?:\.\d+)?)|(?P<hague>\d+\.\d+)\s*:?|"
    r"(?P<single>figure)\b)",
    re.IGNORECASE,
)
_LEAD_RE = re.compile(r"^(?:is|provides|shows|illustrates|depicts|:)?\s*(?:an?\b|the\b)?\s*", re.IGNORECASE)
_VIEW_WORD_RE = re.compile(r"\bview\b", re.IGNORECASE)
_PHRASE_END_RE = re.compile(r"\bof\b|\bthereof\b|[;.]", re.IGNORECASE)


@dataclass(frozen=True)
class Figure:
    label: str  # "FIG. 3", "1.2", "FIGURE"
    number: int  # ordinal within the patent (1-based)
    text: str  # the whole sentence
    view: str  # normalised view, see records.VIEWS
    view_text: str  # the viewpoint words as written ("top plan")
    named_view: bool  # False when the text names no view we recognise (view is then "other")


def normalise_view(text: str) -> tuple[str, bool]:
    """Map viewpoint words to the normalised vocabulary. Returns (view, recognised)."""
    t = text.lower()
    for rx, view in _VIEW_RES:
        if rx.search(t):
            return view, True
    return "other", False


def _view_phrase(rest: str) -> str:
    """The viewpoint words of a figure sentence after its label: "is a top plan view of ..."
    -> "top plan"; "1.2 : Front" -> "Front"; "is a bottom thereof" -> "bottom"."""
    r = _LEAD_RE.sub("", rest.strip(), count=1)
    m = _VIEW_WORD_RE.search(r)
    phrase = r[: m.start()] if m else _PHRASE_END_RE.split(r, maxsplit=1)[0]
    return re.sub(r"\s+", " ", phrase).strip(" :;,.")


def parse_figure_sentence(sentence: str, ordinal: int) -> Figure | None:
    """Parse one figure sentence; ``None`` if it does not start with a figure label."""
    s = re.sub(r"\s+", " ", sentence).strip()
    m = _FIG_LABEL_RE.match(s)
    if not m:
        return None
    if m.group("num"):
        num = m.group("num").upper()
        label = num if "." in num else f"FIG. {num}"  # "Fig. 1.8" is the Hague label "1.8"
    elif m.group("hague"):
        label = m.group("hague")
    else:
        label = "FIGURE"
    rest = s[m.end():].strip()
    phrase = _view_phrase(rest)
    # Viewpoint words in the phrase first, then anywhere in the sentence.
    view, named = normalise_view(phrase)
    if not named:
        view, named = normalise_view(rest)
    return Figure(label=label, number=ordinal, text=s, view=view, view_text=phrase, named_view=named)


def parse_figure_descriptions(paragraphs: list[str]) -> list[Figure]:
    """Parse the figure sentences of a description-of-drawings section, in order.

    Sentences that do not describe one figure (broken-line notes, "FIGS. 1-7 ...", headings)
    are skipped.
    """
    figures: list[Figure] = []
    seen: set[str] = set()
    for para in paragraphs:
        p = re.sub(r"\s+", " ", para).strip()
        if re.match(r"^\s*(the\s+)?figs\.?\s*\d+\s*(-|to|through|and)", p, re.IGNORECASE):
            continue  # a note about several figures, e.g. "FIGS. 1-7 represent ..."
        fig = parse_figure_sentence(p, len(figures) + 1)
        if fig is None or fig.label in seen:
            continue
        seen.add(fig.label)
        figures.append(fig)
    return figures
