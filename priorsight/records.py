"""Domain records: a drawing, the patent that groups drawings, and a per-item failure.

Every stage of PriorSight reads and writes these records through the Parquet manifest
(:mod:`priorsight.manifest`), always keyed by ``drawing_id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Normalised view vocabulary (what the figure text says the drawing shows).
VIEWS: tuple[str, ...] = ("perspective", "front", "rear", "left", "right", "top", "bottom", "other")

_LOCARNO_RE = re.compile(r"^\s*(\d{1,2})\s*[-.\s]?\s*(\d{2})\s*$")


def normalise_locarno(code: str | None) -> str | None:
    """Return a Locarno class as ``CC-SS`` ("2803" -> "28-03", "7-03" -> "07-03").

    Returns ``None`` for an empty value; raises ``ValueError`` for a malformed one.
    """
    if code is None or not str(code).strip():
        return None
    m = _LOCARNO_RE.match(str(code))
    if not m:
        raise ValueError(f"not a Locarno class (expected CC-SS or CCSS): {code!r}")
    main, sub = int(m.group(1)), int(m.group(2))
    if not 1 <= main <= 32:
        raise ValueError(f"Locarno main class out of range 01-32: {code!r}")
    return f"{main:02d}-{sub:02d}"


def locarno_main(cls: str | None) -> str | None:
    """The main class ``CC`` of a ``CC-SS`` code."""
    return cls.split("-")[0] if cls else None


#: US design main classes (USPC): D1-D34 and D99 (D31 and D33 are not used).
USPC_MAIN_CLASSES = frozenset([*range(1, 31), 32, 34, 99])
_USPC_SPLIT_RE = re.compile(r"^\s*D\s*(\d{1,2})\s*[-/]\s*(\d{1,3}(?:\.\d+)?)\s*$", re.I)


def normalise_uspc(code: str | None) -> str | None:
    """Return a US design class (USPC) as ``D<main>-<subclass>``: ``"D14/345"``, ``"D14-345"``,
    ``"D14 345"`` -> ``"D14-345"``.

    Also reads the grant XML's fixed-width ``classification-national`` form: ``D`` + the main
    class in 2 characters + the subclass in 3 (+ decimals): ``"D14487"`` -> ``"D14-487"``,
    ``"D 7654"`` -> ``"D7-654"``, ``"D28 47"`` -> ``"D28-47"``, ``"D 5 46"`` -> ``"D5-46"``,
    ``"D74012"`` (no valid main class 74) -> ``"D7-401.2"``. Returns ``None`` for an empty value;
    raises ``ValueError`` for a malformed one (a utility class such as ``"428/221"`` included).
    """
    if code is None or not str(code).strip():
        return None
    raw = str(code).strip()
    m = _USPC_SPLIT_RE.match(raw)
    if m:
        main, sub = int(m.group(1)), m.group(2)
    else:
        if raw[:1] not in ("D", "d") or not re.fullmatch(r"[0-9 .]+", raw[1:] or "x"):
            raise ValueError(f"not a US design class (expected D<main>-<subclass>): {code!r}")
        rest = raw[1:]
        if " " in rest[:2] or not rest[:2].isdigit() or int(rest[:2]) not in USPC_MAIN_CLASSES:
            head, tail = (rest[:2], rest[2:]) if " " in rest[:2] else (rest[:1], rest[1:])
        else:
            head, tail = rest[:2], rest[2:]
        digits = tail.replace(" ", "")
        if not head.strip().isdigit() or not re.fullmatch(r"\d+(?:\.\d+)?", digits):
            raise ValueError(f"not a US design class (expected D<main>-<subclass>): {code!r}")
        main = int(head)
        sub = digits if "." in digits or len(digits) <= 3 else f"{digits[:3]}.{digits[3:]}"
    whole, _, dec = sub.partition(".")
    sub = str(int(whole)) + (f".{dec}" if dec else "")
    if main not in USPC_MAIN_CLASSES:
        raise ValueError(f"US design main class out of range (D1-D34, D99): {code!r}")
    return f"D{main}-{sub}"


def uspc_main(cls: str | None) -> str | None:
    """The main class ``D<main>`` of a ``D<main>-<subclass>`` code."""
    return cls.split("-")[0] if cls else None


@dataclass
class Drawing:
    """One patent drawing (an image) with the metadata every stage needs."""

    drawing_id: str
    patent_id: str
    image_uri: str
    source: str
    figure_number: int | None = None  # ordinal of the figure in the patent (1-based)
    figure_label: str = ""  # the label as printed: "FIG. 3", "1.2", "FIGURE"
    view: str = "other"  # one of VIEWS
    view_text: str = ""  # the viewpoint words as written ("top plan view")
    object_name: str = ""
    locarno_class: str | None = None  # "CC-SS"
    us_class: str | None = None  # US design class (USPC) "D14-345"
    grant_date: str | None = None  # ISO date "YYYY-MM-DD"
    title: str = ""
    figure_description: str = ""
    caption: str = ""  # an image caption (e.g. by a vision-language model) where one exists
    width: int | None = None
    height: int | None = None
    cited_patents: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        if not self.drawing_id:
            raise ValueError("drawing_id must not be empty")

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Drawing:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in row.items() if k in names}
        if kwargs.get("cited_patents") is None:
            kwargs["cited_patents"] = []
        else:
            kwargs["cited_patents"] = list(kwargs["cited_patents"])
        return cls(**kwargs)


@dataclass
class Patent:
    """A design patent: its drawings share one design, title and Locarno class."""

    patent_id: str
    title: str = ""
    locarno_class: str | None = None
    us_class: str | None = None
    grant_date: str | None = None
    cited_patents: list[str] = field(default_factory=list)
    drawings: list[Drawing] = field(default_factory=list)


def group_patents(drawings: Iterable[Drawing]) -> Iterator[Patent]:
    """Group consecutive drawings of the same patent (manifests are written patent by patent)."""
    current: Patent | None = None
    for d in drawings:
        if current is None or d.patent_id != current.patent_id:
            if current is not None:
                yield current
            current = Patent(
                patent_id=d.patent_id,
                title=d.title,
                locarno_class=d.locarno_class,
                us_class=d.us_class,
                grant_date=d.grant_date,
                cited_patents=list(d.cited_patents),
            )
        current.drawings.append(d)
    if current is not None:
        yield current


@dataclass
class ItemError:
    """A per-item failure: what was skipped (or kept with a warning), where, and why."""

    item: str  # the file or record that failed
    stage: str  # "import-uspto", "synth", "describe", ...
    reason: str
    severity: str = "error"  # "error": item skipped; "warning": item kept, metadata degraded
    drawing_id: str | None = None
    patent_id: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


_TITLE_HEAD_END = re.compile(r"\s+(?:or portions? thereof|for|with|having|and method|including)\b.*$", re.I)


def lower_words(text: str) -> str:
    """Lower-case a title, keeping acronyms ("USB cable" stays "USB cable")."""
    return " ".join(w if (w.isupper() and len(w) > 1) else w.lower() for w in text.split())


def object_from_title(title: str) -> str:
    """The object a design title names: "Display screen or portion thereof with a GUI" ->
    "display screen"; "Sport spoon" -> "sport spoon"."""
    t = re.sub(r"\s+", " ", title).strip().rstrip(".")
    return lower_words(_TITLE_HEAD_END.sub("", t)).strip()
