"""Object types (data: ``object_types.yaml``) and procedurally varied designs of them.

The catalog lists Locarno classes (in Zipf rank order) and object types; each type names a
*family* (a builder in :mod:`priorsight.corpus.synth.families`) and overrides the family's
parameter ranges. Look-alike types share a family with different ranges (cup / vase / bottle /
lamp base; stool / side table; speaker / router), so same-class retrieval stays hard.

Parameter specs in the YAML: a number (fixed), ``[lo, hi]`` (uniform; integers for integer
parameters), ``{value: weight, ...}`` (weighted choice, also for integers), a string or list of strings (uniform choice), ``{choice: weight, ...}`` (weighted
choice), ``true``/``false`` or a probability in [0, 1] for yes/no features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from priorsight.corpus.synth.geometry import Design
from priorsight.records import normalise_locarno

CATALOG_FILE = Path(__file__).with_name("object_types.yaml")


class CatalogError(ValueError):
    """The object-type catalog is malformed."""


@dataclass(frozen=True)
class LocarnoClass:
    code: str  # "CC-SS"
    name: str


@dataclass(frozen=True)
class ObjectType:
    name: str  # "table lamp"
    locarno: str  # "26-05"
    family: str  # builder name
    title: str  # patent title, e.g. "Table lamp"
    params: Mapping[str, Any] = field(default_factory=dict)
    explode: bool = False  # whether an exploded view makes sense


@dataclass(frozen=True)
class Catalog:
    classes: tuple[LocarnoClass, ...]  # in Zipf rank order (most frequent first)
    types: tuple[ObjectType, ...]

    def types_of(self, code: str) -> tuple[ObjectType, ...]:
        return tuple(t for t in self.types if t.locarno == code)

    def type_named(self, name: str) -> ObjectType:
        for t in self.types:
            if t.name == name:
                return t
        raise KeyError(f"no object type named {name!r}")

    def class_probabilities(self, zipf_exponent: float) -> np.ndarray:
        """P(class of rank r) proportional to 1 / r**s (s = 0: uniform)."""
        if zipf_exponent < 0:
            raise ValueError(f"zipf exponent must be >= 0, got {zipf_exponent}")
        ranks = np.arange(1, len(self.classes) + 1, dtype=np.float64)
        w = ranks ** -zipf_exponent
        return w / w.sum()


def parse_catalog(data: Mapping[str, Any], families: Sequence[str] | None = None) -> Catalog:
    """Validate and build a catalog from its YAML mapping."""
    if not isinstance(data, Mapping) or "classes" not in data or "types" not in data:
        raise CatalogError("catalog must be a mapping with 'classes' and 'types'")
    classes: list[LocarnoClass] = []
    for entry in data["classes"]:
        try:
            code = normalise_locarno(str(entry["code"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"bad class entry {entry!r}: {exc}") from exc
        classes.append(LocarnoClass(code, str(entry.get("name", code))))
    codes = [c.code for c in classes]
    if len(set(codes)) != len(codes):
        raise CatalogError("duplicate Locarno class in catalog")
    types: list[ObjectType] = []
    for entry in data["types"]:
        try:
            name = str(entry["name"])
            code = normalise_locarno(str(entry["locarno"]))
            family = str(entry["family"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"bad type entry {entry!r}: {exc}") from exc
        if code not in codes:
            raise CatalogError(f"type {name!r}: class {code} is not listed under 'classes'")
        if families is not None and family not in families:
            raise CatalogError(f"type {name!r}: unknown family {family!r} (known: {sorted(families)})")
        params = entry.get("params") or {}
        if not isinstance(params, Mapping):
            raise CatalogError(f"type {name!r}: params must be a mapping")
        types.append(ObjectType(name, code, family, str(entry.get("title", name[:1].upper() + name[1:])),
                                MappingProxyType(dict(params)), bool(entry.get("explode", False))))
    names = [t.name for t in types]
    if len(set(names)) != len(names):
        raise CatalogError("duplicate object type name in catalog")
    empty = [c.code for c in classes if c.code not in {t.locarno for t in types}]
    if empty:
        raise CatalogError(f"classes without object types: {empty}")
    return Catalog(tuple(classes), tuple(types))


@lru_cache(maxsize=4)
def load_catalog(path: str | None = None) -> Catalog:
    """The object-type catalog (default: the packaged ``object_types.yaml``)."""
    from priorsight.corpus.synth.families import FAMILIES

    p = Path(path) if path else CATALOG_FILE
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog file not found: {p}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {p} is not valid YAML: {exc}") from exc
    return parse_catalog(data, tuple(FAMILIES))


class Params:
    """Draws a type's parameters: the YAML spec if given, else the family's default spec."""

    def __init__(self, rng: np.random.Generator, spec: Mapping[str, Any]):
        self.rng = rng
        self.spec = spec
        self.used: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        if name in self.spec:
            self.used.add(name)
            return self.spec[name]
        return default

    def f(self, name: str, default: float | Sequence[float]) -> float:
        s = self._get(name, default)
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            return float(s)
        lo, hi = (float(x) for x in s)
        return float(self.rng.uniform(lo, hi))

    def i(self, name: str, default: int | Sequence[int]) -> int:
        s = self._get(name, default)
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            return int(s)
        if isinstance(s, Mapping):  # {value: weight}
            keys = list(s)
            w = np.asarray([float(s[k]) for k in keys])
            return int(keys[int(self.rng.choice(len(keys), p=w / w.sum()))])
        lo, hi = (int(x) for x in s)
        return int(self.rng.integers(lo, hi + 1))

    def c(self, name: str, default: str | Sequence[str] | Mapping[str, float]) -> str:
        s = self._get(name, default)
        if isinstance(s, str):
            return s
        if isinstance(s, Mapping):
            keys = list(s)
            w = np.asarray([float(s[k]) for k in keys])
            return str(keys[int(self.rng.choice(len(keys), p=w / w.sum()))])
        return str(s[int(self.rng.integers(len(s)))])

    def b(self, name: str, default: bool | float) -> bool:
        s = self._get(name, default)
        if isinstance(s, bool):
            return s
        return bool(self.rng.random() < float(s))

    def u(self, lo: float, hi: float) -> float:
        """An unnamed random number (shape jitter)."""
        return float(self.rng.uniform(lo, hi))


def make_design(obj: ObjectType, rng: np.random.Generator) -> Design:
    """A random design of ``obj`` (deterministic given the generator state)."""
    from priorsight.corpus.synth.families import FAMILIES, decorate

    try:
        builder = FAMILIES[obj.family]
    except KeyError as exc:
        raise CatalogError(f"unknown family {obj.family!r}") from exc
    params = Params(rng, obj.params)
    design = builder(params, obj.name)
    # surface detail: plain to ornate designs of every type ("detail" overrides the range)
    design = decorate(design, rng, params.i("detail", {0: 0.1, 1: 0.3, 2: 0.35, 3: 0.25}))
    bad = [p for p in design.prims if not np.all(np.isfinite(p.matrix)) or not np.all(np.isfinite(p.offset))]
    if bad or not math.isfinite(float(design.hull().sum())):
        raise ValueError(f"design of {obj.name!r} has non-finite geometry")
    return design
