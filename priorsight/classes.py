"""Class schemes: which classification groups drawings into classes, at which level.

Two schemes are first-class:

* ``locarno``: the Locarno classification of industrial designs, stored as ``locarno_class``
  ``CC-SS`` (main class ``CC``, subclass ``CC-SS``);
* ``uspc``: the US design classes the USPTO still uses for design patents, stored as
  ``us_class`` ``D<main>-<subclass>`` (main class ``D14``, subclass ``D14-345``).

Stats, the class-aware sampler, the class-level losses, the evaluation and the search filters
all take a :class:`ClassScheme` (from ``corpus.class_scheme`` / ``corpus.class_level``).
``auto`` picks, per corpus, the scheme that labels more of its drawings (Locarno on a tie) and
the level the field's protocol uses for it: the Locarno subclass (``CC-SS``, as in the
DeepPatent papers) and the US main class (``D14``, as the USPTO's design classes are read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from priorsight.records import locarno_main, uspc_main

Scheme = Literal["locarno", "uspc"]
Level = Literal["main", "subclass"]
SchemeChoice = Literal["auto", "locarno", "uspc"]
LevelChoice = Literal["auto", "main", "subclass"]
SCHEMES: tuple[str, ...] = ("locarno", "uspc")
LEVELS: tuple[str, ...] = ("main", "subclass")
#: the manifest column each scheme is stored in
FIELDS: Mapping[str, str] = {"locarno": "locarno_class", "uspc": "us_class"}
#: the level ``auto`` means, per scheme
DEFAULT_LEVEL: Mapping[str, str] = {"locarno": "subclass", "uspc": "main"}


@dataclass(frozen=True)
class ClassScheme:
    """A classification and a level: ``ClassScheme("uspc", "main").label("D14-345") == "D14"``."""

    scheme: Scheme = "locarno"
    level: Level = "subclass"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"class scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.level not in LEVELS:
            raise ValueError(f"class level must be one of {LEVELS}, got {self.level!r}")

    @property
    def field(self) -> str:
        """The manifest column holding this scheme's codes."""
        return FIELDS[self.scheme]

    @property
    def name(self) -> str:
        """``"locarno-subclass"``, ``"uspc-main"``, ..."""
        return f"{self.scheme}-{self.level}"

    def label(self, code: str | None) -> str | None:
        """The class of a stored code at this level (``None`` stays ``None``)."""
        if not code:
            return None
        if self.level == "subclass":
            return code
        return locarno_main(code) if self.scheme == "locarno" else uspc_main(code)

    def of(self, item: Mapping[str, Any] | Any) -> str | None:
        """The class of a manifest row (mapping) or a :class:`~priorsight.records.Drawing`."""
        code = item.get(self.field) if isinstance(item, Mapping) else getattr(item, self.field, None)
        return self.label(code)

    def labels(self, items: Iterable[Mapping[str, Any] | Any]) -> list[str | None]:
        return [self.of(i) for i in items]

    @classmethod
    def parse(cls, name: str) -> ClassScheme:
        """``"uspc-main"`` / ``"locarno"`` (the scheme's default level) -> a scheme."""
        scheme, _, level = name.partition("-")
        return cls(scheme, level or DEFAULT_LEVEL.get(scheme, "subclass"))  # type: ignore[arg-type]


def resolve_scheme(scheme: SchemeChoice = "auto", level: LevelChoice = "auto",
                   labelled: Mapping[str, int] | None = None) -> ClassScheme:
    """The scheme to use: ``scheme`` as configured, or for ``auto`` the one that labels more
    drawings in ``labelled`` (``{"locarno": n, "uspc": m}``; Locarno on a tie or without counts);
    ``level`` as configured, or the scheme's :data:`DEFAULT_LEVEL`."""
    if scheme == "auto":
        counts = labelled or {}
        scheme = "uspc" if counts.get("uspc", 0) > counts.get("locarno", 0) else "locarno"
    if scheme not in SCHEMES:
        raise ValueError(f"class scheme must be auto or one of {SCHEMES}, got {scheme!r}")
    if level == "auto":
        level = DEFAULT_LEVEL[scheme]  # type: ignore[assignment]
    return ClassScheme(scheme, level)  # type: ignore[arg-type]


def labelled_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many rows carry a code of each scheme."""
    out = dict.fromkeys(SCHEMES, 0)
    for r in rows:
        for s, f in FIELDS.items():
            if r.get(f):
                out[s] += 1
    return out


__all__ = ["DEFAULT_LEVEL", "FIELDS", "LEVELS", "SCHEMES", "ClassScheme", "labelled_counts", "resolve_scheme"]
