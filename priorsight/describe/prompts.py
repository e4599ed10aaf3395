"""Facts, prompts and per-drawing description templates.

Everything an LLM may say about a drawing comes from its metadata, gathered here as
:class:`PatentFacts` (shared by all views of a patent: what the LLM describes once) and
:class:`DrawingFacts` (what differs per view). Prompt texts and templates are data: versioned
YAML files in ``prompts/`` (see ``prompts/v2.yaml``), loaded as a :class:`PromptSpec`.

A drawing's class comes from whichever scheme it carries: the Locarno class (``CC-SS``,
``vocab/locarno.yaml``) when it has one, else its US design class (USPC ``D<main>-<subclass>``,
named by its main class, ``vocab/uspc.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from priorsight.records import Drawing, locarno_main, lower_words, object_from_title, uspc_main

# -- data files ---------------------------------------------------------------------------


def package_text(*parts: str) -> str:
    node = files("priorsight.describe")
    for part in parts:
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


@cache
def locarno_names() -> dict[str, str]:
    """Locarno ``CC`` and ``CC-SS`` codes to names (``vocab/locarno.yaml``)."""
    data = yaml.safe_load(package_text("vocab", "locarno.yaml"))
    return {**{str(k): v for k, v in data["classes"].items()}, **{str(k): v for k, v in data["subclasses"].items()}}


def locarno_name(code: str | None) -> str:
    """The subclass name where known, else the main class name, else ``""``."""
    if not code:
        return ""
    names = locarno_names()
    return names.get(code) or names.get(locarno_main(code) or "", "")


@cache
def uspc_names() -> dict[str, str]:
    """US design main classes ``D<main>`` to names (``vocab/uspc.yaml``)."""
    data = yaml.safe_load(package_text("vocab", "uspc.yaml"))
    return {str(k).upper(): v for k, v in data["classes"].items()}


def uspc_name(code: str | None) -> str:
    """The name of a US design class's main class (``"D7-654"`` and ``"D7"`` -> the D7 name;
    USPTO names subclasses only in its own schedule), else ``""``."""
    if not code or not code.strip():
        return ""
    return uspc_names().get((uspc_main(code.strip()) or "").upper(), "")


# -- objects and articles -----------------------------------------------------------------

_TITLE_BOILERPLATE = re.compile(r"\s+or portions? thereof\b|\bportion of (?:an?|the)\s+", re.I)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def full_object_from_title(title: str) -> str:
    """The title as an object phrase, qualifiers kept: "Display screen or portion thereof with a
    graphical user interface" -> "display screen with a graphical user interface"."""
    t = re.sub(r"\s+", " ", title).strip().rstrip(".")
    return lower_words(_TITLE_BOILERPLATE.sub(" ", t)).strip()


def is_plural(phrase: str) -> bool:
    head = re.split(r"\s+(?:with|for|having|and)\s+", phrase.strip(), maxsplit=1)[0].split()
    last = (head or [""])[-1].lower()
    if " and " in phrase.lower():
        return True
    return len(last) > 3 and last.endswith("s") and not last.endswith(("ss", "us", "is"))


def with_article(phrase: str) -> str:
    """``"a sport spoon"``, ``"an irrigation coupling assembly"``, ``"game pieces"``."""
    if not phrase or is_plural(phrase):
        return phrase
    first = phrase.split()[0]
    if first.isupper() and len(first) > 1:  # acronym: by its first letter's sound
        an = first[0] in "AEFHILMNORSX"
    else:
        low = first.lower()
        an = low[0] in "aeiou" and not low.startswith(("uni", "use", "usa", "eu", "one", "uti"))
    return f"{'an' if an else 'a'} {phrase}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


# -- figure details -----------------------------------------------------------------------

# A figure sentence starts with its label and a verb ("FIG. 2 is", "The FIGURE is", "1.2 :").
_FIG_SPLIT = re.compile(
    r"\s(?=(?:the\s+)?(?:FIG(?:URE)?S?\.?\s*[0-9]*[A-Z]?|[0-9]+\.[0-9]+)(?:\s*(?:is|provides|shows|illustrates|depicts)\b|\s*:))",
    re.I)
