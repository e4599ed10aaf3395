"""A time-series PNG of an autoscaling run, drawn with Pillow (no plotting dependency):
users and RPS, replicas per deployment, p50/p95 latency, over the same time axis."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
GRID = "#dddddd"
AXIS = "#333333"


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float | None]
    color: str
    step: bool = False  # a step line (counts) rather than straight segments
    dashed: bool = False


@dataclass
class Panel:
    title: str
    y_label: str
    series: list[Series]
    integer: bool = False


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _nice_max(v: float, integer: bool) -> float:
    if v <= 0:
        return 1.0
    if integer:
        return float(max(2, math.ceil(v)))
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def _ticks(top: float, integer: bool) -> list[float]:
    if integer:
        step = max(1, math.ceil(top / 6))
        return [float(i) for i in range(0, int(top) + 1, step)]
    return [top * i / 5 for i in range(6)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:.1f}"


def _dashed(draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], color: str, width: int) -> None:
    for i, (a, b) in enumerate(zip(pts, pts[1:])):
        if i % 2 == 0:
            draw.line([a, b], fill=color, width=width)


def _segments(s: Series) -> list[list[tuple[float, float]]]:
    """Runs of points without gaps (None)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(s.xs, s.ys):
        if y is None or (isinstance(y, float) and math.isnan(y)):
            if runs[-1]:
                runs.append([])
            continue
        if s.step and runs[-1]:
            runs[-1].append((x, runs[-1][-1][1]))
        runs[-1].append((x, float(y)))
    return [r for r in runs if r]


def plot_panels(
    panels: list[Panel],
    path: Path | str,
    title: str,
    x_label: str = "seconds since start",
    width: int = 1200,
    panel_height: int = 260,
    markers: list[tuple[float, str]] | None = None,
) -> Path:
    """Panels stacked over one x axis; ``markers``: vertical lines (x, label), e.g. load steps."""
    left, right, top_pad, gap, bottom = 80, 230, 50, 40, 50
    height = top_pad + len(panels) * panel_height + (len(panels) - 1) * gap + bottom
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    f_title, f, f_small = _font(20), _font(14), _font(12)
    d.text((left, 14), title, fill=AXIS, font=f_title)
    xs_all = [x for p in panels for s in p.series for x in s.xs]
    x0, x1 = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    x1 = x0 + 1 if x1 <= x0 else x1
    pw = width - left - right

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    for i, p in enumerate(panels):
        ptop = top_pad + i * (panel_height + gap)
        pbot = ptop + panel_height - 20
        ys = [y for s in p.series for y in s.ys if y is not None and not (isinstance(y, float) and math.isnan(y))]
        ymax = _nice_max(max(ys) * 1.08 if ys else 1.0, p.integer)

        def py(y: float, ptop: int = ptop, pbot: int = pbot, ymax: float = ymax) -> float:
            return pbot - (y / ymax) * (pbot - ptop - 18)

        d.text((left, ptop), p.title, fill=AXIS, font=f)
        for t in _ticks(ymax, p.integer):
            yy = py(t)
            d.line([(left, yy), (left + pw, yy)], fill=GRID)
            d.text((left - 8, yy), _fmt(t), fill=AXIS, font=f_small, anchor="rm")
        d.text((12, (ptop + pbot) / 2), p.y_label, fill=AXIS, font=f_small, anchor="lm")
        for mx, label in markers or []:
            d.line([(px(mx), ptop + 18), (px(mx), pbot)], fill="#999999", width=1)
            if i == 0:
                d.text((px(mx) + 3, ptop + 20), label, fill="#666666", font=f_small)
        d.rectangle([left, ptop + 18, left + pw, pbot], outline=AXIS)
        for j, s in enumerate(p.series):
            # counts of several series often coincide: shift each by a few pixels to keep all visible
            dy = (j - (len(p.series) - 1) / 2) * 3 if p.integer else 0
            for run in _segments(s):
                pts = [(px(x), py(y) + dy) for x, y in run]
                if len(pts) == 1:
                    d.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=s.color)
                elif s.dashed:
                    _dashed(d, pts, s.color, 2)
                else:
                    d.line(pts, fill=s.color, width=2)
        for j, s in enumerate(p.series):  # legend, right of the panel
            ly = ptop + 24 + j * 20
            d.line([(left + pw + 15, ly + 7), (left + pw + 40, ly + 7)], fill=s.color, width=3)
            d.text((left + pw + 46, ly), s.label, fill=AXIS, font=f_small)
        if i == len(panels) - 1:
            span = x1 - x0
            step = next((c for c in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / c <= 10), 7200)
            for k in range(int(span // step) + 1):
                xv = x0 + k * step
                d.line([(px(xv), pbot), (px(xv), pbot + 5)], fill=AXIS)
                d.text((px(xv), pbot + 8), _fmt(xv - x0), fill=AXIS, font=f_small, anchor="mt")
            d.text((left + pw / 2, pbot + 28), x_label, fill=AXIS, font=f_small, anchor="mt")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def plot_autoscaling(
    history: list[dict],
    replicas: list[dict],
    path: Path | str,
    title: str,
    markers: list[tuple[float, str]] | None = None,
) -> Path:
    """``history``: Locust's per-second rows (:func:`loadtests.runner.read_history`);
    ``replicas``: the sampler's rows (:func:`loadtests.replicas.read_replicas`). Times are Unix
    seconds; the plot starts at the first of either."""
    starts = [r["t"] for r in history] + [r["t"] for r in replicas]
    t0 = min(starts) if starts else 0.0
    hx = [r["t"] - t0 for r in history]
    deployments = sorted({r["deployment"] for r in replicas})
    rep_series = []
    for i, name in enumerate(deployments):
        rows = [r for r in replicas if r["deployment"] == name]
        rep_series.append(
            Series(
                f"{name} running",
                [r["t"] - t0 for r in rows],
                [r["running"] for r in rows],
                COLORS[i % len(COLORS)],
                step=True,
            )
        )
    panels = [
        Panel(
            "Load: Locust users and requests per second",
            "users / RPS",
            [
                Series("users", hx, [r["users"] for r in history], "#555555", step=True),
                Series("requests/s", hx, [r["rps"] for r in history], COLORS[0]),
            ],
        ),
        Panel("Replicas per deployment (serve.status(), every 1 s)", "replicas", rep_series, integer=True),
        Panel(
            "Latency over the last 10 s (Locust, all requests)",
            "ms",
            [
                Series("p50", hx, [r["p50_ms"] or None for r in history], COLORS[2]),
                Series("p95", hx, [r["p95_ms"] or None for r in history], COLORS[1]),
            ],
        ),
    ]
    return plot_panels(panels, path, title, markers=[(m - t0, label) for m, label in markers or []])
