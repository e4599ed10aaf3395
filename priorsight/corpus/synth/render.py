"""Patent-style line drawings of a :class:`~priorsight.corpus.synth.geometry.Design`.

Pipeline for one view (all numpy, no Python loop over pixels):

1. frame an orthographic or perspective camera on the design's hull points;
2. ray-cast every solid analytically over the pixel rectangle its hull covers, at ``supersample``
   times the output resolution, keeping per pixel the nearest depth, outward normal, part id and
   a shading value (a z-buffer: hidden surfaces and lines disappear by construction);
3. draw edges where the part id changes (silhouettes, seams), where depth jumps (occluding
   contours inside a part) and where normals crease; surface decorations add their outlines;
   iso-lines of the surface's facing angle on the side away from the light become shading
   strokes; unclaimed parts get broken (dashed) lines;
4. thicken, box-downsample (antialiasing) and add the figure label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from priorsight.corpus.synth.geometry import CONE, CONVEX, ELLIPSOID, Design, Primitive, SurfacePattern

#: standard views: forward (viewing) direction and up vector in world coordinates
STANDARD_VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "front": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "rear": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "bottom": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
}

INF = np.float32(np.inf)


@dataclass(frozen=True)
class ViewSpec:
    """How to look at a design: a standard orthographic view or a perspective one."""

    view: str  # "perspective" or a key of STANDARD_VIEWS
    azimuth: float = 35.0  # perspective: degrees from the front towards the right
    elevation: float = 25.0  # perspective: degrees above the horizon
    distance: float = 4.0  # perspective: eye distance in design radii (larger = flatter)
    zoom: float = 1.0  # > 1: enlarged detail view centred on ``target``
    target: tuple[float, float, float] | None = None
    exploded: float = 0.0  # offset factor of the parts' explode vectors


@dataclass(frozen=True)
class DrawingStyle:
    """Per-patent drafting style (line weight, shading, margins, label)."""

    line_width: float = 1.1  # output pixels
    crease_deg: float = 32.0
    shading: int = 3  # shading lines per curved surface on the side away from the light (0 = none)
    shading_spread: float = 0.45  # how far from the silhouette they reach (fraction of the radius)
    shade_strokes: bool = True  # break shading lines into strokes
    ink: float = 1.7  # darkness gain of antialiased lines (coverage -> gray)
    outline: float = 1.0  # width factor of the outline (silhouette against the background)
    flat_hatch: float = 0.0  # > 0: spacing (output px) of diagonal hatching on flat faces away from the light
    hatch_angle: int = 1  # +1 / -1: direction of the hatching diagonals
    dash: float = 4.0  # output pixels per dash of broken lines
    margin: float = 0.08  # fraction of the canvas around the object
    label: bool = True
    label_size: float = 0.055  # font size as a fraction of the canvas
    label_gap: float = 0.05  # space between drawing and label, fraction of the canvas
    label_above: bool = False
    supersample: float = 1.25  # internal resolution / output resolution


@dataclass
class Camera:
    forward: np.ndarray
    up: np.ndarray
    right: np.ndarray
    perspective: bool
    origin: np.ndarray  # ortho: a point of the pixel (0, 0) ray; persp: the eye
    pixel: float  # world units per pixel (ortho) or tan per pixel (persp)
    cx: float
    cy: float
    width: int
    height: int

    def rays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ray origin and direction as affine functions of pixel coordinates:
        ``o = O0 + px*OX + py*OY``, ``d = D0 + px*DX + py*DY`` (d.forward == 1 for perspective)."""
        z = np.zeros(3)
        if self.perspective:
            d0 = self.forward - self.cx * self.pixel * self.right + self.cy * self.pixel * self.up
            return self.origin, z, z, d0, self.pixel * self.right, -self.pixel * self.up
        o0 = self.origin - self.cx * self.pixel * self.right + self.cy * self.pixel * self.up
        return o0, self.pixel * self.right, -self.pixel * self.up, self.forward, z, z

    def project(self, pts: np.ndarray) -> np.ndarray:
        """World points (n, 3) -> pixel coordinates (n, 2)."""
        if self.perspective:
            q = pts - self.origin
            z = np.maximum(q @ self.forward, 1e-6)
            return np.stack([self.cx + (q @ self.right) / z / self.pixel,
                             self.cy - (q @ self.up) / z / self.pixel], axis=1)
        q = pts - self.origin
        return np.stack([self.cx + (q @ self.right) / self.pixel, self.cy - (q @ self.up) / self.pixel], axis=1)