_FIG_LABEL = re.compile(r"^\s*(?:the\s+)?(?:fig(?:ure)?s?\.?\s*[0-9]+[a-z]?(?:\.[0-9]+)?|figure|[0-9]+\.[0-9]+\s*:?)\s*", re.I)
_VIEW_HEAD = re.compile(r"^.*?\bview\b\s*(?:thereof\b)?\s*(?:of\s+)?", re.I)
_BOILERPLATE = [
    re.compile(p, re.I)
    for p in (
        r"\b(?:showing|illustrating|depicting)\s+(?:my|our|the)\s+(?:(?:new|claimed|ornamental)\s+)?design\b",
        r"\b(?:according to|in accordance with)\s+(?:the present|this|my|our|the)\s+(?:invention|design|disclosure|embodiment)\b",
        r"\bof an ornamental design for\b",
        r"\bof (?:the|our|my) design (?:of|for)\b",
        r"\bor portions? thereof\b",
        r"\bthereof\b",
        r"\b(?:of|in)\s+FIG(?:URE)?S?\.?\s*[0-9]+[a-z]?\b",
        r"\bFIG(?:URE)?S?\.?\s*[0-9]+[a-z]?\b",
    )
]
_STOP = frozenset(
    "a an the of and or with for to in on at by from as is are be its it this that these those which "
    "wherein where when shown showing show shows my our new design designs ornamental claimed embodiment "
    "component components invention first second third one thereof".split()
)


_VIEW_STEMS = frozenset(
    "view perspective front rear back left right top bottom side plan elevation elevational "
    "opposite isometric sectional section cross enlarged detail partial underside".split()
)


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def stem(word: str) -> str:
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("es") and w[-3] in "sxz":
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def figure_detail(figure_description: str, known: Iterable[str] = ()) -> str:
    """What a figure text says beyond its label, its view and the object: "FIG. 1 is a perspective
    view of the soccer sport spoon with the spoon bowl as a soccer ball" -> "the soccer sport
    spoon with the spoon bowl as a soccer ball"; ``""`` when it says nothing more."""
    known_stems = {stem(t) for phrase in known for t in _tokens(phrase)}
    details: list[str] = []
    for part in _FIG_SPLIT.split(figure_description or ""):
        s = _FIG_LABEL.sub("", part.strip(), count=1)
        if not s:
            continue
        rest = _VIEW_HEAD.sub("", s, count=1) if re.search(r"\bview\b", s, re.I) else ""
        for rx in _BOILERPLATE:
            rest = rx.sub(" ", rest)
        rest = re.sub(r"\s+([,;])", r"\1", re.sub(r"\s+", " ", rest)).strip(" ,;:.")
        rest = re.sub(r"[;,]?\s*and,?$", "", rest).strip(" ,;:.")
        extra = [t for t in _tokens(rest) if t not in _STOP and stem(t) not in known_stems
                 and stem(t) not in _VIEW_STEMS]
        if extra and rest not in details:
            details.append(rest)
    return "; ".join(details)


