"""Parametric solids for synthetic designs: cone segments (cylinders, frusta, tubes, discs,
revolved profiles), ellipsoids (spheres, domes) and convex polyhedra (boxes, prisms, wedges).

Every primitive lives in its own local frame and is placed by an affine map
``world = matrix @ local + offset``. The renderer ray-casts primitives analytically in their local
frames (:mod:`priorsight.corpus.synth.render`), so solids stay exact at any resolution.

World convention: ``z`` is up, the front of an object faces ``-y``, its right side ``+x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

Vec = Sequence[float]

CONE, ELLIPSOID, CONVEX = "cone", "ellipsoid", "convex"


@dataclass(frozen=True)
class Primitive:
    """One solid. ``params`` depend on ``kind``:

    * ``cone``: ``(h, r0, r1, ri0, ri1)``: the local solid between ``z=0`` and ``z=h`` with outer
      radius ``r0 -> r1`` and (when ``ri0, ri1 > 0``) a coaxial hole of radius ``ri0 -> ri1``;
    * ``ellipsoid``: ``(zclip,)``: the unit ball, cut below local ``z=zclip`` (``-1``: whole);
    * ``convex``: ``planes`` ``(K, 4)`` rows ``(nx, ny, nz, d)`` meaning ``n . x <= d``.

    ``hull`` holds local points whose images bound the solid's image (for framing and culling).
    ``part`` is the index of the design part the primitive belongs to.
    """

    kind: str
    matrix: np.ndarray
    offset: np.ndarray
    params: tuple[float, ...] = ()
    planes: np.ndarray | None = None
    hull: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    part: int = 0

    def world_hull(self) -> np.ndarray:
        return self.hull @ self.matrix.T + self.offset

    def moved(self, delta: Vec) -> Primitive:
        return replace(self, offset=self.offset + np.asarray(delta, dtype=np.float64))

    def with_part(self, part: int) -> Primitive:
        return replace(self, part=part)

    def transformed(self, rot: np.ndarray, shift: Vec = (0.0, 0.0, 0.0)) -> Primitive:
        """The primitive moved by ``x -> rot @ x + shift``."""
        return replace(self, matrix=rot @ self.matrix, offset=rot @ self.offset + np.asarray(shift, dtype=np.float64))


# -- frames -------------------------------------------------------------------------------------

def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def frame_along(axis: Vec, roll: float = 0.0) -> np.ndarray:
    """A rotation whose third column is ``axis`` (normalised)."""
    z = np.asarray(axis, dtype=np.float64)
    n = np.linalg.norm(z)
    if n < 1e-12:
        raise ValueError("axis must be non-zero")
    z = z / n
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z], axis=1)
    return r @ rot_z(roll) if roll else r


def _circle_hull(h: float, r0: float, r1: float, n: int = 12) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(a), np.sin(a)
    bottom = np.stack([r0 * c, r0 * s, np.zeros(n)], axis=1)
    top = np.stack([r1 * c, r1 * s, np.full(n, h)], axis=1)
    # a circle's image is bounded by its inscribed 12-gon / cos(15 deg)
    return np.concatenate([bottom, top]) / math.cos(math.pi / n)


# -- constructors -------------------------------------------------------------------------------

def frustum(p0: Vec, p1: Vec, r0: float, r1: float | None = None, ri0: float = 0.0, ri1: float | None = None,
            squash: float = 1.0, roll: float = 0.0, part: int = 0) -> Primitive:
    """A cone segment from point ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``), hollow when
    ``ri0``/``ri1`` > 0; ``squash`` < 1 flattens the cross-section to an ellipse."""
    r1 = r0 if r1 is None else r1
    ri1 = ri0 if ri1 is None else ri1
    p0 = np.asarray(p0, dtype=np.float64)
    axis = np.asarray(p1, dtype=np.float64) - p0
    h = float(np.linalg.norm(axis))
    if h <= 1e-9:
        raise ValueError("frustum needs two distinct points")
    if min(r0, r1) < 0 or max(r0, r1) <= 0:
        raise ValueError(f"frustum radii must be >= 0 and not both 0: {r0}, {r1}")
    ri0, ri1 = max(0.0, min(ri0, r0 * 0.999)), max(0.0, min(ri1, r1 * 0.999))
    m = frame_along(axis, roll) @ np.diag([1.0, squash, 1.0])
    return Primitive(CONE, m, p0, (h, float(r0), float(r1), float(ri0), float(ri1)),
                     hull=_circle_hull(h, r0, r1), part=part)


def cylinder(p0: Vec, p1: Vec, r: float, ri: float = 0.0, squash: float = 1.0, part: int = 0) -> Primitive:
    return frustum(p0, p1, r, r, ri, ri, squash=squash, part=part)


def disc_z(z0: float, z1: float, r0: float, r1: float | None = None, ri: float = 0.0,
           center: Vec = (0.0, 0.0), part: int = 0) -> Primitive:
    """A vertical cone segment between heights ``z0 < z1`` centred on ``center`` (x, y)."""
    return frustum((center[0], center[1], z0), (center[0], center[1], z1), r0, r1, ri, ri, part=part)


def ellipsoid(center: Vec, radii: Vec, rot: np.ndarray | None = None, zclip: float = -1.0,
              part: int = 0) -> Primitive:
    """An ellipsoid; ``zclip`` in (-1, 1) keeps the local part above that height (a dome)."""
    if min(radii) <= 0:
        raise ValueError(f"ellipsoid radii must be > 0: {radii}")
    m = (np.eye(3) if rot is None else rot) @ np.diag([float(r) for r in radii])
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts = []
    lats = [z for z in np.sin(np.linspace(-np.pi / 2, np.pi / 2, 9)) if z > zclip] + ([zclip] if zclip > -1 else [])
    for zz in lats:
        rr = math.sqrt(max(0.0, 1 - zz * zz))
        pts.append(np.stack([rr * np.cos(a), rr * np.sin(a), np.full(12, zz)], axis=1))
    hull = np.concatenate(pts) / math.cos(math.pi / 12)
    return Primitive(ELLIPSOID, m, np.asarray(center, dtype=np.float64), (float(zclip),),
                     hull=hull, part=part)


def sphere(center: Vec, r: float, part: int = 0) -> Primitive:
    return ellipsoid(center, (r, r, r), part=part)


def convex(vertices: np.ndarray, planes: np.ndarray, matrix: np.ndarray | None = None,
           offset: Vec = (0.0, 0.0, 0.0), part: int = 0) -> Primitive:
    return Primitive(CONVEX, np.eye(3) if matrix is None else matrix, np.asarray(offset, dtype=np.float64),
                     planes=np.asarray(planes, dtype=np.float64), hull=np.asarray(vertices, dtype=np.float64),
                     part=part)


def box(center: Vec, size: Vec, rot: np.ndarray | None = None, part: int = 0) -> Primitive:
    """An axis-aligned box of ``size`` (x, y, z) around ``center`` (rotated by ``rot``)."""
    sx, sy, sz = (float(s) / 2 for s in size)
    if min(sx, sy, sz) <= 0:
        raise ValueError(f"box size must be > 0: {size}")
    planes = np.array([[1, 0, 0, sx], [-1, 0, 0, sx], [0, 1, 0, sy], [0, -1, 0, sy], [0, 0, 1, sz], [0, 0, -1, sz]],
                      dtype=np.float64)
    verts = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)])
    return convex(verts, planes, rot, center, part)


def prism(polygon: np.ndarray, z0: float, z1: float, top_scale: float = 1.0, rot: np.ndarray | None = None,
          offset: Vec = (0.0, 0.0, 0.0), part: int = 0) -> Primitive:
    """A convex polygon (counter-clockwise, (n, 2), around the origin) extruded from local ``z0``
    to ``z1``; ``top_scale`` != 1 tapers it (a pyramid frustum)."""
    poly = np.asarray(polygon, dtype=np.float64)
    if len(poly) < 3 or z1 <= z0:
        raise ValueError("prism needs >= 3 polygon points and z1 > z0")
    h = z1 - z0
    planes = [[0, 0, 1, z1], [0, 0, -1, -z0]]
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        e = b - a
        nrm = np.array([e[1], -e[0]])
        nrm /= np.linalg.norm(nrm)
        d0 = float(nrm @ a)  # distance of the edge line at z0
        # at z1 the edge moves to distance d0 * top_scale: plane n.xy + k z = d
        k = (d0 - d0 * top_scale) / h
        v = np.array([nrm[0], nrm[1], k])
        ln = np.linalg.norm(v)
        planes.append([v[0] / ln, v[1] / ln, v[2] / ln, (d0 + k * z0) / ln])
    verts = np.concatenate([np.c_[poly, np.full(n, z0)], np.c_[poly * top_scale, np.full(n, z1)]])
    return convex(verts, np.asarray(planes), rot, offset, part)


def regular_polygon(n: int, r: float, phase: float = 0.0, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    a = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([r * sx * np.cos(a), r * sy * np.sin(a)], axis=1)


def rounded_box(center: Vec, size: Vec, radius: float, rot: np.ndarray | None = None, part: int = 0) -> list[Primitive]:
    """A box whose vertical edges are rounded with ``radius`` (two boxes and four cylinders)."""
    sx, sy, sz = (float(s) for s in size)
    r = min(radius, 0.49 * sx, 0.49 * sy)
    if r <= 1e-6:
        return [box(center, size, rot, part)]
    c = np.asarray(center, dtype=np.float64)
    rot = np.eye(3) if rot is None else rot
    out = [box(c, (sx - 2 * r, sy, sz), rot, part), box(c, (sx, sy - 2 * r, sz), rot, part)]
    for ix in (-1, 1):
        for iy in (-1, 1):
            local = np.array([ix * (sx / 2 - r), iy * (sy / 2 - r), 0.0])
            p = c + rot @ local
            zax = rot @ np.array([0, 0, sz / 2])
            out.append(cylinder(p - zax, p + zax, r, part=part))
    return out


def tube_path(points: Sequence[Vec], r: float, part: int = 0, joints: bool = True) -> list[Primitive]:
    """A round bar along a polyline (handles, bent pipes, frames): cylinders plus ball joints."""
    pts = [np.asarray(p, dtype=np.float64) for p in points]
    out: list[Primitive] = []
    for a, b in zip(pts[:-1], pts[1:]):
        if np.linalg.norm(b - a) > 1e-9:
            out.append(cylinder(a, b, r, part=part))
    if joints:
        out += [sphere(p, r, part=part) for p in pts[1:-1]]
    return out


def arc_points(center: Vec, radius: float, a0: float, a1: float, n: int, u: Vec = (1, 0, 0),
               v: Vec = (0, 0, 1), rx: float | None = None) -> list[np.ndarray]:
    """Points on an (elliptic) arc in the plane spanned by ``u`` and ``v``."""
    c, u, v = (np.asarray(x, dtype=np.float64) for x in (center, u, v))
    rx = radius if rx is None else rx
    return [c + rx * math.cos(a) * u + radius * math.sin(a) * v for a in np.linspace(a0, a1, n)]


def lathe(profile: Sequence[tuple[float, float]], inner: float = 0.0, floor: float | None = None,
          base: Vec = (0.0, 0.0, 0.0), axis: Vec = (0.0, 0.0, 1.0), squash: float = 1.0,
          part: int = 0) -> list[Primitive]:
    """A solid of revolution from ``profile`` [(height, radius), ...] (heights increasing).

    With ``inner`` > 0 the solid is a vessel open at the top: walls ``inner`` thick above the
    height ``floor`` (default: 8 % of the height), solid below.
    """
    if len(profile) < 2:
        raise ValueError("a lathe profile needs at least two points")
    base = np.asarray(base, dtype=np.float64)
    ax = np.asarray(axis, dtype=np.float64)
    ax = ax / np.linalg.norm(ax)
    zs = [float(z) for z, _ in profile]
    if any(b <= a for a, b in zip(zs[:-1], zs[1:])):
        raise ValueError(f"lathe profile heights must increase: {zs}")
    if inner > 0 and floor is None:
        floor = zs[0] + 0.08 * (zs[-1] - zs[0])
    segs: list[tuple[float, float, float, float]] = []
    for (za, ra), (zb, rb) in zip(profile[:-1], profile[1:]):
        if inner > 0 and za < floor < zb:  # split at the floor
            rf = ra + (rb - ra) * (floor - za) / (zb - za)
            segs += [(za, floor, ra, rf), (floor, zb, rf, rb)]
        else:
            segs.append((za, zb, ra, rb))
    out = []
    for za, zb, ra, rb in segs:
        hollow = inner > 0 and za >= floor - 1e-9
        ri0 = max(ra - inner, 0.0) if hollow else 0.0
        ri1 = max(rb - inner, 0.0) if hollow else 0.0
        if max(ra, rb) <= 1e-6:
            continue
        out.append(frustum(base + za * ax, base + zb * ax, max(ra, 1e-4), max(rb, 1e-4),
                           ri0, ri1, squash=squash, part=part))
    return out


def smooth_profile(stations: Sequence[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    """Resample control points (height, radius) with a monotone-friendly cubic into ``n`` segments."""
    st = np.asarray(stations, dtype=np.float64)
    z = st[:, 0]
    r = st[:, 1]
    zz = np.linspace(z[0], z[-1], n + 1)
    # Catmull-Rom on the index parameter, evaluated by height through linear search
    t = np.interp(zz, z, np.arange(len(z)))
    i = np.clip(np.floor(t).astype(int), 0, len(z) - 2)
    f = t - i
    p0 = r[np.clip(i - 1, 0, len(r) - 1)]
    p1 = r[i]
    p2 = r[i + 1]
    p3 = r[np.clip(i + 2, 0, len(r) - 1)]
    rr = 0.5 * ((2 * p1) + (-p0 + p2) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f ** 2 + (-p0 + 3 * p1 - 3 * p2 + p3) * f ** 3)
    lo = np.minimum(p1, p2)
    hi = np.maximum(p1, p2)
    rr = np.clip(rr, lo - 0.15 * (hi - lo + 1e-9), hi + 0.15 * (hi - lo + 1e-9))
    return [(float(a), float(max(b, 1e-3))) for a, b in zip(zz, rr)]


# -- designs ------------------------------------------------------------------------------------

PATTERN_KINDS = ("dots", "slots", "grid", "stripes", "rings", "ticks", "rect", "circle")
PATTERN_SURFACES = ("plane", "cylinder", "triplanar")


@dataclass(frozen=True)
class SurfacePattern:
    """Decoration printed/embossed on a part's surface and drawn as outlines: grilles, vents,
    panels, dials. Coordinates: on a plane through ``origin`` spanned by unit ``u``, ``v``
    (``surface="plane"``), or on a cylinder around the axis through ``origin`` along ``v`` with
    ``u`` the zero-angle direction (``surface="cylinder"``, first coordinate is arc length), or
    on every face of the part, projected along the face's dominant normal axis
    (``surface="triplanar"``: a surface finish such as knurling or perforation; no extent).

    ``extent`` (eu, ev) bounds the pattern from the origin (``rings``/``ticks``/``circle``: centred
    on the origin, ``extent[0]`` is the outer radius); ``pitch`` (pu, pv) is the spacing and
    ``size`` the feature size (dot radius, slot height, line width, ring width).
    """

    part: int
    kind: str
    origin: tuple[float, float, float]
    u: tuple[float, float, float]
    v: tuple[float, float, float]
    extent: tuple[float, float]
    pitch: tuple[float, float] = (0.1, 0.1)
    size: float = 0.03
    surface: str = "plane"
    count: int = 12  # ticks

    def __post_init__(self) -> None:
        if self.kind not in PATTERN_KINDS:
            raise ValueError(f"pattern kind must be one of {PATTERN_KINDS}, got {self.kind!r}")
        if self.surface not in PATTERN_SURFACES:
            raise ValueError(f"pattern surface must be one of {PATTERN_SURFACES}, got {self.surface!r}")


@dataclass(frozen=True)
class Part:
    """A named part of a design. Unclaimed parts are drawn in broken lines (environment)."""

    name: str
    claimed: bool = True
    explode: tuple[float, float, float] = (0.0, 0.0, 0.0)  # offset in an exploded view
    shaded: bool = True


@dataclass(frozen=True)
class Design:
    """One 3-D design: parts, the solids that make them, and surface decorations."""

    object_type: str
    parts: tuple[Part, ...]
    prims: tuple[Primitive, ...]
    patterns: tuple[SurfacePattern, ...] = ()
    detail_anchor: tuple[float, float, float] | None = None  # centre of an enlarged detail view

    @property
    def explodable(self) -> bool:
        return any(any(abs(c) > 0 for c in p.explode) for p in self.parts)

    def exploded(self, amount: float = 1.0) -> Design:
        prims = tuple(pr.moved(np.asarray(self.parts[pr.part].explode) * amount) for pr in self.prims)
        pats = tuple(replace(pt, origin=tuple(np.asarray(pt.origin) + np.asarray(self.parts[pt.part].explode) * amount))
                     for pt in self.patterns)
        return replace(self, prims=prims, patterns=pats)

    def hull(self) -> np.ndarray:
        return np.concatenate([p.world_hull() for p in self.prims])


class DesignBuilder:
    """Collects parts, primitives and patterns while a family builder assembles a design."""

    def __init__(self, object_type: str):
        self.object_type = object_type
        self.parts: list[Part] = []
        self.prims: list[Primitive] = []
        self.patterns: list[SurfacePattern] = []
        self.detail_anchor: tuple[float, float, float] | None = None

    def part(self, name: str, claimed: bool = True, explode: Vec = (0.0, 0.0, 0.0), shaded: bool = True) -> int:
        self.parts.append(Part(name, claimed, tuple(float(x) for x in explode), shaded))
        return len(self.parts) - 1

    def add(self, part: int, *prims: Primitive | Sequence[Primitive]) -> None:
        for p in prims:
            if isinstance(p, Primitive):
                self.prims.append(p.with_part(part))
            else:
                self.prims.extend(q.with_part(part) for q in p)

    def pattern(self, part: int, kind: str, origin: Vec, u: Vec, v: Vec, extent: tuple[float, float],
                pitch: tuple[float, float] = (0.1, 0.1), size: float = 0.03, surface: str = "plane",
                count: int = 12) -> None:
        def unit(x: Vec) -> tuple[float, float, float]:
            a = np.asarray(x, dtype=np.float64)
            a = a / np.linalg.norm(a)
            return (float(a[0]), float(a[1]), float(a[2]))

        self.patterns.append(SurfacePattern(part, kind, tuple(float(c) for c in origin), unit(u), unit(v),
                                            (float(extent[0]), float(extent[1])),
                                            (float(pitch[0]), float(pitch[1])), float(size), surface, int(count)))

    def transform(self, rot: np.ndarray, shift: Vec = (0.0, 0.0, 0.0)) -> None:
        """Move everything built so far by ``x -> rot @ x + shift`` (e.g. lay an object down)."""
        sh = np.asarray(shift, dtype=np.float64)
        self.prims = [p.transformed(rot, sh) for p in self.prims]

        def tr(x, move=True):
            y = rot @ np.asarray(x, dtype=np.float64) + (sh if move else 0.0)
            return (float(y[0]), float(y[1]), float(y[2]))

        self.patterns = [replace(pt, origin=tr(pt.origin), u=tr(pt.u, False), v=tr(pt.v, False)) for pt in self.patterns]
        self.parts = [replace(pt, explode=tr(pt.explode, False)) for pt in self.parts]
        if self.detail_anchor is not None:
            self.detail_anchor = tr(self.detail_anchor)

    def build(self) -> Design:
        if not self.prims:
            raise ValueError(f"design {self.object_type!r} has no solids")
        return Design(self.object_type, tuple(self.parts), tuple(self.prims), tuple(self.patterns),
                      self.detail_anchor)
