"""Keeping LLM descriptions truthful and varied.

- :class:`TruthFilter` drops every sentence that states a fact the metadata does not support.
  In both modes (:data:`TRUTH_MODES`, ``DescribeConfig.truth``): a material, colour, number,
  unit or brand name that the patent's own metadata (title, object, figure texts, class name)
  never uses; a view (object-level text is shared by all views); an echoed prompt label; an
  unfinished sentence. ``"strict"`` (the default) also drops a sentence with any word that is
  neither in that metadata, nor a function word, nor generic vocabulary that fits every object
  (shape, generic parts, relations between parts): a small base model otherwise invents other
  names, uses and kinds ("also called a soccer bowl", "for outdoor activities"), which no risky
  word list can foresee. ``"lists"`` checks the risky word lists only (the behaviour before
  strict mode). A description that keeps no sentence, or no longer names any word of the object,
  is rejected (the per-drawing text adds the exact object).
- :func:`dedupe` removes near-identical descriptions (normalised token Jaccard similarity).

The word lists are data: ``vocab/truth.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import get_args

import yaml

from priorsight.describe.config import TruthMode
from priorsight.describe.prompts import PatentFacts, package_text, stem

#: The truth filter's modes: every word grounded or generic, or the risky word lists only.
TRUTH_MODES: tuple[str, ...] = get_args(TruthMode)

_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = frozenset(
    "a an the of and or with for to in on at by from as is are be been its it this that these those "
    "which has have having into onto over under near along also while".split()
)


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text or "")


def norm(word: str) -> str:
    """Lower-case, possessive and plural stripped: "Spoons" -> "spoon"."""
    w = word.lower().strip("'-")
    w = w[:-2] if w.endswith("'s") else w
    return stem(w)


def norm_tokens(text: str) -> set[str]:
    out: set[str] = set()
    for w in words(text):
        out.add(norm(w))
        if "-" in w:  # "cross-sectional" also counts as "cross" and "sectional"
            out.update(norm(p) for p in w.split("-") if p)
    return out


@dataclass(frozen=True)
class TruthVocabulary:
    """The word lists of ``vocab/truth.yaml`` (normalised): the risky words (both modes), and
    for strict mode the function words, the generic vocabulary and the naming words."""

    materials: frozenset[str]
    colours: frozenset[str]
    number_words: frozenset[str]
    units: frozenset[str]
    view_words: frozenset[str]
    prompt_labels: frozenset[str]
    not_brands: frozenset[str]
    off_topic: frozenset[str] = frozenset()
    fingerprint: str = ""  # changes when a list changes (part of the cache key)
    function_words: frozenset[str] = frozenset()
    generic: frozenset[str] = frozenset()  # shape_words, part_words, picture_words, relation_words
    synonym_words: frozenset[str] = frozenset()  # "called", "known": another name for the object

    @classmethod
    def from_mapping(cls, data: dict[str, list[str]]) -> TruthVocabulary:
        def s(*keys: str, keep_case: bool = False) -> frozenset[str]:
            return frozenset(str(w) if keep_case else norm(str(w)) for key in keys for w in data.get(key, []))

        fp = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return cls(
            materials=s("materials"), colours=s("colours"), number_words=s("number_words"), units=s("units"),
            view_words=s("view_words"), prompt_labels=s("prompt_labels"),
            not_brands=s("not_brands", keep_case=True), off_topic=s("off_topic"), fingerprint=fp,
            function_words=s("function_words") | _STOPWORDS,
            generic=s("shape_words", "part_words", "picture_words", "relation_words"),
            synonym_words=s("synonym_words"),
        )


@cache
def default_vocabulary() -> TruthVocabulary:
    return TruthVocabulary.from_mapping(yaml.safe_load(package_text("vocab", "truth.yaml")))


@dataclass(frozen=True)
class Cleaned:
    """The outcome of filtering one description."""

    text: str | None  # None: rejected
    dropped: tuple[tuple[str, str], ...] = ()  # (sentence, reason)
    reason: str = ""  # why the whole description was rejected


@dataclass
class TruthFilter:
    """Sentence filter for object-level descriptions of one patent."""

    vocabulary: TruthVocabulary
    grounded: set[str]  # normalised words of the trusted metadata
    known: set[str] = field(default_factory=set)  # also allowed as capitalised words (caption)
    object_terms: tuple[str, ...] = ()  # normalised object words: at least one must appear
    min_words: int = 4
    mode: TruthMode = "strict"

    def __post_init__(self) -> None:
        if self.mode not in TRUTH_MODES:
            raise ValueError(f"truth mode must be one of {TRUTH_MODES}, got {self.mode!r}")

    @classmethod
    def for_facts(cls, facts: PatentFacts, vocabulary: TruthVocabulary | None = None,
                  mode: TruthMode = "strict") -> TruthFilter:
        """The filter of one patent: its title, object, figure details and class name ground
        words (the caption does not: it only keeps its names from counting as brands)."""
        vocab = vocabulary or default_vocabulary()
        trusted = " ".join([facts.object, facts.full_object, facts.title, facts.details, facts.class_name])
        grounded = norm_tokens(trusted)
        object_terms = tuple(t for t in (norm(w) for w in words(facts.object)) if t not in _STOPWORDS)
        return cls(vocab, grounded, known=norm_tokens(facts.caption), object_terms=object_terms, mode=mode)

    def allowed(self, word: str) -> bool:
        """Strict mode's test of one word: grounded in the metadata, a function word or generic
        vocabulary; a hyphenated word also when each of its parts is ("ball-shaped")."""
        v = self.vocabulary

        def ok(n: str) -> bool:
            return n in self.grounded or n in v.function_words or n in v.generic

        pieces = [norm(p) for p in word.split("-") if p]
        return ok(norm(word)) or (len(pieces) > 1 and all(ok(p) for p in pieces))

    def sentence_problems(self, sentence: str) -> list[str]:
        """Why a sentence may not be kept (empty: it may)."""
        v = self.vocabulary
        problems: list[str] = []
        if re.search(r"(?i)\b(" + "|".join(sorted(v.prompt_labels)) + r")\s*:", sentence):
            problems.append("echoes a prompt label")
        if re.search(r"[™®©@]|https?:|www\.", sentence):
            problems.append("trademark or address")
        toks = words(sentence)
        for i, w in enumerate(toks):
            n = norm(w)
            parts = {n, *(norm(p) for p in w.split("-") if p)}
            if n in self.grounded:
                continue
            if any(ch.isdigit() for ch in w):
                problems.append(f"number {w!r}")
            elif parts & v.number_words:
                problems.append(f"number {w!r}")
            elif parts & v.units:
                problems.append(f"unit {w!r}")
            elif parts & v.materials:
                problems.append(f"material {w!r}")
            elif parts & v.colours:
                problems.append(f"colour {w!r}")
            elif parts & v.view_words:
                problems.append(f"view {w!r}")
            elif parts & v.off_topic:
                problems.append(f"off topic {w!r}")
            elif i > 0 and any(ch.isupper() for ch in w) and w not in v.not_brands and n not in self.known:
                problems.append(f"name {w!r}")
            elif self.mode == "strict" and not self.allowed(w):
                problems.append(f"{'synonym' if parts & v.synonym_words else 'ungrounded'} {w!r}")
        return problems

    def clean(self, text: str) -> Cleaned:
        """Keep the supported, finished sentences of ``text``; reject it if none is left or the
        object is no longer named."""
        flat = re.sub(r"\s+", " ", text or "").strip().strip('"').strip()
        if not flat:
            return Cleaned(None, reason="empty")
        kept: list[str] = []
        dropped: list[tuple[str, str]] = []
        for sentence in _SENTENCE_RE.split(flat):
            s = sentence.strip()
            if not s:
                continue
            if not re.search(r"[.!?]$", s):
                dropped.append((s, "unfinished"))
                continue
            problems = self.sentence_problems(s)
            if problems:
                dropped.append((s, "; ".join(problems)))
            else:
                kept.append(s)
        if not kept:
            return Cleaned(None, tuple(dropped), reason="no supported sentence")
        out = " ".join(kept)
        if len(words(out)) < self.min_words:
            return Cleaned(None, tuple(dropped), reason="too short")
        present = norm_tokens(out)
        if self.object_terms and not any(t in present for t in self.object_terms):
            return Cleaned(None, tuple(dropped), reason="does not name the object")
        return Cleaned(capitalise_first(out), tuple(dropped))


def capitalise_first(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def content_tokens(text: str) -> frozenset[str]:
    """Normalised content words, for near-duplicate detection."""
    return frozenset(t for t in norm_tokens(text) if t not in _STOPWORDS)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def dedupe(texts: Sequence[str], threshold: float = 0.7, keep: Sequence[str] = ()) -> list[str]:
    """``texts`` without near-duplicates (of each other or of ``keep``), first occurrence kept."""
    seen = [content_tokens(t) for t in keep]
    out: list[str] = []
    for t in texts:
        toks = content_tokens(t)
        if any(jaccard(toks, s) >= threshold for s in seen):
            continue
        seen.append(toks)
        out.append(t)
    return out