# -- facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatentFacts:
    """What all views of one design patent share: the only input of an LLM description."""

    patent_id: str
    object: str  # the object named ("display screen")
    full_object: str  # with the title's qualifiers ("display screen with a graphical user interface")
    title: str
    locarno: str  # "14-04" or ""
    locarno_name: str
    details: str = ""  # figure texts beyond view and object
    caption: str = ""  # an automatic image caption, if any (not trusted for colours etc.)
    us_class: str = ""  # US design class "D7-654" or ""
    us_class_name: str = ""  # the name of its main class

    @property
    def us_main(self) -> str:
        """The US main class (``"D7"``) or ``""``."""
        return uspc_main(self.us_class) or ""

    @property
    def class_name(self) -> str:
        """The class name of whichever scheme the patent has: the Locarno (sub)class name when
        it has a Locarno class, else the US main class name (``""`` without either)."""
        return self.locarno_name if self.locarno else self.us_class_name

    def fields(self) -> dict[str, str]:
        """The prompt fields: every stored fact, plus ``class_name`` and ``us_main``."""
        return {**{k: str(v) for k, v in asdict(self).items()}, "class_name": self.class_name,
                "us_main": self.us_main}

    def content_hash(self) -> str:
        """Hash of everything a prompt is built from (not the patent id: two patents with the
        same metadata get the same LLM descriptions)."""
        payload = {k: v for k, v in asdict(self).items() if k != "patent_id"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PatentFacts:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class DrawingFacts:
    """What one view adds to its patent's facts."""

    drawing_id: str
    patent: PatentFacts
    view: str  # records.VIEWS
    view_text: str  # the viewpoint words as written
    detail: str = ""


def clean_caption(caption: str, max_chars: int = 300) -> str:
    """The first sentences of an image caption, at most ``max_chars``."""
    text = re.sub(r"\s+", " ", caption or "").strip()
    out = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if len(out) + len(sentence) + 1 > max_chars:
            break
        out = f"{out} {sentence}".strip()
    return out


def _object_of(d: Drawing) -> str:
    return lower_words(d.object_name.strip()) if d.object_name.strip() else object_from_title(d.title)


def patent_facts(drawings: Sequence[Drawing], max_details: int = 300) -> PatentFacts:
    """The shared facts of a patent's drawings (the first drawing gives title, class, caption)."""
    if not drawings:
        raise ValueError("a patent needs at least one drawing")
    first = drawings[0]
    obj = _object_of(first)
    full = full_object_from_title(first.title) if first.title.strip() else obj
    if not obj:
        obj = full or "design"
    if not full or obj not in full:
        full = obj
    details: list[str] = []
    for d in drawings:
        det = figure_detail(d.figure_description, known=(obj, full))
        for part in det.split("; ") if det else ():
            if part not in details and len("; ".join([*details, part])) <= max_details:
                details.append(part)
    return PatentFacts(
        patent_id=first.patent_id,
        object=obj,
        full_object=full,
        title=re.sub(r"\s+", " ", first.title).strip(),
        locarno=first.locarno_class or "",
        locarno_name=locarno_name(first.locarno_class),
        details="; ".join(details),
        caption=clean_caption(getattr(first, "caption", "") or ""),
        us_class=first.us_class or "",
        us_class_name=uspc_name(first.us_class),
    )


def drawing_facts(d: Drawing, patent: PatentFacts) -> DrawingFacts:
    return DrawingFacts(
        drawing_id=d.drawing_id,
        patent=patent,
        view=d.view,
        view_text=re.sub(r"\s+", " ", d.view_text or "").strip(),
        detail=figure_detail(d.figure_description, known=(patent.object, patent.full_object)),
    )


# -- prompt spec --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One prompt in both forms: completion text (base models) and chat messages."""

    text: str
    messages: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class PromptSpec:
    """A versioned prompt file (``prompts/VERSION.yaml``)."""

    version: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    fingerprint: str = ""  # hash of the parts that change what the LLM writes

    @classmethod
    def load(cls, version_or_path: str | Path = "v2") -> PromptSpec:
        p = Path(version_or_path)
        if p.suffix in (".yaml", ".yml"):
            if not p.exists():
                raise FileNotFoundError(f"prompt file not found: {p}")
            text = p.read_text(encoding="utf-8")
        else:
            try:
                text = package_text("prompts", f"{version_or_path}.yaml")
            except FileNotFoundError as exc:
                raise FileNotFoundError(
                    f"no prompt version {version_or_path!r} in priorsight/describe/prompts/") from exc
        raw = yaml.safe_load(text)
        for section in ("version", "completion", "chat", "focus", "examples", "drawing", "views"):
            if section not in raw:
                raise ValueError(f"prompt file {version_or_path} lacks the {section!r} section")
        llm_part = {k: raw[k] for k in ("completion", "chat", "focus", "examples")}
        fp = hashlib.sha256(json.dumps(llm_part, sort_keys=True).encode()).hexdigest()[:16]
        return cls(version=str(raw["version"]), raw=raw, fingerprint=fp)

    # -- LLM prompts --
    @property
    def focus(self) -> list[str]:
        return list(self.raw["focus"])

    @property
    def stop(self) -> list[str]:
        return list(self.raw["completion"]["stop"])

    def _field_lines(self, values: dict[str, str]) -> str:
        lines = []
        for label, key in self.raw["completion"]["fields"]:
            v = str(values.get(key, "") or "").strip()
            if v:
                lines.append(f"{label}: {v}")
        return "\n".join(lines)

    def prompt(self, facts: PatentFacts, focus: str) -> Prompt:
        """The few-shot completion prompt (and the same as chat turns) for one focus."""
        c = self.raw["completion"]
        label = c["answer_label"]
        values = {**facts.fields(), "focus": focus}
        shots = [f"{self._field_lines(ex)}\n{label}: {ex['description'].strip()}" for ex in self.raw["examples"]]
        text = c["preamble"].strip() + c["separator"] + c["separator"].join(
            [*shots, f"{self._field_lines(values)}\n{label}:"])
        ch = self.raw["chat"]
        messages: list[dict[str, str]] = [{"role": "system", "content": ch["system"].strip()}]
        for ex in self.raw["examples"]:
            messages.append({"role": "user", "content": f"{ch['user_prefix']}\n{self._field_lines(ex)}"})
            messages.append({"role": "assistant", "content": ex["description"].strip()})
        messages.append({"role": "user", "content": f"{ch['user_prefix']}\n{self._field_lines(values)}"})
        return Prompt(text=text, messages=tuple(messages))

    # -- views --
    def view_phrases(self, view: str, view_text: str) -> list[str]:
        """Phrases naming a drawing's view: as written first ("top plan view"), then synonyms of
        its main view word ("top view", "plan view", "view from above"). Only words the figure
        text supports: "side" gives "side view", never "left side view"."""
        v = self.raw["views"]
        vt = re.sub(r"\s+", " ", (view_text or "").lower()).strip(" :;,.")
        vt = re.sub(r"\s*\bviews?$", "", vt).strip(" :;,.")
        term = next((name for name, rx in v["terms"] if re.search(rx, vt)), None)
        phrases: list[str] = []
        if term is not None:
            if len(vt.split()) <= 6:
                phrases.append(f"{vt} view")
            phrases += v["synonyms"].get(term, [])
        else:
            phrases += v["by_view"].get(view, v["by_view"]["other"])
        seen: list[str] = []
        for p in phrases:
            if p not in seen:
                seen.append(p)
        return seen

    # -- per-drawing texts --
    def _context(self, df: DrawingFacts, view_phrase: str) -> dict[str, str]:
        p = df.patent
        return {
            "view": view_phrase, "View": capitalise(view_phrase),
            "a_view": with_article(view_phrase), "A_view": capitalise(with_article(view_phrase)),
            "object": p.object, "Object": capitalise(p.object), "a_object": with_article(p.object),
            "full_object": p.full_object, "a_full_object": with_article(p.full_object),
            "locarno": p.locarno, "locarno_name": p.locarno_name or "design", "title": p.title,
            "us_class": p.us_class, "us_main": p.us_main, "us_class_name": p.us_class_name or "design",
            "class_name": p.class_name or "design",
        }

    def metadata_template(self, p: PatentFacts) -> str:
        """Which entry-0 template fits the patent's class: ``metadata`` (Locarno),
        ``metadata_us`` (a known US class only; a prompt file without it, such as v1, says no
        class) or ``metadata_no_class``."""
        d = self.raw["drawing"]
        if p.locarno:
            return d["metadata"]
        if p.us_class and p.us_class_name and "metadata_us" in d:
            return d["metadata_us"]
        return d["metadata_no_class"]

    def metadata_description(self, df: DrawingFacts) -> str:
        """Entry 0 of every drawing: deterministic, from metadata only."""
        d = self.raw["drawing"]
        ctx = self._context(df, self.view_phrases(df.view, df.view_text)[0])
        text = self.metadata_template(df.patent).format_map(ctx)
        if df.detail:
            text += " " + d["figure_detail"].format_map({**ctx, "detail": df.detail})
        return text

    def with_view(self, df: DrawingFacts, description: str, view_phrase: str) -> str:
        """An object-level description placed in one view: "A sport spoon with ..." -> "A top
        view of a sport spoon with ..."; "A sporting spoon ..." -> "A top view of a sport spoon.
        A sporting spoon ..." (so the object and the view are always named exactly)."""
        d = self.raw["drawing"]
        ctx = self._context(df, view_phrase)
        desc = description.strip()
        m = re.match(r"^(a|an|the)\s+(.*)$", desc, re.I | re.S)
        if m and m.group(2).lower().startswith(df.patent.object.lower()):
            return d["with_article"].format_map({**ctx, "description": desc[0].lower() + desc[1:]})
        return d["prefixed"].format_map({**ctx, "description": desc})

    def templated(self, df: DrawingFacts) -> list[str]:
        """Templated, view-specific variants (no LLM), view synonyms in turn."""
        views = self.view_phrases(df.view, df.view_text)
        out = []
        for i, t in enumerate(self.raw["drawing"]["templates"]):
            out.append(t.format_map(self._context(df, views[i % len(views)])))
        return out