def view_axes(spec: ViewSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, up, right) unit vectors of a view."""
    if spec.view == "perspective":
        a, e = math.radians(spec.azimuth), math.radians(spec.elevation)
        to_eye = np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])
        f = -to_eye
        up = np.array([0.0, 0.0, 1.0]) - f[2] * f
        up /= np.linalg.norm(up)
    elif spec.view in STANDARD_VIEWS:
        f, up = (np.asarray(v, dtype=np.float64) for v in STANDARD_VIEWS[spec.view])
    else:
        raise ValueError(f"unknown view {spec.view!r}: use 'perspective' or one of {sorted(STANDARD_VIEWS)}")
    return f, up, np.cross(f, up)


def label_strip(style: DrawingStyle, size: int) -> int:
    """Height (output pixels) of the strip holding the figure label."""
    return int(round((style.label_size * 1.6 + style.label_gap) * size)) if style.label else 0


def frame_camera(hull: np.ndarray, spec: ViewSpec, size: int, style: DrawingStyle) -> tuple[Camera, int, int]:
    """A camera that fits ``hull`` into a canvas whose long side is ``size`` (label strip
    included); returns the internal-resolution camera and the drawing area (width, height)
    in output pixels, label strip excluded."""
    f, up, right = view_axes(spec)
    center = 0.5 * (hull.min(0) + hull.max(0))
    radius = float(np.max(np.linalg.norm(hull - center, axis=1))) or 1.0
    if spec.target is not None and spec.zoom > 1:
        center = np.asarray(spec.target, dtype=np.float64)
    perspective = spec.view == "perspective"
    if perspective:
        eye = center - f * radius * spec.distance
        q = hull - eye
        z = np.maximum(q @ f, 1e-6)
        u, v = (q @ right) / z, (q @ up) / z
    else:
        u, v = hull @ right, hull @ up
    label_h = label_strip(style, size)
    margin = style.margin * size
    if spec.zoom > 1:  # detail view: a window around the target
        if perspective:
            cu, cv = 0.0, 0.0
        else:
            cu, cv = float(center @ right), float(center @ up)
        half = 0.5 * max(u.max() - u.min(), v.max() - v.min()) / spec.zoom
        u_lo, u_hi, v_lo, v_hi = cu - half, cu + half, cv - half, cv + half
    else:
        u_lo, u_hi, v_lo, v_hi = float(u.min()), float(u.max()), float(v.min()), float(v.max())
    ext_u, ext_v = max(u_hi - u_lo, 1e-6), max(v_hi - v_lo, 1e-6)
    avail = size - 2 * margin
    scale = min(avail / ext_u, (avail - label_h) / ext_v)  # output pixels per unit
    min_side = 0.5 * size
    width = int(round(max(ext_u * scale + 2 * margin, min_side)))
    height = int(round(max(ext_v * scale + 2 * margin, min_side - label_h)))
    ss = style.supersample
    pixel = 1.0 / (scale * ss)
    iw, ih = int(round(width * ss)), int(round(height * ss))
    cx = 0.5 * iw
    cy = 0.5 * ih
    # the pixel (cx, cy) looks at the centre of the extents
    mu, mv = 0.5 * (u_lo + u_hi), 0.5 * (v_lo + v_hi)
    if perspective:
        # rotate nothing: shift the principal point instead
        cx -= mu / pixel
        cy += mv / pixel
        cam = Camera(f, up, right, True, eye, pixel, cx, cy, iw, ih)
    else:
        origin = mu * right + mv * up + (float(center @ f) - 4 * radius) * f
        cam = Camera(f, up, right, False, origin, pixel, cx, cy, iw, ih)
    return cam, width, height


# -- ray casting --------------------------------------------------------------------------------

def _lin(a: float, b: float, c: float, px: np.ndarray, py: np.ndarray):
    """a + b*px + c*py with zero terms skipped (keeps broadcast shapes small)."""
    out = a
    if abs(b) > 1e-12:
        out = out + b * px
    if abs(c) > 1e-12:
        out = out + c * py
    return out


def _cone_side(ox, oy, oz, dx, dy, dz, r0: float, k: float, h: float):
    """Nearest positive hit of the cone surface ``x^2+y^2 = (r0 + k z)^2`` with 0 <= z <= h."""
    w0 = r0 + k * oz
    wd = k * dz
    a = dx * dx + dy * dy - wd * wd
    if np.isscalar(a) and abs(a) < 1e-12:
        return None
    b = ox * dx + oy * dy - w0 * wd
    c = ox * ox + oy * oy - w0 * w0
    sq = np.sqrt(b * b - a * c)  # nan where the ray misses (callers silence the warnings)
    inv = 1.0 / a
    t1 = (-b - sq) * inv
    t2 = (-b + sq) * inv
    z1 = oz + t1 * dz
    z2 = oz + t2 * dz
    t1 = np.where((t1 > 0) & (z1 >= 0) & (z1 <= h), t1, INF)
    t2 = np.where((t2 > 0) & (z2 >= 0) & (z2 <= h), t2, INF)
    return np.minimum(t1, t2)


def _cap(ox, oy, oz, dx, dy, dz, zc: float, r_out: float, r_in: float):
    if np.isscalar(dz) and abs(dz) < 1e-12:
        return None
    t = (zc - oz) / dz
    x = ox + t * dx
    y = oy + t * dy
    rr = x * x + y * y
    ok = (t > 0) & (rr <= r_out * r_out)
    if r_in > 0:
        ok &= rr >= r_in * r_in
    return np.where(ok, t, INF)


def _first(cands: list, with_code: bool):
    """Elementwise minimum of candidate hit arrays and (``with_code``) the index of the winner."""
    live = [(i, c) for i, c in enumerate(cands) if c is not None]
    if not live:
        return None, None
    code, t = live[0]
    for i, c in live[1:]:
        if with_code:
            code = np.where(c < t, np.int8(i), code)
        t = np.minimum(t, c)
    return t, (code if with_code else None)


def _convex_parallel(planes: np.ndarray, rays: _Rays, with_code: bool):
    """Convex polyhedron hit for parallel rays: per plane the entry/exit parameter is linear in
    the pixel coordinates, so each plane costs one broadcast add."""
    n = planes[:, :3]
    nd = n @ rays.ad
    a, b, c = planes[:, 3] - n @ rays.ao, -(n @ rays.bo), -(n @ rays.co)
    t_in = -INF
    t_out = INF
    best = np.int8(-1)
    for j in range(len(planes)):
        if abs(nd[j]) < 1e-12:  # parallel to the plane: inside everywhere or nowhere on this side
            t_out = np.where(_lin(float(a[j]), float(b[j]), float(c[j]), rays.px, rays.py) < 0, -INF, t_out)
            continue
        tp = _lin(float(a[j] / nd[j]), float(b[j] / nd[j]), float(c[j] / nd[j]), rays.px, rays.py)
        if nd[j] < 0:
            if with_code:
                best = np.where(tp > t_in, np.int8(j), best)
            else:
                best = np.int8(0)
            t_in = np.maximum(t_in, tp)
        else:
            t_out = np.minimum(t_out, tp)
    hit = (t_in <= t_out) & (t_in > 0) & (best >= 0)
    return np.where(hit, t_in, INF), best


def _hit(prim: Primitive, rays: _Rays, with_code: bool = False):
    """(t, code) of the first surface hit (t = inf on a miss); ``code`` (only ``with_code``)
    says which surface of the primitive was hit (see :func:`_surface`)."""
    if prim.kind == CONVEX and rays.parallel:
        return _convex_parallel(prim.planes, rays, with_code)
    (ox, oy, oz), (dx, dy, dz) = rays.arrays()
    if prim.kind == CONE:
        h, r0, r1, ri0, ri1 = prim.params
        hollow = ri0 > 0 or ri1 > 0
        return _first([_cone_side(ox, oy, oz, dx, dy, dz, r0, (r1 - r0) / h, h),
                       _cone_side(ox, oy, oz, dx, dy, dz, ri0, (ri1 - ri0) / h, h) if hollow else None,
                       _cap(ox, oy, oz, dx, dy, dz, 0.0, r0, ri0),
                       _cap(ox, oy, oz, dx, dy, dz, h, r1, ri1)], with_code)
    if prim.kind == ELLIPSOID:
        zc = prim.params[0]
        a = dx * dx + dy * dy + dz * dz
        b = ox * dx + oy * dy + oz * dz
        c = ox * ox + oy * oy + oz * oz - 1.0
        t1 = (-b - np.sqrt(b * b - a * c)) / a
        t1 = np.where((t1 > 0) & (oz + t1 * dz >= zc), t1, INF)
        cap = _cap(ox, oy, oz, dx, dy, dz, zc, math.sqrt(max(0.0, 1 - zc * zc)), 0.0) if zc > -1 else None
        return _first([t1, cap], with_code)
    if prim.kind == CONVEX:
        t_in = -INF
        t_out = INF
        best = np.int8(-1)
        for j, (px_, py_, pz_, dist) in enumerate(prim.planes):
            nd = px_ * dx + py_ * dy + pz_ * dz
            no = px_ * ox + py_ * oy + pz_ * oz
            if np.isscalar(nd):
                if abs(nd) < 1e-12:  # ray parallel to the plane: outside stays outside
                    t_out = np.where(no > dist, -INF, t_out)
                    continue
                tp = (dist - no) / nd
                if nd < 0:
                    if with_code:
                        best = np.where(tp > t_in, np.int8(j), best)
                    else:
                        best = np.int8(0)
                    t_in = np.maximum(t_in, tp)
                else:
                    t_out = np.minimum(t_out, tp)
            else:
                tp = (dist - no) / nd
                entering = nd < 0
                closer = entering & (tp > t_in)
                best = np.where(closer, np.int8(j), best)
                t_in = np.where(closer, tp, t_in)
                t_out = np.where(nd > 0, np.minimum(t_out, tp), t_out)
                t_out = np.where((nd == 0) & (no > dist), -INF, t_out)
        hit = (t_in <= t_out) & (t_in > 0) & (best >= 0)
        return np.where(hit, t_in, INF), best
    raise ValueError(f"unknown primitive kind {prim.kind!r}")


def _surface_code(prim: Primitive, x, y, z) -> np.ndarray:
    """Which surface of a cone or ellipsoid a hit point (local frame) lies on (see _hit)."""
    if prim.kind == CONE:
        h, r0, r1, ri0, ri1 = prim.params
        tol = 1e-4 * max(h, r0, r1)
        rr = np.sqrt(x * x + y * y)
        code = np.where(z <= tol, np.int8(2), np.where(z >= h - tol, np.int8(3), np.int8(0)))
        if ri0 > 0 or ri1 > 0:
            outer = r0 + (r1 - r0) / h * z
            inner = ri0 + (ri1 - ri0) / h * z
            code = np.where((code == 0) & (np.abs(rr - inner) < np.abs(rr - outer)), np.int8(1), code)
        # a hit on a cap rim can be the side: trust the side when the point lies on it
        return code
    return np.where(z <= prim.params[0] + 1e-5, np.int8(1), np.int8(0)) if prim.params[0] > -1 else np.zeros(np.shape(z), np.int8)


def _surface(prim: Primitive, x, y, z, code):
    """Local outward normal and local shading direction (None: flat, unshaded) at hit points."""
    if prim.kind == CONE:
        h, r0, r1, ri0, ri1 = prim.params
        k, ki = (r1 - r0) / h, (ri1 - ri0) / h
        side = code <= 1
        inner = code == 1
        sign = np.where(inner, -1.0, 1.0).astype(np.float32)
        sx, sy = x * sign, y * sign
        nz = np.where(side, np.where(inner, -ki * (ri0 + ki * z), -k * (r0 + k * z)) * sign,
                      np.where(code == 2, -1.0, 1.0))
        nx, ny = np.where(side, sx, 0.0), np.where(side, sy, 0.0)
        return (nx, ny, nz), (np.where(side, sx, np.nan), np.where(side, sy, np.nan), np.zeros_like(sx))
    if prim.kind == ELLIPSOID:
        on = code == 0
        return ((np.where(on, x, 0.0), np.where(on, y, 0.0), np.where(on, z, -1.0)),
                (np.where(on, x, np.nan), np.where(on, y, np.nan), np.where(on, z, np.nan)))
    pn = prim.planes[:, :3].astype(np.float32)
    c = np.maximum(code, 0)
    return (pn[c, 0], pn[c, 1], pn[c, 2]), None


@dataclass
class GBuffer:
    """Per-pixel surface data over a window of the camera image starting at ``origin``."""

    depth: np.ndarray  # float32 (h, w), inf = background
    normal: np.ndarray  # float32 (3, h, w), unit outward normals
    part: np.ndarray  # int16 (h, w), -1 = background
    facing: np.ndarray  # float32 (h, w): shading value, nan = no shading
    origin: tuple[int, int] = (0, 0)  # (row, column) of the window in the camera image


def _rect(prim: Primitive, cam: Camera) -> tuple[int, int, int, int] | None:
    pix = cam.project(prim.world_hull())
    x0 = max(int(math.floor(pix[:, 0].min())) - 1, 0)
    x1 = min(int(math.ceil(pix[:, 0].max())) + 2, cam.width)
    y0 = max(int(math.floor(pix[:, 1].min())) - 1, 0)
    y1 = min(int(math.ceil(pix[:, 1].max())) + 2, cam.height)
    return (y0, y1, x0, x1) if x1 > x0 and y1 > y0 else None


@dataclass
class _Rays:
    """Rays in a primitive's frame: origin = ao + bo*px + co*py, direction = ad + bd*px + cd*py."""

    ao: np.ndarray
    bo: np.ndarray
    co: np.ndarray
    ad: np.ndarray
    bd: np.ndarray
    cd: np.ndarray
    px: np.ndarray
    py: np.ndarray

    @property
    def parallel(self) -> bool:  # orthographic: one direction for all pixels
        return not (np.any(self.bd) or np.any(self.cd))

    def arrays(self) -> tuple[list, list]:
        o = [_lin(float(self.ao[i]), float(self.bo[i]), float(self.co[i]), self.px, self.py) for i in range(3)]
        d = [_lin(float(self.ad[i]), float(self.bd[i]), float(self.cd[i]), self.px, self.py) for i in range(3)]
        return o, d


