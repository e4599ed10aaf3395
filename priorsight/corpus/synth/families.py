"""Design families: parametric builders that assemble a :class:`Design` from solids.

Each builder takes :class:`~priorsight.corpus.synth.designs.Params` (the object type's parameter
spec from ``object_types.yaml`` over the defaults written here) and the object name. Units are
arbitrary (about 1 = the object's size); ``z`` is up and the front faces ``-y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from priorsight.corpus.synth.designs import Params
from priorsight.corpus.synth.geometry import (
    Design,
    DesignBuilder,
    arc_points,
    box,
    cylinder,
    disc_z,
    ellipsoid,
    frame_along,
    frustum,
    lathe,
    prism,
    regular_polygon,
    rot_x,
    rot_y,
    rot_z,
    rounded_box,
    smooth_profile,
    sphere,
    tube_path,
)

PI = math.pi


def _interp_r(profile: list[tuple[float, float]], z: float) -> float:
    zs = [a for a, _ in profile]
    rs = [b for _, b in profile]
    return float(np.interp(z, zs, rs))


# -- revolved objects ----------------------------------------------------------------------------

def _stations(kind: str, p: Params) -> list[tuple[float, float]]:
    j = p.u
    if kind == "cylinder":
        t = j(-0.08, 0.08)
        return [(0, 1 - abs(t)), (1, 1 - abs(t) + t)]
    if kind == "taper":
        lo = j(0.55, 0.85)
        return [(0, lo), (1, 1.0)] if p.rng.random() < 0.7 else [(0, 1.0), (1, lo)]
    if kind == "barrel":
        e = j(0.72, 0.9)
        return [(0, e), (0.25, 0.95), (0.5, 1.0), (0.75, 0.95), (1, e + j(-0.05, 0.05))]
    if kind == "tulip":
        return [(0, j(0.5, 0.65)), (0.35, j(0.8, 0.9)), (0.7, 1.0), (1, j(0.85, 1.0))]
    if kind == "bulb":
        nk = j(0.3, 0.45)
        return [(0, j(0.5, 0.65)), (0.15, 0.85), (j(0.35, 0.45), 1.0), (0.7, j(0.6, 0.7)), (0.85, nk), (1, nk + j(0.0, 0.15))]
    if kind == "vase":
        nk = j(0.3, 0.5)
        zb = j(0.25, 0.5)
        return [(0, j(0.45, 0.6)), (zb * 0.4, j(0.7, 0.85)), (zb, 1.0), (zb + (0.8 - zb) * 0.6, j(0.55, 0.75)),
                (0.8, nk), (0.92, nk), (1, nk + j(0.1, 0.3))]
    if kind == "bottle":
        zs = j(0.5, 0.7)
        nk = j(0.28, 0.42)
        return [(0, 0.95), (0.04, 1.0), (zs, 1.0), (zs + 0.08, 0.88), (zs + 0.16, 0.6), (zs + 0.24, nk),
                (1, nk)]
    if kind == "bowl":
        return [(0, j(0.4, 0.55)), (0.1, j(0.5, 0.6)), (0.45, j(0.82, 0.9)), (1, 1.0)]
    if kind == "plate":
        return [(0, j(0.5, 0.65)), (0.3, j(0.68, 0.75)), (0.5, j(0.86, 0.9)), (1, 1.0)]
    if kind == "hourglass":
        w = j(0.5, 0.7)
        return [(0, 1.0), (0.25, 0.5 * (1 + w)), (0.5, w), (0.75, 0.5 * (1 + w)), (1, j(0.85, 1.0))]
    if kind == "cone":
        return [(0, 1.0), (1, j(0.2, 0.45))]
    if kind == "dome":
        return [(0, 1.0), (0.4, 0.97), (0.7, 0.8), (0.9, 0.5), (1, j(0.05, 0.25))]
    if kind == "capsule":
        return [(0, 0.15), (0.03, 0.6), (0.1, 0.92), (0.18, 1.0), (0.82, 1.0), (0.9, 0.92), (0.97, 0.6), (1, 0.15)]
    if kind == "lightbulb":
        return [(0, 0.32), (0.08, 0.34), (0.25, 0.55), (0.5, 0.95), (0.65, 1.0), (0.8, 0.92), (0.93, 0.6), (1, 0.12)]
    if kind == "abutment":
        return [(0, 0.35), (0.38, 0.42), (0.42, 0.72), (0.5, j(0.78, 0.9)), (0.55, 0.6), (1, j(0.3, 0.45))]
    if kind == "top":
        return [(0, 0.03), (0.25, 0.5), (0.48, 0.95), (0.55, 1.0), (0.6, 0.7), (0.65, 0.15), (1, 0.12)]
    if kind == "knob":
        return [(0, 0.45), (0.35, 0.42), (0.55, 0.75), (0.8, 1.0), (0.92, 0.9), (1, 0.55)]
    if kind == "bell":
        return [(0, 1.0), (0.15, 0.8), (0.45, 0.55), (0.8, 0.42), (1, 0.2)]
    raise ValueError(f"unknown revolved profile kind {kind!r}")


SMOOTH_KINDS = frozenset({"barrel", "tulip", "bulb", "vase", "bowl", "hourglass", "dome", "lightbulb", "bell",
                          "plate", "capsule"})


def _profile(kind: str, p: Params, height: float, radius: float, segments: int) -> list[tuple[float, float]]:
    st = [(zf * height, rf * radius) for zf, rf in _stations(kind, p)]
    return smooth_profile(st, segments) if kind in SMOOTH_KINDS else [(float(z), float(r)) for z, r in st]


def _handle_points(style: str, prof, za: float, zb: float, reach: float, thick: float) -> list:
    xa, xb = _interp_r(prof, za) - thick * 0.5, _interp_r(prof, zb) - thick * 0.5
    xo = max(xa, xb) + reach
    if style == "c":
        zc, ry = 0.5 * (za + zb), 0.5 * (za - zb)
        pts = arc_points((max(xa, xb), 0, zc), ry, -PI / 2, PI / 2, 7, rx=reach)
        return [np.array([xb, 0, zb])] + pts[1:-1] + [np.array([xa, 0, za])]
    if style == "square":
        return [(xa, 0, za), (xo, 0, za), (xo, 0, zb), (xb, 0, zb)]
    # "d": straight top, curved outer side
    pts = arc_points((xo - reach * 0.5, 0, 0.5 * (za + zb)), 0.5 * (za - zb), PI / 2, -PI / 2, 6, rx=reach * 0.5)
    return [np.array([xa, 0, za])] + pts + [np.array([xb, 0, zb])]


def vessel(p: Params, name: str) -> Design:
    """Revolved objects: cups, vases, bottles, jars, speakers, bulbs, capsules, knobs ..."""
    b = DesignBuilder(name)
    height = p.f("height", (0.8, 1.2))
    radius = p.f("radius", (0.3, 0.5))
    kind = p.c("profile", ["cylinder", "taper", "barrel"])
    prof = _profile(kind, p, height, radius, p.i("segments", 8))
    is_open = p.b("open", False)
    wall = radius * p.f("wall", (0.06, 0.12))
    squash = p.f("squash", 1.0)
    facets = p.i("facets", 0)
    top_r = prof[-1][1]
    body = b.part("body")
    if p.b("split", False):  # two shells meeting at a seam (capsule, lipstick cap)
        zs = height * p.u(0.4, 0.6)
        lower = [q for q in prof if q[0] < zs] + [(zs, _interp_r(prof, zs))]
        upper = [(zs, _interp_r(prof, zs))] + [q for q in prof if q[0] > zs]
        b.add(body, lathe(lower, squash=squash))
        cap = b.part("cap", explode=(0, 0, 0.45 * height))
        b.add(cap, lathe(upper, squash=squash))
    elif facets >= 3:
        poly = regular_polygon(facets, radius / math.cos(PI / facets), PI / facets)
        zt = prof[-1][0] if kind in ("cylinder", "taper") else height * p.u(0.6, 0.8)
        scale = _interp_r(prof, zt) / max(prof[0][1], 1e-6)
        b.add(body, prism(poly * (prof[0][1] / radius), 0.0, zt, top_scale=scale))
        if zt < height - 1e-6:
            nr = radius * p.u(0.2, 0.35)
            b.add(body, cylinder((0, 0, zt), (0, 0, height), nr, ri=nr - wall if is_open else 0.0))
            top_r = nr
    else:
        b.add(body, lathe(prof, inner=wall if is_open else 0.0, squash=squash))
    if p.b("foot", 0.15):
        fr = prof[0][1] * p.u(0.85, 1.15)
        fh = height * p.u(0.03, 0.07)
        b.add(body, disc_z(-fh, 0.0, fr, fr * p.u(0.9, 1.0)))
    if p.b("stem", False):
        sh = height * p.f("stem_height", (0.4, 0.9))
        fr = radius * p.u(0.6, 1.0)
        b.add(body, cylinder((0, 0, -sh), (0, 0, 0.001), radius * p.u(0.08, 0.16)))
        b.add(body, disc_z(-sh - height * 0.05, -sh, fr, fr * p.u(0.6, 0.95)))
        if p.b("drip_pan", 0.0):
            b.add(body, disc_z(height * 0.02, height * 0.05, radius * 1.4, radius * 1.5))
    if p.b("rim", 0.25):
        e = radius * p.u(0.04, 0.08)
        rh = height * p.u(0.025, 0.05)
        b.add(body, frustum((0, 0, height - rh), (0, 0, height), top_r + e, top_r + e,
                            top_r - wall if is_open else 0.0, top_r - wall if is_open else None))
    for _ in range(p.i("bands", 0)):
        z = height * p.u(0.15, 0.85)
        r = _interp_r(prof, z)
        bh = height * p.u(0.015, 0.04)
        b.add(body, frustum((0, 0, z), (0, 0, z + bh), r * 1.04, r * 1.04, r - wall * 0.5 if is_open else 0.0))
    if p.b("handle", 0.0):
        hp = b.part("handle")
        thick = radius * p.f("handle_thickness", (0.06, 0.12))
        za, zb = height * p.u(0.6, 0.85), height * p.u(0.12, 0.35)
        pts = _handle_points(p.c("handle_style", ["c", "d", "square"]), prof, za, zb,
                             radius * p.f("handle_reach", (0.3, 0.6)), thick)
        b.add(hp, tube_path(pts, thick * 0.5))
    if p.b("ears", 0.0):
        hp = b.part("handles")
        za = height * p.u(0.65, 0.85)
        for sgn in (-1, 1):
            x = sgn * (_interp_r(prof, za) - 0.01)
            pts = arc_points((x, 0, za), height * 0.08, -PI / 2, PI / 2, 5, u=(sgn, 0, 0), rx=radius * 0.25)
            b.add(hp, tube_path(pts, radius * 0.035))
    if p.b("spout", 0.0):
        sp = b.part("spout")
        z0 = height * p.u(0.2, 0.4)
        x0 = -_interp_r(prof, z0) * 0.85
        tip = (x0 - radius * p.u(0.45, 0.7), 0.0, height * p.u(0.7, 0.95))
        b.add(sp, frustum((x0, 0, z0), tip, radius * p.u(0.15, 0.22), radius * p.u(0.05, 0.09)))
    if p.b("long_handle", 0.0):
        hp = b.part("handle")
        ln = radius * p.u(1.4, 2.2)
        zh = height * p.u(0.75, 0.95)
        tilt = p.u(0.0, 0.35)
        c = np.array([top_r + ln / 2 * math.cos(tilt) - 0.02, 0.0, zh + ln / 2 * math.sin(tilt)])
        b.add(hp, box(c, (ln, radius * p.u(0.12, 0.2), height * 0.05), rot_y(-tilt)))
        if p.b("handle_hole", 0.5):
            b.pattern(hp, "circle", c + rot_y(-tilt) @ np.array([ln * 0.35, 0, height * 0.025]), rot_y(-tilt) @ np.array([1.0, 0, 0]),
                      (0, 1, 0), (radius * 0.045, 0))
    if p.b("lid", 0.0):
        lp = b.part("lid", explode=(0, 0, height * 0.35))
        lh = height * p.u(0.04, 0.09)
        lr = top_r * p.u(1.02, 1.08)
        b.add(lp, disc_z(height, height + lh, lr, lr * p.u(0.75, 1.0)))
        if p.b("lid_dome", 0.4):
            b.add(lp, ellipsoid((0, 0, height + lh), (lr * 0.8, lr * 0.8, lh * p.u(1.0, 3.0)), zclip=0.0))
        if p.b("knob", 0.6):
            kr = radius * p.u(0.07, 0.14)
            b.add(lp, sphere((0, 0, height + lh + kr * 0.8), kr) if p.rng.random() < 0.5 else
                  disc_z(height + lh, height + lh + kr * 1.6, kr * 0.6, kr))
    if p.b("cap", 0.0):
        cp = b.part("cap", explode=(0, 0, height * 0.3))
        ch = height * p.f("cap_height", (0.08, 0.18))
        cr = top_r * p.u(1.05, 1.3)
        b.add(cp, disc_z(height, height + ch, cr, cr * p.u(0.9, 1.0)))
        if p.b("cap_ribs", 0.5):
            b.pattern(cp, "grid", (0, 0, height + ch * 0.1), (0, -1, 0), (0, 0, 1), (2 * PI * cr, ch * 0.8),
                      (cr * 0.2, ch * 10), cr * 0.015, surface="cylinder")
        if p.b("cap_dome", 0.3):
            b.add(cp, ellipsoid((0, 0, height + ch), (cr * 0.9, cr * 0.9, ch * 0.6), zclip=0.0))
    if p.b("grille", 0.0):
        z0 = height * p.u(0.05, 0.15)
        pitch = radius * p.u(0.08, 0.14)
        b.pattern(body, p.c("grille_kind", ["dots", "slots"]), (0, 0, z0), (0, -1, 0), (0, 0, 1),
                  (2 * PI * radius * 0.97, height * p.u(0.5, 0.75)), (pitch, pitch), pitch * 0.3, surface="cylinder")
    if p.b("top_ring", 0.0):
        b.pattern(body, "rings", (0, 0, height), (1, 0, 0), (0, 1, 0), (top_r * p.u(0.5, 0.85), 0),
                  (top_r * p.u(0.2, 0.4), 0), top_r * 0.02)
    for i in range(p.i("top_buttons", 0)):
        a = 2 * PI * i / 4 + PI / 4
        rr = top_r * 0.55
        b.add(body, disc_z(height, height + height * 0.02, top_r * 0.08, center=(rr * math.cos(a), rr * math.sin(a))))
    if p.b("threads", 0.0):
        zt = height * 0.38
        b.pattern(body, "slots", (0, 0, height * 0.02), (0, -1, 0), (0, 0, 1), (2 * PI * radius, zt - height * 0.04),
                  (radius * 0.3, height * 0.04), height * 0.012, surface="cylinder")
    if p.b("screw_base", 0.0):
        bp = b.part("base")
        bh = height * p.u(0.18, 0.28)
        br = prof[0][1] * p.u(0.9, 1.0)
        b.add(bp, disc_z(-bh, 0.0, br))
        b.add(bp, disc_z(-bh - height * 0.05, -bh, br * 0.5, br * 0.25))
        b.pattern(bp, "slots", (0, 0, -bh + 0.01), (0, -1, 0), (0, 0, 1), (2 * PI * br, bh * 0.9),
                  (br * 0.5, bh / p.i("thread_turns", (3, 5))), height * 0.012, surface="cylinder")
    if p.b("switch", 0.0):  # flashlight button
        b.add(body, box((0, -radius * 0.92, height * 0.55), (radius * 0.25, radius * 0.2, height * 0.08)))
    if p.b("saucer", 0.0):
        sp = b.part("saucer")
        sr = prof[0][1] * p.u(1.3, 1.7)
        b.add(sp, disc_z(-height * 0.06, 0.0, sr * 0.8, sr))
    b.detail_anchor = (0.0, 0.0, height * 0.95)
    if p.b("horizontal", False):
        b.transform(rot_y(PI / 2) @ rot_z(p.u(-0.3, 0.3)))
    return b.build()


# -- lamps ------------------------------------------------------------------------------------------

def _shade(b: DesignBuilder, part: int, p: Params, z0: float, radius: float, height: float) -> None:
    kind = p.c("shade", ["drum", "cone", "bell", "dome"])
    wall = radius * 0.04
    if kind == "drum":
        prof = [(0.0, radius), (height, radius * p.u(0.9, 1.0))]
    elif kind == "cone":
        prof = [(0.0, radius), (height, radius * p.u(0.4, 0.7))]
    elif kind == "bell":
        prof = smooth_profile([(0, radius), (height * 0.3, radius * 0.75), (height * 0.7, radius * 0.5),
                               (height, radius * 0.35)], 7)
    else:
        prof = smooth_profile([(0, radius), (height * 0.4, radius * 0.92), (height * 0.8, radius * 0.55),
                               (height, radius * 0.12)], 7)
    prof = [(z + z0, r) for z, r in prof]
    b.add(part, lathe(prof, inner=wall, floor=-1e9))


def lamp(p: Params, name: str) -> Design:
    """Table, floor, pendant and desk lamps: base + stem/arm + shade."""
    b = DesignBuilder(name)
    style = p.c("style", ["table"])
    base = b.part("base")
    shade = b.part("shade", explode=(0, 0, 0.3))
    if style == "pendant":
        cord = p.f("cord", (0.4, 1.0))
        sr = p.f("shade_radius", (0.25, 0.45))
        sh = sr * p.u(0.6, 1.3)
        _shade(b, shade, p, 0.0, sr, sh)
        b.add(base, cylinder((0, 0, sh - 0.01), (0, 0, sh + cord), 0.012))
        b.add(base, disc_z(sh + cord, sh + cord + 0.04, sr * 0.35, sr * 0.3))
        if p.b("bulb", 0.5):
            b.add(shade, sphere((0, 0, sh * 0.25), sr * 0.25))
        b.detail_anchor = (0.0, 0.0, sh)
        return b.build()
    if style == "desk":
        br = p.f("base_radius", (0.15, 0.25))
        b.add(base, disc_z(0, 0.04, br, br * 0.9) if p.rng.random() < 0.6 else box((0, 0, 0.02), (br * 2, br * 1.5, 0.04)))
        l1, l2 = p.u(0.35, 0.55), p.u(0.3, 0.5)
        a1, a2 = p.u(0.1, 0.5), p.u(1.2, 1.9)
        j1 = np.array([0, 0, 0.04])
        j2 = j1 + l1 * np.array([math.sin(a1), 0, math.cos(a1)])
        j3 = j2 + l2 * np.array([math.sin(a2), 0, math.cos(a2)])
        arm = b.part("arm")
        b.add(arm, tube_path([j1, j2, j3], 0.015))
        b.add(arm, sphere(j2, 0.03))
        hr = p.u(0.08, 0.14)
        b.add(shade, lathe([(0, hr), (hr * 1.2, hr * 0.45), (hr * 1.5, hr * 0.3)], inner=0.01, floor=-1e9,
                           base=j3 + np.array([0, 0, -hr * 0.3]), axis=(math.sin(-2.6), 0, math.cos(-2.6))))
        b.detail_anchor = tuple(j2)
        return b.build()
    floor = style == "floor"
    bkind = p.c("base", ["disc", "vase", "dome", "square", "cone"])
    br = p.f("base_radius", (0.12, 0.22)) * (1.3 if floor else 1.0)
    bh = br * p.u(0.3, 0.5) if bkind in ("disc", "square") else br * p.u(1.2, 2.6)
    if bkind == "disc":
        b.add(base, disc_z(0, bh, br, br * p.u(0.7, 1.0)))
    elif bkind == "square":
        b.add(base, box((0, 0, bh / 2), (2 * br, 2 * br, bh)))
    elif bkind == "dome":
        b.add(base, ellipsoid((0, 0, 0), (br, br, bh * 0.8), zclip=0.0))
        bh *= 0.8
    elif bkind == "cone":
        b.add(base, disc_z(0, bh, br, br * p.u(0.2, 0.4)))
    else:
        b.add(base, lathe(_profile(p.c("base_profile", ["bulb", "vase", "barrel", "hourglass"]), p, bh, br, 8)))
    stem_len = p.f("stem", (0.15, 0.5)) * (4.0 if floor else 1.0)
    stem = b.part("stem")
    sr = p.u(0.012, 0.03)
    b.add(stem, cylinder((0, 0, bh - 0.01), (0, 0, bh + stem_len), sr))
    if p.b("stem_knot", 0.3):
        b.add(stem, sphere((0, 0, bh + stem_len * p.u(0.3, 0.7)), sr * 2.5))
    srad = p.f("shade_radius", (0.18, 0.32))
    sh = srad * p.u(0.7, 1.3)
    z0 = bh + stem_len - sh * p.u(0.2, 0.5)
    _shade(b, shade, p, z0, srad, sh)
    if p.b("finial", 0.4):
        b.add(stem, sphere((0, 0, z0 + sh + 0.03), 0.025))
    if p.b("cord", 0.3):
        cord = b.part("cord", claimed=False)
        b.add(cord, tube_path([(0, br * 0.6, 0.02), (0, br * 1.6, 0.01), (0.05, br * 3.0, 0.01)], 0.008))
    b.detail_anchor = (0.0, 0.0, bh)
    return b.build()


# -- furniture --------------------------------------------------------------------------------------

def _top(b: DesignBuilder, part: int, shape: str, w: float, d: float, z0: float, th: float, p: Params) -> None:
    if shape == "round":
        b.add(part, frustum((0, 0, z0), (0, 0, z0 + th), w / 2, w / 2 * p.u(1.0, 1.04)))
    elif shape == "oval":
        b.add(part, frustum((0, 0, z0), (0, 0, z0 + th), w / 2, w / 2, squash=d / w))
    elif shape == "rounded":
        b.add(part, rounded_box((0, 0, z0 + th / 2), (w, d, th), min(w, d) * p.u(0.1, 0.3)))
    else:
        b.add(part, box((0, 0, z0 + th / 2), (w, d, th)))


def _leg(b: DesignBuilder, part: int, top: np.ndarray, bottom: np.ndarray, r: float, section: str,
         taper: float) -> None:
    if section == "square":
        axis = top - bottom
        poly = regular_polygon(4, r * 1.41, PI / 4)
        b.add(part, prism(poly, 0.0, float(np.linalg.norm(axis)), top_scale=1.0 / taper,
                          rot=frame_along(axis), offset=bottom))
    else:
        b.add(part, frustum(bottom, top, r * taper, r))


def legged(p: Params, name: str) -> Design:
    """Tables, stools, benches and stands: a top on legs or a pedestal."""
    b = DesignBuilder(name)
    shape = p.c("top_shape", ["round", "square", "rect"])
    w = p.f("width", (0.4, 0.6))
    d = w if shape in ("round", "square") else w * p.f("depth_ratio", (0.4, 0.7))
    hgt = p.f("height", (0.45, 0.7))
    th = p.f("top_thickness", (0.025, 0.06))
    top = b.part("top")
    if p.b("cushion", 0.0):
        cz = hgt - th
        if shape == "round":
            b.add(top, ellipsoid((0, 0, cz), (w / 2 * 1.02, w / 2 * 1.02, th * p.u(1.5, 2.5)), zclip=0.0))
        else:
            b.add(top, rounded_box((0, 0, cz + th), (w, d, th * 2), min(w, d) * 0.2))
    _top(b, top, shape, w, d, hgt - th, th, p)
    legs = b.part("legs")
    style = p.c("leg_style", ["straight", "tapered", "splayed", "pedestal"])
    section = p.c("leg_section", ["round", "square"])
    lr = p.f("leg_radius", (0.015, 0.035))
    if style == "pedestal":
        cr = lr * p.u(1.5, 3.0)
        b.add(legs, cylinder((0, 0, 0.02), (0, 0, hgt - th), cr))
        if p.b("cross_base", 0.5):
            n = p.i("feet", (3, 4))
            for i in range(n):
                a = 2 * PI * i / n + PI / 4
                tip = np.array([math.cos(a), math.sin(a), 0]) * min(w, d) * 0.45
                b.add(legs, box(tip / 2 + np.array([0, 0, 0.02]), (float(np.linalg.norm(tip)), 0.04, 0.04), rot_z(a)))
        else:
            bw = min(w, d) * p.u(0.5, 0.8)
            b.add(legs, disc_z(0, 0.03, bw / 2, bw / 2 * 0.9) if shape != "square" else box((0, 0, 0.015), (bw, bw, 0.03)))
    else:
        n = 3 if shape == "round" and p.rng.random() < 0.35 else 4
        inset = p.f("leg_inset", (0.05, 0.15))
        splay = p.u(0.05, 0.15) if style == "splayed" else 0.0
        taper = p.u(0.45, 0.75) if style in ("tapered", "splayed") else 1.0
        feet = []
        for i in range(n):
            if n == 3 or shape in ("round", "oval"):
                a = 2 * PI * i / n + PI / 4
                c = np.array([math.cos(a) * (w / 2 - inset * w), math.sin(a) * (d / 2 - inset * d), 0.0])
            else:
                sx, sy = (1 if i in (0, 3) else -1), (1 if i < 2 else -1)
                c = np.array([sx * (w / 2 - inset * w), sy * (d / 2 - inset * d), 0.0])
            foot = c + splay * hgt * np.array([np.sign(c[0]), np.sign(c[1]), 0]) * 0.7 if splay else c.copy()
            feet.append(foot)
            _leg(b, legs, c + np.array([0, 0, hgt - th]), foot, lr, section, taper)
        if p.b("stretchers", 0.25):
            zs = hgt * p.u(0.15, 0.35)
            for i in range(n):
                a, c2 = feet[i], feet[(i + 1) % n]
                b.add(legs, cylinder(a + np.array([0, 0, zs]), c2 + np.array([0, 0, zs]), lr * 0.45))
        if p.b("apron", 0.3) and shape not in ("round", "oval"):
            ah = hgt * p.u(0.06, 0.12)
            b.add(legs, box((0, 0, hgt - th - ah / 2), (w * (1 - 2 * inset) + lr, d * (1 - 2 * inset) + lr, ah)))
        if p.b("shelf", 0.2):
            zs = hgt * p.u(0.15, 0.35)
            sw, sd = w * (1 - 2 * inset) + 2 * lr, d * (1 - 2 * inset) + 2 * lr
            if shape in ("round", "oval") or n == 3:
                b.add(legs, disc_z(zs, zs + th * 0.7, sw / 2 * 0.75))
            else:
                b.add(legs, box((0, 0, zs), (sw, sd, th * 0.7)))
        if p.b("footrest", 0.0):
            zr = hgt * p.u(0.25, 0.4)
            rr = (min(w, d) / 2 - inset * min(w, d)) * 1.05 + splay * hgt * 0.35
            b.add(legs, frustum((0, 0, zr), (0, 0, zr + 0.015), rr + 0.02, rr + 0.02, rr - 0.005))
    if p.b("drawer", 0.0):
        dp = b.part("drawer", explode=(0, -d * 0.6, 0))
        dh = hgt * 0.12
        b.add(dp, box((0, -d / 2 + 0.04, hgt - th - dh / 2 - 0.005), (w * 0.4, 0.06, dh)))
        b.add(dp, box((0, -d / 2 + 0.005, hgt - th - dh / 2 - 0.005), (w * 0.1, 0.012, dh * 0.18)))
    b.detail_anchor = (w / 2 * 0.7, -d / 2 * 0.7, hgt * 0.9)
    return b.build()


def chair(p: Params, name: str) -> Design:
    """Chairs: seat, legs or swivel base, backrest (panel, slats, rails), optional arms."""
    b = DesignBuilder(name)
    w = p.f("width", (0.42, 0.55))
    d = w * p.u(0.9, 1.1)
    sz = p.f("seat_height", (0.42, 0.48))
    th = p.f("seat_thickness", (0.03, 0.08))
    seat = b.part("seat")
    if p.b("rounded_seat", 0.5):
        b.add(seat, rounded_box((0, 0, sz - th / 2), (w, d, th), w * p.u(0.08, 0.25)))
    else:
        b.add(seat, box((0, 0, sz - th / 2), (w, d, th)))
    legs = b.part("base")
    lr = p.f("leg_radius", (0.014, 0.025))
    if p.c("base", ["legs"]) == "swivel":
        b.add(legs, cylinder((0, 0, 0.08), (0, 0, sz - th), 0.03))
        n = p.i("spokes", 5)
        for i in range(n):
            a = 2 * PI * i / n + PI / 2
            tip = np.array([math.cos(a), math.sin(a), 0]) * w * 0.55
            b.add(legs, frustum((0, 0, 0.08), tip + np.array([0, 0, 0.06]), 0.03, 0.018, squash=0.7))
            b.add(legs, sphere(tip + np.array([0, 0, 0.03]), 0.03))
    else:
        sec = p.c("leg_section", ["round", "square"])
        taper = p.u(0.6, 1.0)
        splay = p.u(0.0, 0.06)
        for sx in (-1, 1):
            for sy in (-1, 1):
                c = np.array([sx * (w / 2 - lr * 1.5), sy * (d / 2 - lr * 1.5), 0.0])
                _leg(b, legs, c + np.array([0, 0, sz - th]), c + np.array([sx * splay, sy * splay, 0]), lr, sec, taper)
        if p.b("stretchers", 0.3):
            for sx in (-1, 1):
                b.add(legs, cylinder((sx * (w / 2 - lr * 1.5), -d / 2 + lr, sz * 0.25), (sx * (w / 2 - lr * 1.5), d / 2 - lr, sz * 0.25), lr * 0.5))
    back = b.part("back")
    bh = p.f("back_height", (0.3, 0.5))
    tilt = p.u(0.05, 0.25)
    style = p.c("back", ["panel", "slats", "rails"])
    by = d / 2 - 0.02
    rot = rot_x(-tilt)

    def at(local: np.ndarray) -> np.ndarray:
        return np.array([0, by, sz]) + rot @ local

    for sx in (-1, 1):
        b.add(back, box(at(np.array([sx * (w / 2 - 0.02), 0, bh / 2])), (0.035, 0.035, bh), rot))
    if style == "panel":
        ph = bh * p.u(0.4, 0.7)
        b.add(back, rounded_box(at(np.array([0, 0, bh - ph / 2])), (w, 0.03, ph), 0.01, rot))
    elif style == "slats":
        n = p.i("slats", (3, 6))
        for i in range(n):
            x = (i - (n - 1) / 2) * (w - 0.08) / max(n - 1, 1) * 0.85
            b.add(back, box(at(np.array([x, 0, bh * 0.55])), (0.025, 0.02, bh * 0.85), rot))
        b.add(back, box(at(np.array([0, 0, bh - 0.03])), (w, 0.03, 0.06), rot))
    else:
        n = p.i("rails", (2, 4))
        for i in range(n):
            b.add(back, box(at(np.array([0, 0, bh * (0.35 + 0.6 * i / max(n - 1, 1))])), (w, 0.025, 0.05), rot))
    if p.b("arms", 0.0):
        arms = b.part("arms")
        az = sz + p.u(0.18, 0.25)
        for sx in (-1, 1):
            x = sx * (w / 2 + 0.02)
            b.add(arms, box((x, -0.02, az), (0.05, d * 0.85, 0.03)))
            b.add(arms, box((x, -d / 2 + 0.08, (az + sz) / 2), (0.03, 0.03, az - sz)))
    b.detail_anchor = (w / 2, -d / 2, sz)
    return b.build()


def cabinet(p: Params, name: str) -> Design:
    """Storage furniture: carcass, doors / drawers / open shelves, pulls, plinth or legs."""
    b = DesignBuilder(name)
    w = p.f("width", (0.5, 1.0))
    d = p.f("depth", (0.35, 0.5))
    hgt = p.f("height", (0.5, 1.2))
    base_kind = p.c("base", ["plinth", "legs", "feet"])
    bz = p.u(0.05, 0.2) if base_kind == "legs" else p.u(0.03, 0.08)
    body = b.part("body")
    front = p.c("front", ["doors", "drawers", "mixed"])
    gap = 0.008
    t = 0.02
    if front == "shelves":
        # open carcass of boards
        b.add(body, box((-w / 2 + t / 2, 0, bz + hgt / 2), (t, d, hgt)), box((w / 2 - t / 2, 0, bz + hgt / 2), (t, d, hgt)))
        b.add(body, box((0, d / 2 - t / 2, bz + hgt / 2), (w - 2 * t, t, hgt)))
        n = p.i("shelves", (2, 5))
        for i in range(n + 1):
            z = bz + t / 2 + i * (hgt - t) / n
            b.add(body, box((0, 0, z), (w - 2 * t, d, t)))
    else:
        b.add(body, box((0, 0, bz + hgt / 2), (w, d, hgt)))
    if p.b("overhang", 0.4):
        b.add(body, box((0, -0.01, bz + hgt + 0.015), (w + 0.04, d + 0.03, 0.03)))
    fronts = b.part("fronts", explode=(0, -d * 0.7, 0))
    pulls = b.part("pulls", explode=(0, -d * 0.7, 0))
    pull = p.c("pull", ["knob", "bar", "none"])
    y = -d / 2 - 0.006

    def panel(x0: float, x1: float, z0: float, z1: float, horizontal: bool) -> None:
        b.add(fronts, box(((x0 + x1) / 2, y, (z0 + z1) / 2), (x1 - x0 - gap, 0.012, z1 - z0 - gap)))
        cx, cz = (x0 + x1) / 2, (z0 + z1) / 2
        if not horizontal:  # door: pull near the opening edge
            cx = x1 - 0.05 if x0 < -1e-6 else x0 + 0.05
        if pull == "knob":
            b.add(pulls, sphere((cx, y - 0.025, cz), 0.018))
        elif pull == "bar":
            if horizontal:
                b.add(pulls, box((cx, y - 0.02, cz), (min(0.18, (x1 - x0) * 0.4), 0.012, 0.014)))
            else:
                b.add(pulls, box((cx, y - 0.02, cz), (0.014, 0.012, min(0.18, (z1 - z0) * 0.4))))

    if front == "doors":
        n = 1 if w < 0.6 and p.rng.random() < 0.6 else 2
        for i in range(n):
            panel(-w / 2 + i * w / n, -w / 2 + (i + 1) * w / n, bz, bz + hgt, False)
    elif front == "drawers":
        n = p.i("drawers", (2, 5))
        for i in range(n):
            panel(-w / 2, w / 2, bz + i * hgt / n, bz + (i + 1) * hgt / n, True)
    elif front == "mixed":
        zs = bz + hgt * p.u(0.5, 0.75)
        panel(-w / 2, 0, bz, zs, False)
        panel(0, w / 2, bz, zs, False)
        n = p.i("drawers", (1, 2))
        for i in range(n):
            panel(-w / 2, w / 2, zs + i * (bz + hgt - zs) / n, zs + (i + 1) * (bz + hgt - zs) / n, True)
    base = b.part("base")
    if base_kind == "plinth":
        b.add(base, box((0, 0.01, bz / 2), (w - 0.03, d - 0.03, bz)))
    else:
        lr = 0.02
        for sx in (-1, 1):
            for sy in (-1, 1):
                c = np.array([sx * (w / 2 - 0.04), sy * (d / 2 - 0.04), 0.0])
                if base_kind == "legs":
                    b.add(base, frustum(c, c + np.array([0, 0, bz]), lr * 0.6, lr))
                else:
                    b.add(base, box(c + np.array([0, 0, bz / 2]), (0.05, 0.05, bz)))
    b.detail_anchor = (w / 2 - 0.05, -d / 2, bz + hgt * 0.6)
    return b.build()


# -- electronics and appliances --------------------------------------------------------------------

def enclosure(p: Params, name: str) -> Design:
    """Device housings: box/rounded/wedge/cylinder bodies with vents, grilles, panels, buttons,
    antennas, feet, stands, doors, knobs, lenses."""
    b = DesignBuilder(name)
    w = p.f("width", (0.6, 1.0))
    d = p.f("depth", (0.4, 0.7))
    hgt = p.f("height", (0.1, 0.3))
    shape = p.c("body", ["box", "rounded"])
    body = b.part("body")
    z0 = 0.0
    if p.b("feet", 0.3):
        fh = hgt * 0.06 + 0.01
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.add(body, disc_z(0, fh, min(w, d) * 0.05, center=(sx * w * 0.38, sy * d * 0.35)))
        z0 = fh
    if p.b("stand", 0.0):
        sh = hgt * 0.05 + 0.02
        b.add(body, box((0, 0, sh / 2), (w * 1.3, max(d * 2.2, w * 0.7), sh)) if p.rng.random() < 0.5 else
              disc_z(0, sh, max(w, d) * 0.75, max(w, d) * 0.7))
        z0 = sh
    zc = z0 + hgt / 2
    if shape == "rounded":
        b.add(body, rounded_box((0, 0, zc), (w, d, hgt), min(w, d) * p.f("corner", (0.1, 0.35))))
    elif shape == "wedge":
        # a trapezoid in the (y, z) plane, lower at the front, extruded along x
        poly = np.array([[-d / 2, 0], [d / 2, 0], [d / 2, hgt], [-d / 2, hgt * p.u(0.4, 0.7)]])
        rot = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        b.add(body, prism(poly, -w / 2, w / 2, rot=rot, offset=(0, 0, z0)))
    elif shape == "cylinder":
        b.add(body, disc_z(z0, z0 + hgt, w / 2, w / 2 * p.u(0.85, 1.0)))
        d = w
    elif shape == "pill":
        b.add(body, rounded_box((0, 0, zc), (w, d, hgt), min(w, d) * 0.49))
    else:
        b.add(body, box((0, 0, zc), (w, d, hgt)))
    top = z0 + hgt if shape != "wedge" else z0 + hgt * 0.7
    fy = -d / 2
    cyl = shape == "cylinder"
    if p.b("vents", 0.3):
        where = p.c("vent_side", ["top", "side", "front"])
        pitch = min(w, d, hgt) * p.u(0.06, 0.12)
        if cyl:
            b.pattern(body, "slots", (0, 0, z0 + hgt * 0.6), (0, -1, 0), (0, 0, 1), (PI * w * 0.9, hgt * 0.35),
                      (pitch * 3, pitch), pitch * 0.35, surface="cylinder")
        elif where == "top":
            b.pattern(body, "slots", (-w * 0.35, -d * 0.3, top), (1, 0, 0), (0, 1, 0), (w * 0.7, d * 0.6),
                      (w * 0.7, pitch), pitch * 0.4)
        elif where == "side":
            b.pattern(body, "slots", (w / 2, -d * 0.35, z0 + hgt * 0.2), (0, 1, 0), (0, 0, 1), (d * 0.7, hgt * 0.6),
                      (d * 0.7, pitch), pitch * 0.4)
        else:
            b.pattern(body, "slots", (-w * 0.4, fy, z0 + hgt * 0.1), (1, 0, 0), (0, 0, 1), (w * 0.8, hgt * 0.35),
                      (w * 0.8, pitch), pitch * 0.4)
    if p.b("grille", 0.0):
        kind = p.c("grille_kind", ["dots", "woofers", "slots"])
        if kind == "woofers" and not cyl:
            n = p.i("drivers", (1, 3))
            rr = min(w, hgt / n) * 0.32
            for i in range(n):
                cz = z0 + hgt * (i + 0.5) / n
                b.add(body, frustum((0, fy + 0.001, cz), (0, fy - 0.012, cz), rr, rr, rr * 0.85))
                b.pattern(body, "rings", (0, fy, cz), (1, 0, 0), (0, 0, 1), (rr * 0.8, 0), (rr * 0.35, 0), rr * 0.03)
        elif cyl:
            pitch = w * 0.05
            b.pattern(body, "dots", (0, 0, z0 + hgt * 0.08), (0, -1, 0), (0, 0, 1), (PI * w * 0.95, hgt * 0.6),
                      (pitch, pitch), pitch * 0.3, surface="cylinder")
        else:
            pitch = min(w, hgt) * p.u(0.05, 0.09)
            b.pattern(body, "dots" if kind != "slots" else "slots", (-w * 0.4, fy, z0 + hgt * 0.08), (1, 0, 0),
                      (0, 0, 1), (w * 0.8, hgt * p.u(0.5, 0.8)), (pitch, pitch), pitch * 0.3)
    if p.b("panel", 0.3) and not cyl:
        pw, ph = w * p.u(0.3, 0.8), hgt * p.u(0.2, 0.5)
        px = p.u(-0.3, 0.3) * (w - pw)
        pz = z0 + hgt * p.u(0.45, 0.6)
        if p.b("panel_raised", 0.4):
            b.add(body, box((px, fy - 0.004, pz), (pw, 0.01, ph)))
        else:
            b.pattern(body, "rect", (px - pw / 2, fy, pz - ph / 2), (1, 0, 0), (0, 0, 1), (pw, ph))
    if p.b("leds", 0.2):
        n = p.i("led_count", (3, 6))
        pitch = w * 0.05
        x0 = -pitch * (n - 1) / 2 - pitch / 2
        if cyl:
            b.pattern(body, "dots", (0, 0, z0 + hgt * 0.85), (0, -1, 0), (0, 0, 1), (pitch * n, pitch), (pitch, pitch),
                      pitch * 0.15, surface="cylinder")
        else:
            b.pattern(body, "dots", (x0, fy, z0 + hgt * 0.75), (1, 0, 0), (0, 0, 1), (pitch * n, pitch), (pitch, pitch),
                      pitch * 0.18)
    nb = p.i("buttons", (0, 0))
    for i in range(nb):
        on_top = p.b("buttons_on_top", 0.5) or cyl
        br = min(w, d) * 0.04
        x = (i - (nb - 1) / 2) * br * 3
        if on_top:
            b.add(body, disc_z(top - 0.002, top + 0.01, br, br * 0.9, center=(x, -d * 0.2 if not cyl else 0.0)))
        else:
            b.add(body, cylinder((w * 0.35 + x * 0.3, fy + 0.003, z0 + hgt * 0.2), (w * 0.35 + x * 0.3, fy - 0.01, z0 + hgt * 0.2), br))
    for i in range(p.i("knobs", (0, 0))):
        kr = min(hgt, w) * p.u(0.05, 0.09)
        x = w * 0.38 - i * kr * 3
        b.add(body, cylinder((x, fy + 0.002, z0 + hgt * 0.3), (x, fy - kr * 0.8, z0 + hgt * 0.3), kr))
    if p.b("round_door", 0.0):
        door = b.part("door")
        rr = min(w, hgt) * p.u(0.3, 0.38)
        cz = z0 + hgt * p.u(0.4, 0.5)
        b.add(door, frustum((0, fy + 0.002, cz), (0, fy - 0.03, cz), rr, rr * 0.95, rr * 0.75))
        b.add(door, frustum((0, fy + 0.002, cz), (0, fy - 0.015, cz), rr * 0.76, rr * 0.7))
        b.pattern(body, "rect", (-w * 0.45, fy, z0 + hgt * 0.82), (1, 0, 0), (0, 0, 1), (w * 0.9, hgt * 0.12))
    if p.b("rect_door", 0.0):
        door = b.part("door")
        dw = w * p.u(0.6, 0.72)
        b.add(door, box((-w / 2 + dw / 2 + 0.02, fy - 0.004, z0 + hgt / 2), (dw, 0.012, hgt * 0.86)))
        b.add(door, box((-w / 2 + dw - 0.03, fy - 0.025, z0 + hgt / 2), (0.025, 0.02, hgt * 0.6)))
        b.pattern(door, "rect", (-w / 2 + 0.08, fy - 0.01, z0 + hgt * 0.15), (1, 0, 0), (0, 0, 1), (dw - 0.14, hgt * 0.7))
    if p.b("top_slots", 0.0):
        n = p.i("slot_count", (1, 2))
        for i in range(n):
            y = (i - (n - 1) / 2) * d * 0.35
            b.pattern(body, "rect", (-w * 0.35, y - d * 0.07, top), (1, 0, 0), (0, 1, 0), (w * 0.7, d * 0.14))
        b.add(body, box((w / 2 + 0.01, 0, z0 + hgt * 0.6), (0.03, d * 0.12, hgt * 0.1)))
    n_ant = p.i("antennas", (0, 0))
    if n_ant:
        ant = b.part("antennas")
        ah = p.f("antenna_length", (0.25, 0.5))
        flat = p.b("flat_antennas", 0.6)
        for i in range(n_ant):
            x = (i - (n_ant - 1) / 2) * w / max(n_ant, 1) * 0.9
            tilt = p.u(-0.25, 0.25)
            base = np.array([x, d / 2 - 0.02, top - 0.01]) if p.b("antennas_on_top", 0.3) else np.array([x, d / 2 + 0.015, z0 + hgt * 0.5])
            rot = rot_y(tilt)
            if flat:
                b.add(ant, rounded_box(base + rot @ np.array([0, 0, ah / 2]), (0.05, 0.015, ah), 0.02, rot))
            else:
                b.add(ant, cylinder(base, base + rot @ np.array([0, 0, ah]), 0.012))
    if p.b("carry_handle", 0.0):
        hp = b.part("handle")
        hw = w * p.u(0.3, 0.6)
        b.add(hp, tube_path([(-hw / 2, 0, top - 0.01), (-hw / 2, 0, top + hgt * 0.15), (hw / 2, 0, top + hgt * 0.15),
                             (hw / 2, 0, top - 0.01)], min(w, hgt) * 0.025))
    if p.b("lens", 0.0):
        lp = b.part("lens", explode=(0, -0.4 * w, 0))
        lr_ = min(w, hgt) * p.u(0.25, 0.4)
        ll = lr_ * p.u(0.4, 1.6)
        lx = p.u(-0.15, 0.15) * w
        cz = z0 + hgt * 0.5
        b.add(lp, frustum((lx, fy + 0.005, cz), (lx, fy - ll, cz), lr_, lr_ * p.u(0.9, 1.1)))
        b.add(lp, frustum((lx, fy - ll, cz), (lx, fy - ll - 0.005, cz), lr_ * 0.9, lr_ * 0.9, lr_ * 0.6))
        b.pattern(lp, "rings", (lx, fy - ll - 0.005, cz), (1, 0, 0), (0, 0, 1), (lr_ * 0.6, 0), (lr_ * 0.25, 0), lr_ * 0.03)
        if p.b("hump", 0.5):
            b.add(body, prism(np.array([[-0.1, 0], [0.1, 0], [0.05, 0.06], [-0.05, 0.06]]) * w,
                              -d * 0.3, d * 0.3, rot=np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), offset=(0, 0, top - 0.001)))
    if p.b("cable", 0.15):
        cp = b.part("cable", claimed=False)
        y0 = d / 2
        b.add(cp, tube_path([(w * 0.3, y0 - 0.01, z0 + hgt * 0.3), (w * 0.3, y0 + 0.15, z0 + hgt * 0.3),
                             (w * 0.45, y0 + 0.3, z0)], min(w, d) * 0.015))
    b.detail_anchor = (w * 0.3, fy, z0 + hgt * 0.7)
    if p.b("upright", False):
        # stand the device on its long side (towers, modems)
        b.transform(rot_y(PI / 2))
    return b.build()


def radiator(p: Params, name: str) -> Design:
    """Rows of fins: heating radiators and heat sinks."""
    b = DesignBuilder(name)
    n = p.i("fins", (6, 14))
    w = p.f("width", (0.6, 1.0))
    hgt = p.f("height", (0.4, 0.7))
    d = p.f("depth", (0.06, 0.12))
    sink = p.b("base_plate", False)
    body = b.part("fins")
    pitch = w / n
    ft = pitch * p.u(0.2, 0.55)
    z0 = 0.02 if sink else hgt * 0.1
    if sink:
        b.add(body, box((0, 0, 0.01), (w + pitch, d * 1.1, 0.02)))
    for i in range(n):
        x = -w / 2 + (i + 0.5) * pitch
        if p.b("round_fins", 0.0) and not sink:
            b.add(body, rounded_box((x, 0, z0 + hgt / 2), (ft, d, hgt), ft * 0.49))
        else:
            b.add(body, box((x, 0, z0 + hgt / 2), (ft, d, hgt)))
    if not sink:
        hp = b.part("headers")
        for z in (z0 + hgt * 0.06, z0 + hgt * 0.94):
            b.add(hp, cylinder((-w / 2 - 0.02, 0, z), (w / 2 + 0.02, 0, z), d * 0.22))
        if p.b("valve", 0.6):
            b.add(hp, cylinder((w / 2 + 0.02, 0, z0 + hgt * 0.94), (w / 2 + 0.06, 0, z0 + hgt * 0.94), d * 0.3))
            b.add(hp, cylinder((w / 2 + 0.045, 0, z0 + hgt * 0.94), (w / 2 + 0.045, 0, z0 + hgt * 1.05), d * 0.25))
        if p.b("feet", 0.5):
            for sx in (-1, 1):
                b.add(hp, box((sx * w * 0.35, 0, z0 / 2), (0.04, d * 1.8, z0)))
    elif p.b("fan", 0.3):
        fp = b.part("fan")
        rr = min(w, hgt) * 0.4
        b.add(fp, frustum((0, -d / 2 - 0.002, z0 + hgt / 2), (0, -d / 2 - 0.05, z0 + hgt / 2), rr, rr, rr * 0.9))
        b.pattern(fp, "rings", (0, -d / 2 - 0.05, z0 + hgt / 2), (1, 0, 0), (0, 0, 1), (rr * 0.85, 0), (rr * 0.3, 0), rr * 0.03)
    b.detail_anchor = (-w / 2, -d / 2, z0 + hgt)
    return b.build()


# -- wheels, fans -------------------------------------------------------------------------------------

def wheel(p: Params, name: str) -> Design:
    """Wheels (axis along y): tyre, rim, spokes, hub, lug bolts; steering wheels; castors."""
    b = DesignBuilder(name)
    r = p.f("radius", (0.4, 0.5))
    wd = r * p.f("width", (0.3, 0.6))
    rim_r = r * p.f("rim_ratio", (0.6, 0.8))
    y0, y1 = -wd / 2, wd / 2
    if p.b("tyre", 0.8):
        tp = b.part("tyre")
        prof = smooth_profile([(y0, rim_r * 1.02), (y0 + wd * 0.1, r * 0.93), (0, r), (y1 - wd * 0.1, r * 0.93),
                               (y1, rim_r * 1.02)], 6)
        b.add(tp, [frustum((0, za, 0), (0, zb, 0), ra, rb, rim_r * 0.98, rim_r * 0.98)
                   for (za, ra), (zb, rb) in zip(prof[:-1], prof[1:])])
        if p.b("tread", 0.5):
            b.pattern(tp, p.c("tread_kind", ["slots", "grid"]), (0, y0 + wd * 0.2, 0), (0, 0, -1), (0, 1, 0),
                      (2 * PI * r, wd * 0.6), (r * 0.15, wd * 0.2), r * 0.02, surface="cylinder")
    rimp = b.part("rim")
    rim_t = r * p.u(0.04, 0.1)
    b.add(rimp, frustum((0, y0 * 0.9, 0), (0, y1 * 0.9, 0), rim_r, rim_r, rim_r - rim_t))
    hub_r = r * p.u(0.12, 0.22)
    face_y = y0 * p.u(0.2, 0.8)
    b.add(rimp, frustum((0, face_y - 0.02, 0), (0, y1 * 0.5, 0), hub_r, hub_r * 0.9))
    style = p.c("spokes_style", ["spokes", "split", "disc"])
    if style == "disc":
        b.add(rimp, frustum((0, face_y, 0), (0, face_y + wd * 0.1, 0), rim_r - rim_t * 0.5, rim_r - rim_t * 0.5))
        nh = p.i("holes", (4, 8))
        b.pattern(rimp, "ticks", (0, face_y, 0), (1, 0, 0), (0, 0, 1), (rim_r * 0.8, rim_r * 0.35), (0, rim_r * 0.35),
                  rim_r * 0.12, count=nh)
    else:
        n = p.i("spokes", (3, 10))
        sw = r * p.u(0.05, 0.12)
        phase = p.u(0, PI)
        for i in range(n):
            a = phase + 2 * PI * i / n
            for off in ((-0.09, 0.09) if style == "split" else (0.0,)):
                aa = a + off
                mid = (hub_r + rim_r) / 2
                c = np.array([math.cos(aa) * mid, face_y + wd * 0.05, math.sin(aa) * mid])
                b.add(rimp, box(c, (rim_r - hub_r, wd * 0.12, sw * (0.6 if off else 1.0)), rot_y(-aa)))
    lugs = p.i("lugs", (0, 6))
    if lugs >= 3:
        b.pattern(rimp, "ticks", (0, face_y - 0.02, 0), (1, 0, 0), (0, 0, 1), (hub_r * 0.75, hub_r * 0.3), (0, hub_r * 0.3),
                  hub_r * 0.1, count=lugs)
    if p.b("fork", 0.0):  # castor
        fp = b.part("fork")
        for sy in (-1, 1):
            y = sy * (wd / 2 + 0.02)
            b.add(fp, box((r * 0.2, y, r * 0.6), (r * 0.7, 0.02, r * 1.3), rot_y(-0.35)))
        b.add(fp, box((r * 0.35, 0, r * 1.3), (r * 0.9, wd + 0.06, 0.03)))
        b.add(fp, box((r * 0.35, 0, r * 1.35), (r * 1.1, r * 1.1, 0.02)))
    b.detail_anchor = (0.0, face_y, 0.0)
    return b.build()


def steering_wheel(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    r = p.f("radius", (0.35, 0.45))
    rt = r * p.u(0.06, 0.1)
    ring = b.part("ring")
    n = 20
    pts = [np.array([math.cos(a) * r, 0, math.sin(a) * r * p.f("flat", 1.0)]) for a in np.linspace(0, 2 * PI, n + 1)]
    b.add(ring, tube_path(pts, rt))
    hub = b.part("hub")
    hr = r * p.u(0.2, 0.35)
    b.add(hub, frustum((0, -0.03, 0), (0, 0.08, -0.02), hr, hr * 0.8) if p.rng.random() < 0.5 else
          rounded_box((0, 0.02, -0.02), (hr * 2.2, 0.08, hr * 1.6), hr * 0.4))
    ns = p.i("spokes", (2, 4))
    for a in (PI + 0.2, -0.2, -PI / 2, PI / 2)[:ns]:
        tip = np.array([math.cos(a) * r, 0, math.sin(a) * r])
        b.add(hub, frustum((0, 0.02, 0), tip, rt * 1.6, rt * 0.9, squash=0.5))
    b.detail_anchor = (r, 0.0, 0.0)
    return b.build()


def fan(p: Params, name: str) -> Design:
    """Desk / pedestal fans (guard, blades, motor, stem, base) and ceiling fans."""
    b = DesignBuilder(name)
    nbl = p.i("blades", (3, 5))
    if p.c("style", ["desk"]) == "ceiling":
        mount = b.part("mount")
        rod = p.f("downrod", (0.1, 0.4))
        b.add(mount, disc_z(rod + 0.12, rod + 0.16, 0.09, 0.06))
        b.add(mount, cylinder((0, 0, 0.1), (0, 0, rod + 0.12), 0.015))
        motor = b.part("motor")
        mr = p.u(0.12, 0.2)
        b.add(motor, disc_z(0.0, 0.1, mr, mr * 0.8))
        blades = b.part("blades")
        ln = p.f("blade_length", (0.5, 0.75))
        for i in range(nbl):
            a = 2 * PI * i / nbl
            c = np.array([math.cos(a), math.sin(a), 0]) * (mr + ln / 2)
            b.add(blades, rounded_box(c + np.array([0, 0, 0.04]), (ln, ln * p.u(0.18, 0.28), 0.01), ln * 0.05,
                                      rot_z(a) @ rot_x(0.12)))
        if p.b("light", 0.5):
            b.add(motor, ellipsoid((0, 0, 0.0), (mr * 0.7, mr * 0.7, mr * 0.5), rot_x(PI), zclip=0.0))
        b.detail_anchor = (0.0, 0.0, 0.05)
        return b.build()
    base = b.part("base")
    br = p.u(0.15, 0.25)
    stem_h = p.f("stem", (0.2, 0.4))
    b.add(base, disc_z(0, 0.05, br, br * 0.8) if p.rng.random() < 0.6 else rounded_box((0, 0, 0.025), (br * 2, br * 1.5, 0.05), br * 0.3))
    b.add(base, cylinder((0, 0, 0.04), (0, 0, stem_h), 0.025))
    head = b.part("head")
    gr = p.f("guard_radius", (0.2, 0.32))
    cz = stem_h + gr * 1.05
    b.add(head, ellipsoid((0, gr * 0.4, cz), (gr * 0.3, gr * 0.45, gr * 0.3)))
    b.add(head, cylinder((0, gr * 0.3, stem_h - 0.01), (0, gr * 0.3, cz - gr * 0.2), 0.02))
    guard = b.part("guard")
    gd = gr * p.u(0.25, 0.45)
    b.add(guard, frustum((0, -gd / 2, cz), (0, gd / 2, cz), gr, gr, gr * 0.96))
    nrings = p.i("guard_rings", (1, 3))
    for i in range(nrings):
        rr = gr * (0.25 + 0.7 * (i + 0.5) / nrings)
        b.add(guard, frustum((0, -gd / 2 - 0.005, cz), (0, -gd / 2 + 0.002, cz), rr, rr, rr - 0.008))
    b.add(guard, frustum((0, -gd / 2 - 0.01, cz), (0, -gd / 2, cz), gr * 0.15, gr * 0.15))
    blades = b.part("blades")
    for i in range(nbl):
        a = 2 * PI * i / nbl
        c = np.array([math.cos(a) * gr * 0.5, 0, math.sin(a) * gr * 0.5 + cz])
        b.add(blades, ellipsoid(c, (gr * 0.4, 0.01, gr * 0.2), rot_y(-a) @ rot_x(0.4)))
    b.detail_anchor = (0.0, -gd / 2, cz)
    return b.build()


# -- tools, hardware ---------------------------------------------------------------------------------

def hand_tool(p: Params, name: str) -> Design:
    """Hammers, screwdrivers, brushes, razors, spatulas: a handle and a head; drawn lying down."""
    b = DesignBuilder(name)
    ln = p.f("handle_length", (0.6, 0.9))
    hr = p.f("handle_radius", (0.03, 0.05))
    handle = b.part("handle")
    grip = p.c("grip", ["round", "flat"])
    if grip == "round":
        prof = smooth_profile([(0, hr * 0.9), (ln * 0.1, hr), (ln * 0.5, hr * p.u(0.8, 1.1)), (ln * 0.9, hr * 0.8),
                               (ln, hr * 0.7)], 7)
        b.add(handle, lathe(prof))
        if p.b("grip_rings", 0.4):
            b.pattern(handle, "slots", (0, 0, ln * 0.1), (0, -1, 0), (0, 0, 1), (2 * PI * hr, ln * 0.4),
                      (hr, ln * 0.05), ln * 0.01, surface="cylinder")
    else:
        b.add(handle, rounded_box((0, 0, ln / 2), (hr * 2.4, hr * 1.2, ln), hr * 0.5))
    head = b.part("head")
    kind = p.c("head", ["hammer", "screwdriver", "brush", "razor", "spatula", "mallet"])
    if kind == "hammer":
        hl = p.u(0.25, 0.4)
        b.add(head, box((hl * 0.15, 0, ln + 0.04), (hl * 0.6, hr * 1.6, 0.1)))
        b.add(head, cylinder((-hl * 0.15, 0, ln + 0.04), (-hl * 0.5, 0, ln + 0.04), 0.045))
        b.add(head, prism(np.array([[0, -0.04], [0.0, 0.04], [hl * 0.55, 0.0]]), -hr * 0.7, hr * 0.7,
                          rot=np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), offset=(hl * 0.45, 0, ln + 0.04)))
    elif kind == "mallet":
        mr = p.u(0.06, 0.1)
        b.add(head, cylinder((-mr * 2, 0, ln + mr), (mr * 2, 0, ln + mr), mr))
    elif kind == "screwdriver":
        sl = p.u(0.4, 0.7)
        b.add(head, cylinder((0, 0, ln - 0.01), (0, 0, ln + sl), hr * 0.25))
        b.add(head, prism(regular_polygon(4, hr * 0.35, PI / 4, 1.0, 0.25), 0, hr * 1.2, top_scale=0.5,
                          offset=(0, 0, ln + sl)))
        b.add(head, frustum((0, 0, ln - 0.02), (0, 0, ln + 0.05), hr * 0.8, hr * 0.35))
    elif kind == "brush":
        bl = p.u(0.12, 0.3)
        bw = hr * p.u(2.0, 4.0)
        b.add(head, rounded_box((0, 0, ln + bl / 2), (bw, hr * 1.2, bl), bw * 0.3))
        bristles = b.part("bristles")
        bh = hr * p.u(1.0, 2.5)
        b.add(bristles, box((0, -hr * 0.6 - bh / 2, ln + bl / 2), (bw * 0.85, bh, bl * 0.9)))
        b.pattern(bristles, "grid", (-bw * 0.42, -hr * 0.6 - bh, ln + bl * 0.05), (1, 0, 0), (0, 0, 1),
                  (bw * 0.85, bl * 0.9), (bw * 0.85 / p.i("tufts", (3, 6)), bl * 0.9 / 6), bl * 0.01)
    elif kind == "razor":
        hw = p.u(0.15, 0.25)
        b.add(head, rounded_box((0, -0.01, ln + 0.04), (hw, 0.05, 0.07), 0.02, rot_x(0.3)))
        b.pattern(head, "slots", (-hw * 0.4, -0.04, ln + 0.015), (1, 0, 0), (0, 0, 1), (hw * 0.8, 0.05),
                  (hw * 0.8, 0.012), 0.004)
    else:
        bw = p.u(0.1, 0.18)
        b.add(head, cylinder((0, 0, ln - 0.01), (0, 0, ln + 0.08), hr * 0.35))
        b.add(head, rounded_box((0, 0, ln + 0.08 + bw * 0.6), (bw, 0.01, bw * 1.2), bw * 0.3))
    b.detail_anchor = (0.0, 0.0, ln)
    b.transform(rot_y(PI / 2 + p.u(-0.15, 0.15)))
    return b.build()


def fastener(p: Params, name: str) -> Design:
    """Bolts, screws, nuts, knobs and pulls."""
    b = DesignBuilder(name)
    kind = p.c("kind", ["bolt", "screw", "nut", "pull"])
    body = b.part("body")
    r = p.f("radius", (0.08, 0.14))
    if kind == "pull":
        ln = p.f("length", (0.4, 0.8))
        ph = p.u(0.08, 0.15)
        br = r * p.u(0.25, 0.5)
        b.add(body, cylinder((-ln / 2, 0, ph), (ln / 2, 0, ph), br) if p.rng.random() < 0.5 else
              rounded_box((0, 0, ph), (ln, br * 2, br * 2), br * 0.5))
        for sx in (-1, 1):
            b.add(body, frustum((sx * ln * 0.4, 0, 0), (sx * ln * 0.4, 0, ph), br * 1.2, br * 0.9))
        mount = b.part("mounting surface", claimed=False)
        b.add(mount, box((0, 0, -0.01), (ln * 1.4, br * 8, 0.02)))
        b.detail_anchor = (ln * 0.4, 0.0, ph / 2)
        return b.build()
    hh = r * p.u(0.5, 0.9)
    head_kind = p.c("head_kind", ["hex", "round", "flat"]) if kind != "nut" else "hex"
    if head_kind == "hex":
        b.add(body, prism(regular_polygon(6, r, 0.0), 0.0, hh))
        if p.b("chamfer", 0.5):
            b.add(body, disc_z(hh, hh + r * 0.06, r * 0.86, r * 0.8))
    elif head_kind == "round":
        b.add(body, ellipsoid((0, 0, 0.0), (r, r, hh), zclip=0.0))
    else:
        b.add(body, disc_z(0.0, hh * 0.5, r * 0.6, r))
    if kind == "nut":
        b.pattern(body, "circle", (0, 0, hh + 0.0005), (1, 0, 0), (0, 1, 0), (r * 0.55, 0))
        b.pattern(body, "circle", (0, 0, 0.0), (1, 0, 0), (0, 1, 0), (r * 0.55, 0))
        b.detail_anchor = (r, 0.0, hh)
        return b.build()
    if kind == "screw" or head_kind != "hex":
        slot = p.c("drive", ["slot", "cross", "socket"])
        top = hh if head_kind != "flat" else hh * 0.5
        if slot == "socket":
            b.pattern(body, "circle", (0, 0, top), (1, 0, 0), (0, 1, 0), (r * 0.35, 0))
        else:
            b.pattern(body, "rect", (-r * 0.7, -r * 0.07, top), (1, 0, 0), (0, 1, 0), (r * 1.4, r * 0.14))
            if slot == "cross":
                b.pattern(body, "rect", (-r * 0.07, -r * 0.7, top), (1, 0, 0), (0, 1, 0), (r * 0.14, r * 1.4))
    shank = b.part("shank")
    sl = p.f("length", (0.4, 0.9))
    sr = r * p.u(0.4, 0.55)
    b.add(shank, cylinder((0, 0, -sl), (0, 0, 0.001), sr))
    if kind == "screw":
        b.add(shank, frustum((0, 0, -sl - sr * 2), (0, 0, -sl), 0.002, sr))
    if p.b("threads", 0.8):
        b.pattern(shank, "slots", (0, 0, -sl), (0, -1, 0), (0, 0, 1), (2 * PI * sr, sl * p.u(0.5, 0.95)),
                  (sr * 0.6, sr * 0.35), sr * 0.08, surface="cylinder")
    if p.b("washer", 0.2):
        b.add(shank, disc_z(-0.02, 0.0, r * 1.3, r * 1.3, ri=sr * 1.05))
    b.detail_anchor = (0.0, 0.0, 0.0)
    b.transform(rot_x(PI / 2 * p.u(0.0, 1.0)) if p.b("lying", 0.3) else np.eye(3))
    return b.build()


# -- sports, toys, travel -----------------------------------------------------------------------------

def dumbbell(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    ln = p.f("bar_length", (0.4, 0.7))
    br = p.u(0.025, 0.04)
    bar = b.part("bar")
    b.add(bar, cylinder((-ln / 2, 0, 0), (ln / 2, 0, 0), br))
    if p.b("knurl", 0.5):
        b.pattern(bar, "grid", (-ln * 0.25, 0, 0), (0, -1, 0), (1, 0, 0), (2 * PI * br, ln * 0.5),
                  (br * 0.6, br * 0.6), br * 0.05, surface="cylinder")
    weights = b.part("weights", explode=(0, 0, 0))
    kind = p.c("weights", ["plates", "hex", "round"])
    wr = p.f("weight_radius", (0.1, 0.18))
    n = p.i("plates", (1, 3))
    for sx in (-1, 1):
        x0 = sx * ln * 0.3
        if kind == "plates":
            x = x0
            for i in range(n):
                t = wr * 0.3
                rr = wr * (1 - 0.15 * i)
                b.add(weights, cylinder((x, 0, 0), (x + sx * t, 0, 0), rr))
                x += sx * t
            b.add(weights, cylinder((x, 0, 0), (x + sx * wr * 0.15, 0, 0), br * 1.5))
        elif kind == "hex":
            b.add(weights, prism(regular_polygon(6, wr, PI / 6), 0, wr * 0.9, rot=frame_along((sx, 0, 0)),
                                 offset=(x0, 0, 0)))
        else:
            b.add(weights, sphere((x0 + sx * wr * 0.8, 0, 0), wr))
    b.detail_anchor = (ln * 0.3, 0.0, 0.0)
    return b.build()


def kettlebell(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    r = p.f("radius", (0.25, 0.35))
    body = b.part("body")
    b.add(body, ellipsoid((0, 0, r * 0.8), (r, r, r * p.u(0.9, 1.05)), zclip=-0.8))
    hp = b.part("handle")
    hw = r * p.u(0.6, 0.9)
    hh = r * p.u(0.5, 0.9)
    z0 = r * 1.4
    pts = [(-hw, 0, z0 - 0.05), (-hw, 0, z0 + hh * 0.7)] + arc_points((0, 0, z0 + hh * 0.7), hh * 0.3, PI, 0, 5, rx=hw)
    pts += [(hw, 0, z0 + hh * 0.7), (hw, 0, z0 - 0.05)]
    b.add(hp, tube_path(pts, r * p.u(0.08, 0.13)))
    if p.b("face", 0.3):
        b.pattern(body, "rect", (-r * 0.35, -r, r * 0.6), (1, 0, 0), (0, 0, 1), (r * 0.7, r * 0.4))
    b.detail_anchor = (0.0, 0.0, z0 + hh)
    return b.build()


def toy_vehicle(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    ln = p.f("length", (0.7, 1.0))
    w = ln * p.u(0.35, 0.5)
    h = ln * p.u(0.15, 0.25)
    wr = h * p.u(0.5, 0.8)
    body = b.part("body")
    z0 = wr * 0.8
    b.add(body, rounded_box((0, 0, z0 + h / 2), (ln, w, h), min(ln, w) * p.u(0.05, 0.2), rot_z(PI / 2)))
    cab = p.c("cabin", ["box", "taper", "none"])
    if cab != "none":
        cl = ln * p.u(0.35, 0.6)
        ch = h * p.u(0.6, 1.0)
        cy = p.u(-0.15, 0.15) * ln
        b.add(body, prism(regular_polygon(4, 1.0, PI / 4, cl / 1.41 / 2 * 2, w * 0.9 / 1.41),
                          0, ch, top_scale=0.75 if cab == "taper" else 1.0, rot=rot_z(PI / 2), offset=(0, cy, z0 + h - 0.002)))
        if p.b("windows", 0.7):
            b.pattern(body, "rect", (w * 0.45 * (0.75 if cab == "taper" else 1) + 0.004, cy - cl * 0.3, z0 + h + ch * 0.25),
                      (0, 1, 0), (0, 0, 1), (cl * 0.6, ch * 0.5))
    wheels = b.part("wheels", explode=(0, 0, 0))
    for sy in (-1, 1):
        for sx in (-1, 1):
            c = np.array([sx * (w / 2), sy * ln * 0.32, wr])
            b.add(wheels, cylinder(c, c + np.array([sx * wr * 0.5, 0, 0]), wr))
            b.pattern(wheels, "circle", tuple(c + np.array([sx * wr * 0.5, 0, 0])), (0, 1, 0), (0, 0, 1), (wr * 0.5, 0))
    b.detail_anchor = (w / 2, -ln * 0.32, wr)
    b.transform(rot_z(PI / 2))
    return b.build()


def toy_brick(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    nx, ny = p.i("studs_x", (2, 6)), p.i("studs_y", (1, 2))
    u = 0.16
    h = u * (1.2 if p.b("tall", 0.7) else 0.4)
    body = b.part("body")
    b.add(body, box((0, 0, h / 2), (nx * u, ny * u, h)))
    studs = b.part("studs")
    for i in range(nx):
        for j in range(ny):
            b.add(studs, disc_z(h - 0.001, h + u * 0.18, u * 0.3, center=((i - (nx - 1) / 2) * u, (j - (ny - 1) / 2) * u)))
    b.detail_anchor = (nx * u / 2, -ny * u / 2, h)
    return b.build()


def luggage(p: Params, name: str) -> Design:
    """Suitcases (upright, wheels, telescopic handle) and briefcases (flat, top handle, latches)."""
    b = DesignBuilder(name)
    w = p.f("width", (0.4, 0.55))
    d = p.f("depth", (0.2, 0.3))
    h = p.f("height", (0.6, 0.8))
    shell = b.part("shell")
    z0 = 0.06 if p.b("wheels", 0.8) else 0.0
    b.add(shell, rounded_box((0, 0, z0 + h / 2), (w, d, h), min(w, d) * p.u(0.1, 0.3)))
    if p.b("ribs", 0.5):
        n = p.i("rib_count", (2, 6))
        b.pattern(shell, "slots", (-w * 0.42, -d / 2, z0 + h * 0.1), (0, 0, 1), (1, 0, 0), (h * 0.8, w * 0.84),
                  (h * 0.8, w * 0.84 / n), w * 0.02)
    if p.b("seam", 0.7):
        b.add(shell, rounded_box((0, d * 0.05, z0 + h / 2), (w + 0.01, d * 0.06, h + 0.01), min(w, d) * 0.2))
    if z0 > 0:
        wp = b.part("wheels")
        for sx in (-1, 1):
            for sy in ((-1, 1) if p.b("four_wheels", 0.6) else (1,)):
                c = np.array([sx * w * 0.38, sy * d * 0.32, z0 * 0.55])
                b.add(wp, cylinder(c - np.array([0.02, 0, 0]), c + np.array([0.02, 0, 0]), z0 * 0.55))
    if p.b("telescopic", 0.8):
        hp = b.part("handle", explode=(0, 0, h * 0.4))
        ext = h * p.u(0.0, 0.5)
        for sx in (-1, 1):
            b.add(hp, box((sx * w * 0.3, d / 2 - 0.03, z0 + h + ext / 2), (0.025, 0.02, ext + 0.04)))
        b.add(hp, rounded_box((0, d / 2 - 0.03, z0 + h + ext + 0.03), (w * 0.7, 0.03, 0.04), 0.012))
    if p.b("top_handle", 0.5):
        hp = b.part("carry handle")
        hw = w * 0.3
        b.add(hp, tube_path([(-hw / 2, 0, z0 + h - 0.01), (-hw / 2, 0, z0 + h + 0.05), (hw / 2, 0, z0 + h + 0.05),
                             (hw / 2, 0, z0 + h - 0.01)], 0.014))
    if p.b("latches", 0.0):
        for sx in (-1, 1):
            b.add(shell, box((sx * w * 0.3, -d / 2 - 0.005, z0 + h * 0.85), (0.05, 0.015, 0.04)))
    b.detail_anchor = (0.0, d / 2, z0 + h)
    return b.build()


def clock(p: Params, name: str) -> Design:
    """Wall, table and alarm clocks: case, dial ticks, hands, optional bells and feet."""
    b = DesignBuilder(name)
    r = p.f("radius", (0.3, 0.45))
    depth = r * p.u(0.1, 0.4)
    case = b.part("case")
    shape = p.c("shape", ["round", "square", "octagon"])
    cz = r * 1.1 if p.b("feet", 0.0) else 0.0
    if shape == "round":
        b.add(case, frustum((0, depth / 2, cz), (0, -depth / 2, cz), r, r * p.u(0.95, 1.0)))
        if p.b("bezel", 0.6):
            b.add(case, frustum((0, -depth / 2 + 0.002, cz), (0, -depth / 2 - r * 0.05, cz), r * 1.0, r * 0.97, r * 0.88))
    else:
        n = 4 if shape == "square" else 8
        b.add(case, prism(regular_polygon(n, r / math.cos(PI / n), PI / n), -depth / 2, depth / 2,
                          rot=np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]) @ np.eye(3), offset=(0, 0, cz)))
    b.pattern(case, "ticks", (0, -depth / 2, cz), (1, 0, 0), (0, 0, 1), (r * 0.85, r * 0.12), (0, r * 0.12),
              r * 0.02, count=int(p.c("ticks", {"12": 0.8, "60": 0.2})))
    hands = b.part("hands")
    ah, am = p.u(0, 2 * PI), p.u(0, 2 * PI)
    for a, ln, wdt in ((ah, r * 0.5, r * 0.05), (am, r * 0.75, r * 0.035)):
        c = np.array([math.sin(a) * ln / 2, -depth / 2 - 0.006, cz + math.cos(a) * ln / 2])
        b.add(hands, box(c, (wdt, 0.006, ln), rot_y(a)))
    b.add(hands, cylinder((0, -depth / 2, cz), (0, -depth / 2 - 0.012, cz), r * 0.05))
    if cz > 0:
        feet = b.part("feet")
        for sx in (-1, 1):
            b.add(feet, frustum((sx * r * 0.5, 0, cz - r * 0.8), (sx * r * 0.8, 0, 0), r * 0.06, r * 0.04))
        if p.b("bells", 0.0):
            for sx in (-1, 1):
                a = sx * 0.6
                c = np.array([math.sin(a) * r * 1.05, 0, cz + math.cos(a) * r * 1.05])
                b.add(feet, ellipsoid(c, (r * 0.35,) * 3, rot_y(a), zclip=0.0))
            b.add(feet, tube_path([(-r * 0.3, 0, cz + r * 1.2), (0, 0, cz + r * 1.35), (r * 0.3, 0, cz + r * 1.2)], r * 0.03))
    b.detail_anchor = (0.0, -depth / 2, cz)
    return b.build()


def faucet(p: Params, name: str) -> Design:
    """Faucets (base, body, spout, lever or cross handles), shower heads and valves."""
    b = DesignBuilder(name)
    kind = p.c("kind", ["faucet"])
    if kind == "shower":
        arm = b.part("arm")
        al = p.u(0.3, 0.5)
        b.add(arm, tube_path([(0, 0.4, 0.5), (0, 0.4 - al, 0.5 + al * 0.3), (0, 0.4 - al - 0.05, 0.5 + al * 0.3)], 0.02))
        wall = b.part("wall flange", claimed=False)
        b.add(wall, frustum((0, 0.42, 0.5), (0, 0.4, 0.5), 0.06, 0.05))
        head = b.part("head")
        hr = p.f("head_radius", (0.12, 0.25))
        c = np.array([0, 0.4 - al - 0.05, 0.5 + al * 0.3])
        rot = rot_x(p.u(0.3, 0.7))
        b.add(head, frustum(c - rot @ np.array([0, 0, 0.0]), c - rot @ np.array([0, 0, hr * 0.4]), hr * 0.4, hr))
        b.add(head, frustum(c - rot @ np.array([0, 0, hr * 0.4]), c - rot @ np.array([0, 0, hr * 0.5]), hr, hr))
        face = c - rot @ np.array([0, 0, hr * 0.5])
        b.pattern(head, "dots", tuple(face - rot @ np.array([hr * 0.7, hr * 0.7, 0])), tuple(rot @ np.array([1.0, 0, 0])),
                  tuple(rot @ np.array([0, 1.0, 0])), (hr * 1.4, hr * 1.4), (hr * 0.2, hr * 0.2), hr * 0.04)
        b.detail_anchor = tuple(face)
        return b.build()
    if kind == "valve":
        pipe = b.part("pipe")
        pl = p.u(0.5, 0.8)
        pr = p.u(0.05, 0.08)
        b.add(pipe, cylinder((-pl / 2, 0, 0), (pl / 2, 0, 0), pr))
        for sx in (-1, 1):
            b.add(pipe, prism(regular_polygon(6, pr * 1.4, 0.0), 0, pr * 1.2, rot=frame_along((sx, 0, 0)),
                              offset=(sx * pl / 2 - sx * pr * 1.2, 0, 0)))
        body = b.part("body")
        b.add(body, sphere((0, 0, 0), pr * 2.0) if p.rng.random() < 0.5 else box((0, 0, 0), (pr * 3.5, pr * 3, pr * 3)))
        b.add(body, cylinder((0, 0, pr), (0, 0, pr * 4), pr * 0.5))
        hw = b.part("handwheel")
        hr = pr * p.u(2.0, 3.5)
        if p.b("lever", 0.4):
            b.add(hw, box((hr * 0.6, 0, pr * 4.2), (hr * 1.6, pr * 0.5, pr * 0.3)))
        else:
            pts = [np.array([math.cos(a) * hr, math.sin(a) * hr, pr * 4.2]) for a in np.linspace(0, 2 * PI, 17)]
            b.add(hw, tube_path(pts, pr * 0.18))
            for a in (0, PI / 2, PI, 3 * PI / 2):
                b.add(hw, cylinder((0, 0, pr * 4.2), (math.cos(a) * hr, math.sin(a) * hr, pr * 4.2), pr * 0.12))
        b.detail_anchor = (0.0, 0.0, pr * 4.2)
        return b.build()
    base = b.part("base")
    br = p.u(0.06, 0.1)
    hgt = p.f("height", (0.3, 0.6))
    b.add(base, disc_z(0, 0.03, br * 1.3, br * 1.2))
    section = p.c("body_section", ["round", "square"])
    if section == "round":
        b.add(base, disc_z(0.03, hgt, br, br * p.u(0.7, 1.0)))
    else:
        b.add(base, box((0, 0, (hgt + 0.03) / 2), (br * 1.7, br * 1.7, hgt - 0.03)))
    spout = b.part("spout")
    sr = br * p.u(0.3, 0.45)
    style = p.c("spout_style", ["gooseneck", "straight", "angled"])
    if style == "gooseneck":
        reach = p.u(0.2, 0.35)
        pts = [np.array([0, 0, hgt - 0.02])] + [np.array([0, -reach / 2 - (reach / 2) * math.cos(a), hgt + reach * 0.7 * math.sin(a)])
                                                for a in np.linspace(PI, 0.0, 8)]
        pts.append(pts[-1] + np.array([0, 0, -reach * 0.25]))
        b.add(spout, tube_path(pts, sr))
    else:
        reach = p.u(0.15, 0.3)
        drop = 0.0 if style == "straight" else p.u(0.03, 0.1)
        z = hgt * p.u(0.65, 0.9)
        b.add(spout, frustum((0, 0, z), (0, -reach, z - drop), sr * 1.3, sr))
        b.add(spout, cylinder((0, -reach, z - drop), (0, -reach, z - drop - sr * 1.2), sr * 1.05))
    handle = b.part("handle")
    if p.c("handle", ["lever", "cross"]) == "lever":
        hl = p.u(0.12, 0.22)
        b.add(handle, cylinder((0, 0, hgt), (0, 0, hgt + 0.05), br * 0.8))
        b.add(handle, box((hl / 2, 0, hgt + 0.06), (hl, br * 0.5, br * 0.35), rot_y(-p.u(0.0, 0.35))))
    else:
        for sx in (-1, 1):
            c = np.array([sx * br * 2.2, 0, 0.12])
            b.add(handle, disc_z(0.0, 0.1, br * 0.6, br * 0.5, center=(c[0], 0)))
            b.add(handle, box(c + np.array([0, 0, 0.02]), (br * 1.6, br * 0.3, 0.03)))
            b.add(handle, box(c + np.array([0, 0, 0.02]), (br * 0.3, br * 1.6, 0.03)))
    if p.b("sink", 0.2):
        sk = b.part("sink", claimed=False)
        b.add(sk, box((0, -0.15, -0.02), (0.8, 0.6, 0.04)))
    b.detail_anchor = (0.0, 0.0, hgt)
    return b.build()


def syringe(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    ln = p.f("length", (0.6, 1.0))
    r = ln * p.u(0.06, 0.1)
    barrel = b.part("barrel")
    b.add(barrel, cylinder((0, 0, 0), (0, 0, ln), r, ri=r * 0.85))
    b.add(barrel, disc_z(-r * 0.4, 0.0, r, r * 0.5))
    b.add(barrel, rounded_box((0, 0, ln), (r * 4, r * 1.6, r * 0.25), r * 0.6))
    b.pattern(barrel, "slots", (-r * 0.5, -r, ln * 0.1), (1, 0, 0), (0, 0, 1), (r * 0.8, ln * 0.75), (r * 0.8, ln * 0.075),
              ln * 0.004)
    plunger = b.part("plunger", explode=(0, 0, ln * 0.6))
    pe = ln * p.u(0.1, 0.6)
    b.add(plunger, box((0, 0, ln + pe / 2), (r * 1.2, r * 0.25, pe + ln * 0.1)))
    b.add(plunger, box((0, 0, ln + pe / 2), (r * 0.25, r * 1.2, pe + ln * 0.1)))
    b.add(plunger, disc_z(ln + pe + ln * 0.05, ln + pe + ln * 0.08, r * 1.1))
    if p.b("needle", 0.7):
        nd = b.part("needle", explode=(0, 0, -ln * 0.3))
        b.add(nd, frustum((0, 0, -r * 0.4), (0, 0, -r * 1.6), r * 0.45, r * 0.3))
        b.add(nd, cylinder((0, 0, -r * 1.6), (0, 0, -r * 1.6 - ln * p.u(0.2, 0.5)), r * 0.06))
    b.detail_anchor = (0.0, 0.0, 0.0)
    b.transform(rot_y(PI / 2 * p.u(0.7, 1.0)))
    return b.build()


def shell(p: Params, name: str) -> Design:
    """Rounded hand-held shells: computer mice, remote controls, soap bars."""
    b = DesignBuilder(name)
    kind = p.c("kind", ["mouse", "remote"])
    body = b.part("body")
    if kind == "remote":
        ln = p.f("length", (0.8, 1.1))
        w = ln * p.u(0.2, 0.3)
        t = w * p.u(0.3, 0.5)
        b.add(body, rounded_box((0, 0, t / 2), (w, ln, t), w * p.u(0.2, 0.49)))
        b.pattern(body, "dots", (-w * 0.35, -ln * 0.35, t), (1, 0, 0), (0, 1, 0), (w * 0.7, ln * 0.45),
                  (w * 0.7 / 3, ln * 0.45 / p.i("rows", (4, 7))), w * 0.08)
        b.pattern(body, "circle", (0, ln * 0.25, t), (1, 0, 0), (0, 1, 0), (w * 0.3, 0))
        b.detail_anchor = (0.0, ln * 0.25, t)
        return b.build()
    ln = p.f("length", (0.5, 0.7))
    w = ln * p.f("width_ratio", (0.5, 0.65))
    hh = ln * p.f("height_ratio", (0.25, 0.4))
    zc = p.u(-0.35, -0.15)
    b.add(body, ellipsoid((0, 0, -zc * hh), (w / 2, ln / 2, hh / (1 - zc) * 1.0), zclip=zc))
    if p.b("buttons", 0.8):
        btn = b.part("buttons")
        b.add(btn, ellipsoid((-w * 0.13, -ln * 0.22, -zc * hh + 0.004), (w * 0.2, ln * 0.25, hh / (1 - zc) * 0.95),
                             zclip=0.3))
        b.add(btn, ellipsoid((w * 0.13, -ln * 0.22, -zc * hh + 0.004), (w * 0.2, ln * 0.25, hh / (1 - zc) * 0.95),
                             zclip=0.3))
        b.add(btn, cylinder((-0.012, -ln * 0.25, hh * 0.85), (0.012, -ln * 0.25, hh * 0.85), w * 0.08))
    if p.b("cable", 0.3):
        c = b.part("cable", claimed=False)
        b.add(c, tube_path([(0, -ln / 2 + 0.01, hh * 0.4), (0, -ln / 2 - 0.15, hh * 0.35), (0.1, -ln / 2 - 0.3, 0.02)], 0.012))
    b.detail_anchor = (0.0, -ln * 0.25, hh)
    return b.build()


def glasses(p: Params, name: str) -> Design:
    b = DesignBuilder(name)
    lw = p.f("lens_width", (0.22, 0.3))
    lh = lw * p.u(0.6, 0.9)
    gap = lw * p.u(0.2, 0.35)
    frame = b.part("frame")
    shape = p.c("lens_shape", ["round", "oval", "rect"])
    rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    for sx in (-1, 1):
        cx = sx * (gap / 2 + lw / 2)
        if shape == "rect":
            b.add(frame, prism(regular_polygon(4, 1.0, PI / 4, lw / 1.41, lh / 1.41), -0.01, 0.01, rot=rot, offset=(cx, 0, 0)))
        else:
            b.add(frame, frustum((cx, -0.01, 0), (cx, 0.01, 0), lw / 2, lw / 2, lw / 2 * 0.88,
                                 squash=1.0 if shape == "round" else lh / lw))
        b.add(frame, box((sx * (gap / 2 + lw + 0.01), 0.18, lh * 0.3), (0.012, 0.38, 0.02)))
    b.add(frame, box((0, 0, lh * 0.25), (gap + 0.02, 0.015, 0.015)))
    b.detail_anchor = (0.0, 0.0, 0.0)
    return b.build()


def footwear(p: Params, name: str) -> Design:
    """Shoes, boots and sandals: two-piece sole outline, domed upper, collar, laces, tread."""
    b = DesignBuilder(name)
    ln = p.f("length", (0.9, 1.1))
    w = ln * p.f("width_ratio", (0.32, 0.4))
    sh = ln * p.f("sole_height", (0.03, 0.08))
    sole = b.part("sole")
    a = np.linspace(-PI / 2, PI / 2, 9)
    toe = np.c_[0.15 * ln + 0.33 * ln * np.cos(a), 0.5 * w * np.sin(a)]
    toe = np.vstack([toe, [[-0.05 * ln, 0.46 * w], [-0.05 * ln, -0.46 * w]]])
    heel = np.c_[-0.28 * ln + 0.2 * ln * np.cos(a + PI), 0.4 * w * np.sin(a + PI)]
    heel = np.vstack([heel, [[0.0, -0.4 * w], [0.0, 0.4 * w]]])
    for poly in (toe, heel):
        c = poly.mean(0)
        ang = np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0])
        b.add(sole, prism(poly[np.argsort(ang)], 0.0, sh))
    if p.b("heel_block", 0.2):
        b.add(sole, box((-0.33 * ln, 0, -sh), (0.22 * ln, 0.6 * w, sh * 2)))
    if p.b("tread", 0.8):
        pitch = w * p.u(0.08, 0.15)
        b.pattern(sole, p.c("tread_kind", ["grid", "slots", "dots", "stripes"]), (-0.5 * ln, -0.5 * w, 0.0),
                  (1, 0, 0), (0, 1, 0), (ln, w), (pitch, pitch), pitch * 0.3)
    upper = b.part("upper")
    style = p.c("style", ["sneaker", "boot", "sandal"])
    uh = ln * p.f("upper_height", (0.25, 0.35))
    if style == "sandal":
        for x in np.linspace(-0.2, 0.3, p.i("straps", (2, 3))) * ln:
            pts = [(x, -0.45 * w, sh), (x, -0.35 * w, sh + uh * 0.45), (x, 0.35 * w, sh + uh * 0.45), (x, 0.45 * w, sh)]
            b.add(upper, tube_path(pts, ln * 0.02))
        b.detail_anchor = (0.0, 0.0, sh)
        return b.build()
    b.add(upper, ellipsoid((0.05 * ln, 0, sh), (0.46 * ln, 0.47 * w, uh * 0.75), zclip=0.0))
    boot = style == "boot"
    col_h = uh * (p.u(1.8, 2.6) if boot else p.u(0.95, 1.15))
    cx = -0.2 * ln
    cr = 0.46 * w
    el = p.u(1.1, 1.4)  # collar elongation along the foot
    top_r = cr * (p.u(0.85, 1.0) if boot else 0.9)
    b.add(upper, frustum((cx, 0, sh), (cx - 0.03 * ln, 0, sh + col_h), cr, top_r, squash=el))
    b.add(upper, frustum((cx - 0.03 * ln, 0, sh + col_h - 0.01), (cx - 0.035 * ln, 0, sh + col_h + 0.015 * ln),
                         top_r * 1.05, top_r * 1.05, top_r * 0.8, squash=el))
    if p.b("laces", 0.8):
        tongue = b.part("tongue")
        b.add(tongue, box((0.02 * ln, 0, sh + uh * 0.75), (0.3 * ln, 0.22 * w, 0.03 * ln), rot_y(0.35)))
        b.pattern(upper, "dots", (-0.12 * ln, -0.18 * w, sh + uh * 0.5), (1, 0, 0), (0, 1, 0), (0.3 * ln, 0.36 * w),
                  (0.06 * ln, 0.3 * w), 0.012 * ln)
    if p.b("stripe", 0.5):
        b.pattern(upper, p.c("stripe_kind", ["stripes", "slots"]), (-0.2 * ln, -0.5 * w, sh + uh * 0.1), (1, 0, 0),
                  (0, 0, 1), (0.4 * ln, uh * 0.5), (0.08 * ln, uh * 0.2), 0.02 * ln)
    b.detail_anchor = (0.3 * ln, 0.0, sh)
    return b.build()


def cutlery(p: Params, name: str) -> Design:
    """Spoons, forks, knives and ladles: a tapered flat handle and a head, lying along x."""
    b = DesignBuilder(name)
    hl = p.f("handle_length", (0.55, 0.75))
    hw = p.f("handle_width", (0.06, 0.1))
    t = p.f("thickness", (0.012, 0.025))
    handle = b.part("handle")
    kind = p.c("head", ["spoon", "fork", "knife", "ladle"])
    end = p.c("handle_end", ["round", "square", "tapered"])
    tip_w = hw * (p.u(1.1, 1.6) if end != "tapered" else p.u(0.5, 0.8))
    poly = np.array([[0.0, -hw * 0.3], [hl, -tip_w / 2], [hl, tip_w / 2], [0.0, hw * 0.3]])
    b.add(handle, prism(poly, 0.0, t))
    if end == "round":
        b.add(handle, cylinder((hl, 0, 0), (hl, 0, t), tip_w / 2))
    if p.b("handle_pattern", 0.4):
        b.pattern(handle, p.c("handle_pattern_kind", ["dots", "stripes", "grid"]), (hl * 0.5, -tip_w * 0.3, t),
                  (1, 0, 0), (0, 1, 0), (hl * 0.45, tip_w * 0.6), (hw * 0.35, hw * 0.35), hw * 0.08)
    head = b.part("head")
    if kind in ("spoon", "ladle"):
        bl = p.f("bowl_length", (0.22, 0.3)) * (0.8 if kind == "ladle" else 1.0)
        bw = bl * p.u(0.55, 0.75) if kind == "spoon" else bl * 0.95
        depth = bl * p.u(0.12, 0.25) if kind == "spoon" else bl * 0.5
        b.add(head, ellipsoid((-bl * 0.45, 0, depth * 0.6), (bl / 2, bw / 2, depth), rot_x(PI), zclip=0.0))
        b.add(head, box((-bl * 0.02, 0, t / 2), (bl * 0.12, hw * 0.5, t)))
        if kind == "ladle":
            b.transform(rot_y(-p.u(0.3, 0.6)))
    elif kind == "fork":
        fl = p.u(0.18, 0.25)
        fw = hw * p.u(1.2, 1.6)
        b.add(head, prism(np.array([[-fl * 0.35, -fw / 2], [0.0, -hw * 0.3], [0.0, hw * 0.3], [-fl * 0.35, fw / 2]]), 0, t))
        n = p.i("tines", (3, 4))
        for i in range(n):
            y = (i - (n - 1) / 2) * fw / n
            b.add(head, box((-fl * 0.35 - fl * 0.32, y, t / 2), (fl * 0.65, fw / n * 0.55, t)))
    else:
        bl = p.u(0.3, 0.45)
        bw = hw * p.u(1.0, 1.5)
        b.add(head, prism(np.array([[-bl, 0.0], [-bl * 0.85, -bw / 2], [0.0, -bw / 2], [0.0, bw * 0.1]]), 0, t * 0.6,
                          offset=(0, 0, t * 0.2)))
    b.detail_anchor = (0.0, 0.0, t)
    b.transform(rot_z(p.u(-0.2, 0.2)))
    return b.build()


def handbag(p: Params, name: str) -> Design:
    """Handbags, tote bags and purses: trapezoid body, handles, flap, clasp, feet."""
    b = DesignBuilder(name)
    w = p.f("width", (0.7, 1.0))
    h = p.f("height", (0.45, 0.7))
    d = p.f("depth", (0.15, 0.3))
    body = b.part("body")
    top = p.u(0.7, 1.0)
    poly = np.array([[-w / 2, 0.0], [w / 2, 0.0], [w / 2 * top, h], [-w / 2 * top, h]])
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # polygon in x-z, extruded along y
    b.add(body, prism(poly, -d / 2, d / 2, rot=rot))
    if p.b("flap", 0.5):
        flap = b.part("flap")
        fh = h * p.u(0.3, 0.6)
        b.add(flap, prism(np.array([[-w / 2 * top, h - fh], [w / 2 * top, h - fh], [w / 2 * top, h], [-w / 2 * top, h]]),
                          -0.006, 0.006, rot=rot, offset=(0, -d / 2 - 0.006, 0)))
        b.add(flap, box((0, -d / 2 - 0.02, h - fh + 0.03), (w * 0.08, 0.02, 0.05)))
    handles = b.part("handles")
    hh = h * p.f("handle_height", (0.3, 0.7))
    for y in ((-d / 4, d / 4) if p.b("two_handles", 0.6) else (0.0,)):
        hw = w * top * p.u(0.25, 0.45)
        pts = arc_points((0, y, h), hh, 0.0, PI, 9, rx=hw)
        b.add(handles, tube_path(pts, 0.012))
    if p.b("stitching", 0.5):
        b.pattern(body, "dots", (-w * 0.45, -d / 2, 0.03), (1, 0, 0), (0, 0, 1), (w * 0.9, h * 0.9),
                  (0.03, h * 0.9), 0.006)
    if p.b("feet", 0.4):
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.add(body, disc_z(-0.015, 0.001, 0.02, center=(sx * w * 0.4, sy * d * 0.3)))
    b.detail_anchor = (0.0, -d / 2, h * 0.7)
    return b.build()


def headphones(p: Params, name: str) -> Design:
    """Over-ear headphones: headband arc, sliders, ear cups with cushions."""
    b = DesignBuilder(name)
    r = p.f("band_radius", (0.35, 0.45))
    band = b.part("headband")
    bw = p.u(0.02, 0.04)
    pts = arc_points((0, 0, 0), r, 0.05, PI - 0.05, 13, u=(1, 0, 0), v=(0, 0, 1))
    b.add(band, tube_path(pts, bw))
    if p.b("padding", 0.5):
        b.add(band, tube_path(arc_points((0, 0, 0), r - bw * 1.5, 0.7, PI - 0.7, 7), bw * 1.3))
    cups = b.part("ear cups")
    cr = p.f("cup_radius", (0.12, 0.18))
    squash = p.f("cup_squash", (0.7, 1.0))
    for sx in (-1, 1):
        x = sx * r
        b.add(cups, box((x, 0, -0.05), (0.03, 0.05, 0.12)))
        c = np.array([x + sx * 0.02, 0, -0.2])
        b.add(cups, frustum(c, c + np.array([sx * cr * 0.7, 0, 0]), cr, cr * p.u(0.8, 1.0), squash=squash, roll=PI / 2))
        b.add(cups, frustum(c - np.array([sx * cr * 0.25, 0, 0]), c, cr * 1.02, cr * 1.02, cr * 0.6, squash=squash,
                            roll=PI / 2))
        if p.b("cup_pattern", 0.4):
            b.pattern(cups, "rings", tuple(c + np.array([sx * cr * 0.7, 0, 0])), (0, 1, 0), (0, 0, 1), (cr * 0.7, 0),
                      (cr * 0.2, 0), cr * 0.03)
    b.detail_anchor = (r, 0.0, -0.2)
    return b.build()


def slab_device(p: Params, name: str) -> Design:
    """Smartphones, tablets and e-readers: a thin rounded slab with screen, camera, buttons."""
    b = DesignBuilder(name)
    w = p.f("width", (0.45, 0.55))
    h = p.f("height", (0.9, 1.0))
    t = p.f("thickness", (0.04, 0.07))
    body = b.part("body")
    rr = min(w, h) * p.f("corner", (0.08, 0.2))
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # rounded corners in the x-z plane
    b.add(body, rounded_box((0, 0, h / 2), (w, h, t), rr, rot))
    bez = w * p.f("bezel", (0.03, 0.12))
    b.pattern(body, "rect", (-w / 2 + bez, -t / 2, bez * p.u(1.0, 2.5)), (1, 0, 0), (0, 0, 1),
              (w - 2 * bez, h - 2 * bez * p.u(1.0, 2.5)))
    if p.b("home_button", 0.3):
        b.pattern(body, "circle", (0, -t / 2, bez * 0.8), (1, 0, 0), (0, 0, 1), (bez * 0.5, 0))
    cam = b.part("camera")
    n = p.i("lenses", (1, 3))
    bx = -w / 2 + w * p.u(0.15, 0.3)
    bz = h - h * p.u(0.1, 0.18)
    if p.b("camera_bump", 0.6):
        b.add(cam, rounded_box((bx + 0.03, t / 2 + 0.006, bz - 0.03), (w * 0.35, 0.012, n * 0.08 + 0.04), 0.03, rot))
    for i in range(n):
        b.add(cam, cylinder((bx, t / 2, bz - i * 0.08), (bx, t / 2 + 0.02, bz - i * 0.08), 0.028))
    for i in range(p.i("side_buttons", (1, 3))):
        b.add(body, box((w / 2 + 0.004, 0, h * (0.75 - i * 0.1)), (0.01, t * 0.4, h * 0.07)))
    b.detail_anchor = (bx, t / 2, bz)
    return b.build()


def wristwatch(p: Params, name: str) -> Design:
    """Wrist watches: case, bezel, crown, lugs, strap pieces, dial with ticks and hands."""
    b = DesignBuilder(name)
    r = p.f("case_radius", (0.18, 0.25))
    t = r * p.u(0.4, 0.6)
    case = b.part("case")
    shape = p.c("case_shape", ["round", "square", "tonneau"])
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    if shape == "round":
        b.add(case, frustum((0, t / 2, 0), (0, -t / 2, 0), r, r * 0.95))
        b.add(case, frustum((0, -t / 2 + 0.002, 0), (0, -t / 2 - r * 0.08, 0), r, r * 0.93, r * 0.82))
    elif shape == "square":
        b.add(case, rounded_box((0, 0, 0), (2 * r, 2 * r, t), r * 0.25, rot))
    else:
        b.add(case, frustum((0, t / 2, 0), (0, -t / 2, 0), r, r * 0.95, squash=1.25))
    b.pattern(case, "ticks", (0, -t / 2, 0), (1, 0, 0), (0, 0, 1), (r * 0.75, r * 0.12), (0, r * 0.12), r * 0.025, count=12)
    b.add(case, box((r * 0.2 * 0.5, -t / 2 - 0.006, r * 0.3), (r * 0.05, 0.005, r * 0.6), rot_y(0.3)))
    b.add(case, cylinder((r * 0.98, 0, 0), (r * 1.15, 0, 0), r * 0.08))
    strap = b.part("strap", claimed=p.b("strap_claimed", 0.5))
    sw = r * p.u(1.0, 1.4)
    for sz in (-1, 1):
        pts = [np.array([0, 0.0, sz * r * 0.9]), np.array([0, t * 0.3, sz * r * 1.8]), np.array([0, t * 1.2, sz * r * 2.6])]
        for a0, a1 in zip(pts[:-1], pts[1:]):
            mid = 0.5 * (a0 + a1)
            seg = a1 - a0
            ang = math.atan2(seg[1], seg[2])
            b.add(strap, box(mid, (sw, t * 0.35, float(np.linalg.norm(seg))), rot_x(-ang)))
    b.detail_anchor = (0.0, -t / 2, 0.0)
    return b.build()


FAMILIES: Mapping[str, Callable[[Params, str], Design]] = MappingProxyType({
    "vessel": vessel,
    "lamp": lamp,
    "legged": legged,
    "chair": chair,
    "cabinet": cabinet,
    "enclosure": enclosure,
    "radiator": radiator,
    "wheel": wheel,
    "steering_wheel": steering_wheel,
    "fan": fan,
    "hand_tool": hand_tool,
    "fastener": fastener,
    "dumbbell": dumbbell,
    "kettlebell": kettlebell,
    "toy_vehicle": toy_vehicle,
    "toy_brick": toy_brick,
    "luggage": luggage,
    "clock": clock,
    "faucet": faucet,
    "syringe": syringe,
    "shell": shell,
    "glasses": glasses,
    "footwear": footwear,
    "cutlery": cutlery,
    "handbag": handbag,
    "headphones": headphones,
    "slab_device": slab_device,
    "wristwatch": wristwatch,
})


# -- generic surface detail ----------------------------------------------------------------------

DECOR_KINDS = ("slots", "dots", "grid", "rect", "rings")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def decorate(design: Design, rng: np.random.Generator, level: int, p_finish: float = 0.5,
             p_caps: float = 0.85) -> Design:
    """Add ``level`` surface decorations (vents, perforations, ribs, knurling, inset panels,
    concentric rings) to the larger solids of claimed parts, on every face of a solid that a
    decoration suits, so that the detail shows in several views; with ``p_finish`` one of them
    is a finish of the main part on all its faces, with ``p_caps`` the main part's upward and
    downward faces get a decoration too (what top and bottom views show). Returns a new design."""
    if level <= 0:
        return design
    claimed = [i for i, p in enumerate(design.parts) if p.claimed]
    prims = [p for p in design.prims if p.part in claimed and p.kind in ("cone", "convex")]
    if not prims:
        return design
    sizes = np.array([float(np.ptp(p.world_hull(), axis=0).max()) for p in prims])
    order = np.argsort(-sizes)[: max(3, level)]
    b = DesignBuilder(design.object_type)
    b.parts, b.prims, b.patterns = list(design.parts), list(design.prims), list(design.patterns)
    b.detail_anchor = design.detail_anchor
    main = prims[int(order[0])]
    if rng.random() < p_caps:
        hull = np.concatenate([p.world_hull() for p in design.prims if p.part == main.part])
        lo, hi = hull.min(0), hull.max(0)
        ext = (hi - lo) * 0.8
        kind = ("rings", "dots", "slots", "grid", "rect", "circle")[int(rng.integers(6))]
        if kind in ("rings", "circle"):
            rad = 0.5 * float(min(ext[0], ext[1])) * rng.uniform(0.5, 1.0)
            b.pattern(main.part, kind, tuple(0.5 * (lo + hi)), (1, 0, 0), (0, 1, 0), (rad, 0),
                      (rad * rng.uniform(0.2, 0.45), 0), rad * 0.03)
        else:
            pitch = float(min(ext[0], ext[1])) * rng.uniform(0.08, 0.2)
            b.pattern(main.part, kind, tuple(lo + (hi - lo) * 0.1), (1, 0, 0), (0, 1, 0), (float(ext[0]), float(ext[1])),
                      (pitch, pitch * rng.uniform(0.6, 1.6)), pitch * rng.uniform(0.2, 0.35))
    ext = np.ptp(main.world_hull(), axis=0)
    if rng.random() < p_finish and ext.min() > 0.2 * ext.max():  # not on rods and plates
        # a surface finish of the largest solid's part, on all its faces (shows in every view)
        pitch = float(sizes[order[0]]) * rng.uniform(0.04, 0.1)
        kind = ("dots", "grid", "slots", "stripes")[int(rng.integers(4))]
        b.pattern(main.part, kind, tuple(rng.uniform(-1, 1, 3) * pitch), (1, 0, 0), (0, 1, 0), (0.0, 0.0),
                  (pitch, pitch * rng.uniform(0.6, 1.5)), pitch * rng.uniform(0.15, 0.3), surface="triplanar")
        level -= 1
    for _ in range(level):
        prim = prims[int(order[int(rng.integers(len(order)))])]
        kind = DECOR_KINDS[int(rng.integers(len(DECOR_KINDS)))]
        m, off = prim.matrix, prim.offset
        if prim.kind == "cone":
            h, r0, r1 = prim.params[:3]
            r = max(r0, r1)
            v = m @ np.array([0.0, 0.0, 1.0])
            u = m @ np.array([1.0, 0.0, 0.0])
            if kind == "rings":  # on the top cap
                if r1 < 0.3 * r:
                    continue
                b.pattern(prim.part, "rings", off + v * h, u, m @ np.array([0.0, 1.0, 0.0]), (r1 * 0.85, 0),
                          (r1 * rng.uniform(0.15, 0.35), 0), r1 * 0.02)
                continue
            if kind == "rect":
                kind = "grid"
            za, zb = sorted(rng.uniform(0.1, 0.9, size=2) * h)
            if zb - za < 0.2 * h:
                za, zb = 0.15 * h, 0.85 * h
            pitch = r * rng.uniform(0.12, 0.3)
            b.pattern(prim.part, kind, off + v * za, _unit(u), _unit(v), (2 * PI * r, zb - za),
                      (pitch, pitch * rng.uniform(0.5, 1.5)), pitch * rng.uniform(0.2, 0.35), surface="cylinder")
        else:
            verts = prim.hull
            lo, hi = verts.min(0), verts.max(0)
            ext = hi - lo
            faces = [(ax, sgn) for ax in range(3) for sgn in (-1, 1)]
            # decorate the faces across one axis (e.g. front and back, or all four sides)
            axes = [int(rng.integers(3))] if rng.random() < 0.6 else [0, 1]
            pitch = float(np.sort(ext)[1]) * rng.uniform(0.06, 0.14)
            frac = rng.uniform(0.5, 0.8)
            for ax, sgn in faces:
                if ax not in axes:
                    continue
                others = [a for a in range(3) if a != ax]
                a1, a2 = others
                corner = np.zeros(3)
                corner[ax] = hi[ax] if sgn > 0 else lo[ax]
                corner[a1] = lo[a1] + ext[a1] * (1 - frac) / 2
                corner[a2] = lo[a2] + ext[a2] * (1 - frac) / 2
                e1, e2 = np.eye(3)[a1], np.eye(3)[a2]
                origin = m @ corner + off
                if kind == "rings":
                    centre = corner + (e1 * ext[a1] + e2 * ext[a2]) * frac / 2
                    rad = 0.5 * frac * min(ext[a1], ext[a2])
                    b.pattern(prim.part, "rings", m @ centre + off, m @ e1, m @ e2, (rad, 0),
                              (rad * rng.uniform(0.25, 0.5), 0), rad * 0.03)
                else:
                    b.pattern(prim.part, kind, origin, m @ e1, m @ e2, (ext[a1] * frac, ext[a2] * frac),
                              (pitch, pitch * rng.uniform(0.6, 1.6)), pitch * rng.uniform(0.2, 0.35))
    return b.build()