def _local_rays(prim: Primitive, cam: Camera, px, py, minv: np.ndarray) -> _Rays:
    """Ray origins and directions in the primitive's frame at pixel coordinates px, py."""
    o0, ox_, oy_, d0, dx_, dy_ = cam.rays()
    return _Rays(minv @ (o0 - prim.offset), minv @ ox_, minv @ oy_, minv @ d0, minv @ dx_, minv @ dy_, px, py)


def raycast(prims: tuple[Primitive, ...] | list[Primitive], cam: Camera, light: np.ndarray,
            pad: int = 8) -> GBuffer:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _raycast(prims, cam, light, pad)


def _raycast(prims: tuple[Primitive, ...] | list[Primitive], cam: Camera, light: np.ndarray,
             pad: int) -> GBuffer:
    """Z-buffer of the nearest surfaces of ``prims`` seen by ``cam``, over the window that the
    solids' images cover (plus ``pad`` pixels).

    Pass 1 ray-casts each solid over its image rectangle keeping depth and solid index; pass 2
    finds the surface hit, the normal and the shading only for the pixels each solid won.
    """
    rects = [_rect(p, cam) for p in prims]
    live = [r for r in rects if r is not None]
    if not live:
        z = np.zeros((0, 0), dtype=np.float32)
        return GBuffer(z, np.zeros((3, 0, 0), dtype=np.float32), z.astype(np.int16), z)
    wy0 = max(min(r[0] for r in live) - pad, 0)
    wy1 = min(max(r[1] for r in live) + pad, cam.height)
    wx0 = max(min(r[2] for r in live) - pad, 0)
    wx1 = min(max(r[3] for r in live) + pad, cam.width)
    hgt, wid = wy1 - wy0, wx1 - wx0
    depth = np.full((hgt, wid), INF, dtype=np.float32)
    winner = np.full((hgt, wid), -1, dtype=np.int16)
    inverses = [np.linalg.inv(p.matrix) for p in prims]
    won: list[int] = []
    for k, (prim, r) in enumerate(zip(prims, rects)):
        if r is None:
            continue
        y0, y1, x0, x1 = r
        px = (np.arange(x0, x1, dtype=np.float32) + 0.5)[None, :]
        py = (np.arange(y0, y1, dtype=np.float32) + 0.5)[:, None]
        t, _ = _hit(prim, _local_rays(prim, cam, px, py, inverses[k]))
        if t is None:
            continue
        dv = depth[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
        m = t < dv
        if not m.any():
            continue
        np.copyto(dv, t, where=m)
        np.copyto(winner[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0], np.int16(k), where=m)
        won.append(k)
    normal = np.zeros((3, hgt, wid), dtype=np.float32)
    facing = np.full((hgt, wid), np.nan, dtype=np.float32)
    flat_n = normal.reshape(3, -1)
    flat_f = facing.reshape(-1)
    flat_d = depth.reshape(-1)
    fwd = cam.forward
    for k in won:
        y0, y1, x0, x1 = rects[k]
        ys, xs = np.nonzero(winner[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] == k)
        if len(ys) == 0:
            continue
        ys += y0 - wy0
        xs += x0 - wx0
        flat = ys * wid + xs
        prim = prims[k]
        minv = inverses[k]
        rays = _local_rays(prim, cam, (xs + wx0).astype(np.float32) + 0.5, (ys + wy0).astype(np.float32) + 0.5, minv)
        if prim.kind == CONVEX:  # flat faces: the normal depends on the face only
            _, code = _hit(prim, rays, with_code=True)
            nl, sl = _surface(prim, None, None, None, code)
        else:
            t = flat_d[flat]
            o, d = rays.arrays()
            x, y, z = (o[i] + t * d[i] for i in range(3))
            nl, sl = _surface(prim, x, y, z, _surface_code(prim, x, y, z))
        g = minv.T  # normals transform with the inverse transpose
        nw = [_combine(g[i], nl) for i in range(3)]
        inv = 1.0 / np.maximum(np.sqrt(nw[0] * nw[0] + nw[1] * nw[1] + nw[2] * nw[2]), 1e-12)
        for i in range(3):
            flat_n[i, flat] = nw[i] * inv
        if sl is not None:
            sw = [_combine(g[i], sl) for i in range(3)]
            inv_s = 1.0 / np.sqrt(sw[0] * sw[0] + sw[1] * sw[1] + sw[2] * sw[2])
            face = -(sw[0] * fwd[0] + sw[1] * fwd[1] + sw[2] * fwd[2]) * inv_s
            lit = (sw[0] * light[0] + sw[1] * light[1] + sw[2] * light[2]) * inv_s
            flat_f[flat] = np.where(lit < 0.15, face, np.nan)
    part_of = np.asarray([p.part for p in prims] + [-1], dtype=np.int16)
    return GBuffer(depth, normal, part_of[winner], facing, (wy0, wx0))


def _combine(row: np.ndarray, vec) -> np.ndarray:
    """row . vec for a constant row and a vector of arrays/scalars, skipping zero terms."""
    out = None
    for c, v in zip(row, vec):
        if c != 0:
            term = float(c) * v
            out = term if out is None else out + term
    return out if out is not None else np.zeros_like(np.asarray(vec[0], dtype=np.float32))


# -- line extraction ----------------------------------------------------------------------------

def _pairs(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    if axis == 1:
        return a[..., :, :-1], a[..., :, 1:]
    return a[..., :-1, :], a[..., 1:, :]


def _mark(edge: np.ndarray, near_a: np.ndarray, axis: int, out: np.ndarray) -> None:
    """Set the nearer pixel of every edge pair in ``out``."""
    if axis == 1:
        out[:, :-1] |= edge & near_a
        out[:, 1:] |= edge & ~near_a
    else:
        out[:-1, :] |= edge & near_a
        out[1:, :] |= edge & ~near_a


def _pattern_mask(pat: SurfacePattern, pts: list, nrm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(region, mask) of a pattern over world points (3 arrays) and normals (3, h, w)."""
    q = [pts[i] - pat.origin[i] if pat.origin[i] else pts[i] for i in range(3)]
    u, v = pat.u, pat.v

    def dot(a, b):  # arrays . constant vector, skipping zero terms (axis-aligned patterns)
        terms = [a[i] * b[i] for i in range(3) if b[i] != 0]
        if not terms:
            return np.zeros(np.shape(a[0]), dtype=np.float32)
        out = terms[0]
        for x in terms[1:]:
            out = out + x
        return out

    def cross(a, b) -> tuple[float, float, float]:
        return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])

    if pat.surface == "triplanar":
        ax, ay, az = np.abs(nrm[0]), np.abs(nrm[1]), np.abs(nrm[2])
        a = np.where((ax >= ay) & (ax >= az), q[1], q[0])
        b = np.where((az >= ax) & (az >= ay), q[1], q[2])
        region = np.ones(np.shape(a), dtype=bool)
    elif pat.surface == "plane":
        w = cross(u, v)
        a, b = dot(q, u), dot(q, v)
        region = np.abs(dot(nrm, w)) > 0.85
    else:  # cylinder around the axis (origin, v); u is the zero angle
        b = dot(q, v)
        radial = [q[i] - b * v[i] for i in range(3)]
        rad = np.sqrt(radial[0] * radial[0] + radial[1] * radial[1] + radial[2] * radial[2]) + 1e-9
        w = cross(v, u)
        a = np.arctan2(dot(radial, w), dot(radial, u)) * rad
        region = np.abs(dot(nrm, v)) < 0.4
    eu, ev = pat.extent
    pu, pv = pat.pitch
    s = pat.size
    if pat.kind in ("rings", "ticks", "circle"):
        r = np.sqrt(a * a + b * b)
        region &= r <= eu * 1.02
        if pat.kind == "circle":
            mask = r <= eu
        elif pat.kind == "rings":
            mask = np.mod(r, pu) < s
        else:
            ang = np.mod(np.arctan2(b, a) * (pat.count / (2 * np.pi)) + 0.5, 1.0)
            mask = (np.abs(ang - 0.5) * (2 * np.pi / pat.count) * r < s) & (r > eu - pv) & (r < eu)
        return region, mask
    if pat.surface == "cylinder":
        a = a + eu / 2
    if pat.surface == "triplanar":
        inside = region
    else:
        inside = (a >= 0) & (a <= eu) & (b >= 0) & (b <= ev)
    if pat.kind == "rect":
        return region, inside
    fu, fv = np.mod(a, pu) - pu / 2, np.mod(b, pv) - pv / 2
    if pat.kind == "dots":
        mask = fu * fu + fv * fv < s * s
    elif pat.kind == "slots":
        mask = (np.abs(fv) < s / 2) & (np.abs(fu) < pu / 2 - s / 2)
    elif pat.kind == "stripes":
        mask = np.mod(a + b, pu) < s
    else:  # grid
        mask = (np.abs(fu) > pu / 2 - s / 2) | (np.abs(fv) > pv / 2 - s / 2)
    return region, mask & inside


def _pattern_box(pat: SurfacePattern, cam: Camera, part_box: tuple[int, int, int, int],
                 origin: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The part of ``part_box`` (window coordinates) that a pattern can cover on screen."""
    o, u, v = (np.asarray(x, dtype=np.float64) for x in (pat.origin, pat.u, pat.v))
    eu, ev = pat.extent
    if pat.surface != "plane":
        return part_box
    if pat.kind in ("rings", "ticks", "circle"):
        corners = [o + a * eu * u + b * eu * v for a in (-1, 1) for b in (-1, 1)]
    else:
        corners = [o + a * eu * u + b * ev * v for a in (0, 1) for b in (0, 1)]
    pix = cam.project(np.asarray(corners))
    r0 = max(part_box[0], int(math.floor(pix[:, 1].min())) - 2 - origin[0])
    r1 = min(part_box[1], int(math.ceil(pix[:, 1].max())) + 3 - origin[0])
    c0 = max(part_box[2], int(math.floor(pix[:, 0].min())) - 2 - origin[1])
    c1 = min(part_box[3], int(math.ceil(pix[:, 0].max())) + 3 - origin[1])
    return (r0, r1, c0, c1) if r1 > r0 + 1 and c1 > c0 + 1 else None


def _strokes(shape: tuple[int, int], origin: tuple[int, int], period: int) -> np.ndarray:
    """On/off pattern that breaks shading lines into short strokes."""
    yy = np.arange(origin[0], origin[0] + shape[0])[:, None]
    xx = np.arange(origin[1], origin[1] + shape[1])[None, :]
    return ((yy + 3 * xx // 2) // period + (xx + yy // 2) // period) % 3 != 0


def line_art(design: Design, gb: GBuffer, cam: Camera, style: DrawingStyle,
             light: np.ndarray | None = None) -> np.ndarray:
    """Ink (bool, internal resolution, over the buffers' window) of the visible edges,
    decorations and shading strokes."""
    depth, part, nrm = gb.depth, gb.part, gb.normal
    hgt, wid = depth.shape
    y0, x0 = gb.origin
    y1, x1 = y0 + hgt, x0 + wid
    solid = np.zeros((hgt, wid), dtype=bool)
    outline = np.zeros((hgt, wid), dtype=bool)
    ss = style.supersample
    unclaimed = np.array([not p.claimed for p in design.parts] + [False])
    broken = unclaimed[part] if unclaimed.any() else None
    if broken is not None and broken.any():
        period = max(int(round(style.dash * ss)), 2)
        dash_x = ((np.arange(x0, x1) // period) % 3 != 2)[None, :]
        dash_y = ((np.arange(y0, y1) // period) % 3 != 2)[:, None]
    else:
        broken = None
    cos_crease = np.float32(math.cos(math.radians(style.crease_deg)))
    f = cam.forward
    facing_fwd = np.abs(nrm[0] * f[0] + nrm[1] * f[1] + nrm[2] * f[2])
    hit = part >= 0
    finite_depth = np.where(hit, depth, 0.0)
    pix = cam.pixel * finite_depth if cam.perspective else np.float32(cam.pixel)
    scene = float(finite_depth.max()) if hit.any() else 1.0
    slack = pix * 2.5 / np.maximum(facing_fwd, 0.12) + np.float32(1e-3 * scene)
    for axis in (0, 1):
        pa, pb = _pairs(part, axis)
        da, db = _pairs(finite_depth, axis)
        sa, sb = _pairs(slack, axis)
        n0a, n0b = _pairs(nrm[0], axis)
        n1a, n1b = _pairs(nrm[1], axis)
        n2a, n2b = _pairs(nrm[2], axis)
        same = pa == pb
        jump = np.abs(da - db) > np.maximum(sa, sb)
        crease = (n0a * n0b + n1a * n1b + n2a * n2b) < cos_crease
        edge = ~same | ((jump | crease) & (pa >= 0))
        near_a = (da <= db) & (pa >= 0) | (pb < 0)
        if broken is not None:  # broken lines: dash along the line (axis 0 pairs -> horizontal line)
            lines = np.zeros((hgt, wid), dtype=bool)
            _mark(edge, near_a, axis, lines)
            solid |= lines & (~broken | (dash_x if axis == 0 else dash_y))
        else:
            _mark(edge, near_a, axis, solid)
        if style.outline != 1.0:
            _mark(~same & ((pa < 0) | (pb < 0)), near_a, axis, outline)
    if design.patterns:
        o0, ox_, oy_, d0, dx_, dy_ = cam.rays()
        by_part: dict[int, list[SurfacePattern]] = {}
        for pat in design.patterns:
            by_part.setdefault(pat.part, []).append(pat)
        for part_id, pats in by_part.items():
            sel = part == part_id
            rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
            if len(rows) == 0:
                continue
            part_box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
            for pat in pats:
                box = _pattern_box(pat, cam, part_box, (y0, x0))
                if box is None:
                    continue
                r0, r1, c0, c1 = box
                px = (np.arange(x0 + c0, x0 + c1, dtype=np.float32) + 0.5)[None, :]
                py = (np.arange(y0 + r0, y0 + r1, dtype=np.float32) + 0.5)[:, None]
                t = finite_depth[r0:r1, c0:c1]
                pts = [_lin(float(o0[i]), float(ox_[i]), float(oy_[i]), px, py)
                       + t * _lin(float(d0[i]), float(dx_[i]), float(dy_[i]), px, py) for i in range(3)]
                region, mask = _pattern_mask(pat, pts, nrm[:, r0:r1, c0:c1])
                region &= sel[r0:r1, c0:c1]
                sub = solid[r0:r1, c0:c1]
                for axis in (0, 1):
                    ra, rb = _pairs(region, axis)
                    ma, mb = _pairs(mask, axis)
                    _mark(ra & rb & (ma != mb), ma, axis, sub)
    if style.outline != 1.0:
        ink = _thicken(solid & ~outline, style.line_width * ss) | _thicken(outline, style.outline * style.line_width * ss)
    else:
        ink = _thicken(solid, style.line_width * ss)
    shaded_part = np.array([p.shaded and p.claimed for p in design.parts] + [False])
    if style.flat_hatch > 0 and light is not None:
        lit = nrm[0] * light[0] + nrm[1] * light[1] + nrm[2] * light[2]
        dark_flat = shaded_part[part] & ~np.isfinite(gb.facing) & (lit < 0.05)
        if dark_flat.any():
            period = max(int(round(style.flat_hatch * ss)), 3)
            yy = np.arange(y0, y1)[:, None]
            xx = np.arange(x0, x1)[None, :]
            diag = (yy + style.hatch_angle * xx) % period == 0
            ink |= _thicken(dark_flat & diag & ~solid, 0.6 * style.line_width * ss)
    if style.shading > 0:
        # iso-lines of the projected distance from the silhouette: parallel strokes along
        # cylinders, arcs on spheres, denser towards the dark edge
        fc = gb.facing
        levels = 1.0 - style.shading_spread * (np.arange(style.shading, 0, -1) / style.shading) ** 1.6
        with np.errstate(invalid="ignore"):
            off = np.sqrt(np.maximum(1.0 - fc * fc, 0.0))
            band = np.where(np.isfinite(fc), np.digitize(off, levels.astype(np.float32)), -9).astype(np.int8)
        ok = shaded_part[part]  # part -1 indexes the trailing False
        lines = np.zeros((hgt, wid), dtype=bool)
        for axis in (0, 1):
            ba, bb = _pairs(band, axis)
            pa, pb = _pairs(part, axis)
            oa, _ = _pairs(ok, axis)
            _mark((ba != bb) & (pa == pb) & oa & (ba >= 0) & (bb >= 0), ba > bb, axis, lines)
        if style.shade_strokes:
            lines &= _strokes((hgt, wid), (y0, x0), max(int(round(style.dash * ss * 2.2)), 4))
        ink |= _thicken(lines & ~solid, 0.7 * style.line_width * ss)
    return ink


def _thicken(mask: np.ndarray, width: float) -> np.ndarray:
    """Dilate a 1-pixel line mask to about ``width`` pixels."""
    out = mask.copy()
    steps = int(round(width)) - 1
    for i in range(steps):
        if i % 2 == 0:
            out[:, 1:] |= out[:, :-1]
            out[1:, :] |= out[:-1, :]
        else:
            out[:, :-1] |= out[:, 1:]
            out[:-1, :] |= out[1:, :]
    return out


@lru_cache(maxsize=64)
def _ink_lut(gain: float) -> np.ndarray:
    """Coverage (0..255) -> gray: with ``gain`` > 1 lines darken faster than their area (drafting
    pens are black); < 1 gives the faint lines of a downsampled scan."""
    lut = (255.0 * (1.0 - np.minimum(np.arange(256) / 255.0 * gain, 1.0))).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(px, 6))


def render_view(design: Design, spec: ViewSpec, style: DrawingStyle, size: int = 256,
                label: str | None = None) -> Image.Image:
    """Render one view of ``design`` as an 8-bit grayscale line drawing (long side ``size``)."""
    if size < 32:
        raise ValueError(f"image size must be >= 32 pixels, got {size}")
    if style.supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {style.supersample}")
    d = design.exploded(spec.exploded) if spec.exploded > 0 else design
    cam, width, height = frame_camera(d.hull(), spec, size, style)
    light = -cam.forward * 0.55 + cam.up * 0.55 - cam.right * 0.62
    light /= np.linalg.norm(light)
    gb = raycast(d.prims, cam, light, pad=3 + int(math.ceil(style.line_width * style.supersample * style.outline)))
    ink_full = np.zeros((cam.height, cam.width), dtype=np.uint8)
    if gb.part.size and (gb.part >= 0).any():
        ink = line_art(d, gb, cam, style, light)
        y0, x0 = gb.origin
        ink_full[y0:y0 + ink.shape[0], x0:x0 + ink.shape[1]] = ink.view(np.uint8)
    if (cam.width, cam.height) != (width, height):
        # box-filter downsampling = area coverage: antialiased lines
        cover = Image.fromarray(ink_full * np.uint8(255), mode="L").resize((width, height), Image.Resampling.BOX)
        gray = _ink_lut(round(style.ink, 2))[np.asarray(cover)]
    else:
        gray = np.where(ink_full > 0, 0, 255).astype(np.uint8)
    drawing = Image.fromarray(gray, mode="L")
    strip = label_strip(style, size)
    if not (style.label and label and strip > 0):
        return drawing
    img = Image.new("L", (width, height + strip), 255)
    img.paste(drawing, (0, strip if style.label_above else 0))
    draw = ImageDraw.Draw(img)
    font = _font(int(round(style.label_size * size)))
    box = draw.textbbox((0, 0), label, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    text_h = int(round(style.label_size * 1.6 * size))
    y = (text_h - th) // 2 if style.label_above else height + strip - text_h + (text_h - th) // 2
    draw.text(((width - tw) // 2 - box[0], y - box[1]), label, fill=0, font=font)
    return img
