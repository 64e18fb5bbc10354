"""The report's plots as SVG, drawn by hand: no plotting dependency, no script, nothing fetched, a tooltip
(`<title>`) on every mark. (matplotlib's SVG has no per-point tooltips and costs numpy and a second of import;
plotly needs 3.5 MB of JavaScript inline in an offline site: neither beats this on the points that matter here.)

Readable at any number of models: log axes carry ticks at every decade with their values and units, names are drawn
only where they collide with no other name (the outliers first: the models no other model beats on both size and
speed), and every dot keeps its name as a tooltip; the latency chart leaves room for its names and elides long ones
in the middle."""

from __future__ import annotations

import html
import math

FONT = 11
CHAR_WIDTH = 6.2  # an estimate of the mean advance of an 11 px sans-serif character
SPARSE = 300  # dots up to which labels avoid the dots as well as each other
DENSE_LABELS = 12  # names drawn over a cloud of more dots than SPARSE
PALETTE = ["#3b6ea5", "#e08a3c", "#4c9a5b", "#c4493f", "#8a6bb8", "#8c6d4f", "#d470b0", "#6f6f6f"]


def si(value: float) -> str:
    """A tick value: 1, 10, 100, 1k, 10k, 1M, 1B (and 0.1, 0.01)."""
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def elide(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, the middle replaced by an ellipsis (the ends of a name tell most)."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2):]


def _svg(width: int, height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="{FONT}" role="img"><title>{html.escape(title)}</title>'
            f'<rect width="100%" height="100%" fill="white"/>',
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">'
            f'{html.escape(title)}</text>']


def frontier(points: list[tuple[float, float]]) -> set[int]:
    """Indexes of the points no other point beats on both axes (fewer parameters and more throughput)."""
    best, chosen = -math.inf, set()
    for i in sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1])):
        if points[i][1] > best:
            best = points[i][1]
            chosen.add(i)
    return chosen


class Boxes:
    """Rectangles already drawn: a label goes only where it overlaps none of them and stays inside the plot."""

    def __init__(self, bounds: tuple[float, float, float, float]):
        self.bounds, self.taken = bounds, []

    def place(self, x: float, y: float, text: str) -> tuple[float, float] | None:
        """Where `text` fits next to the point (x, y): right, left, above or below it; None when nowhere."""
        w, h = len(text) * CHAR_WIDTH, FONT + 2
        for left, top in ((x + 6, y - h / 2), (x - 6 - w, y - h / 2), (x - w / 2, y - 6 - h), (x - w / 2, y + 6)):
            box = (left, top, left + w, top + h)
            x0, y0, x1, y1 = self.bounds
            if box[0] < x0 or box[1] < y0 or box[2] > x1 or box[3] > y1:
                continue
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in self.taken):
                continue
            self.taken.append(box)
            return left, top + h - 3
        return None


def _colour_key(rows: list[dict]):
    """What the dots' colours tell apart: the task when there are several, else the device."""
    if len({r.get("task") for r in rows}) > 1:
        return lambda r: r.get("task") or "no task"
    return lambda r: r.get("device") or "?"


def _log_ticks(lo: float, hi: float) -> list[int]:
    return list(range(math.floor(lo), math.ceil(hi) + 1))


def scatter_svg(rows: list[dict], width: int = 720, height: int = 420, max_labels: int = 40) -> str:
    """Throughput against parameters, both on log axes with decade ticks, a dot per model that ran (coloured by task
    when there are several, else by device), outliers labelled where their names fit."""
    ran = [r for r in rows if r.get("status") == "ok" and r.get("parameters") and r.get("throughput")]
    parts = _svg(width, height, "throughput vs parameters")
    if not ran:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no model ran</text>')
        return "".join(parts) + "</svg>"
    left, right, top, bottom = 70, width - 20, 34, height - 70
    xs = [math.log10(r["parameters"]) for r in ran]
    ys = [math.log10(r["throughput"]) for r in ran]
    x_ticks, y_ticks = _log_ticks(min(xs), max(xs)), _log_ticks(min(ys), max(ys))
    x0, x1 = x_ticks[0], max(x_ticks[-1], x_ticks[0] + 1)
    y0, y1 = y_ticks[0], max(y_ticks[-1], y_ticks[0] + 1)
    sx = lambda v: left + (v - x0) / (x1 - x0) * (right - left)  # noqa: E731
    sy = lambda v: bottom - (v - y0) / (y1 - y0) * (bottom - top)  # noqa: E731
    for t in range(x0, x1 + 1):
        parts.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{bottom}" stroke="#e4e4e4"/>'
                     f'<text x="{sx(t):.1f}" y="{bottom + 16}" text-anchor="middle">{si(10 ** t)}</text>')
    for t in range(y0, y1 + 1):
        parts.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{right}" y2="{sy(t):.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{si(10 ** t)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                 f'stroke="#888"/>')
    parts.append(f'<text x="{(left + right) / 2}" y="{bottom + 34}" text-anchor="middle">parameters (log scale)</text>')
    parts.append(f'<text x="16" y="{(top + bottom) / 2}" transform="rotate(-90 16 {(top + bottom) / 2})" '
                 f'text-anchor="middle">throughput, samples/s (log scale)</text>')
    group = _colour_key(ran)
    kinds = sorted({group(r) for r in ran}, key=lambda k: -sum(group(r) == k for r in ran))
    colour = {kind: PALETTE[min(i, len(PALETTE) - 1)] for i, kind in enumerate(kinds)}
    radius, opacity = (4, 0.85) if len(ran) <= 500 else (2.5, 0.55)
    for r, x, y in zip(ran, xs, ys, strict=True):
        fill = colour[group(r)]
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{fill}" '
                     f'fill-opacity="{opacity}"><title>{html.escape(r["model_key"])}: {r["parameters"]:,} parameters, '
                     f'{r["throughput"]:.1f} samples/s ({html.escape(r.get("device") or "")})</title></circle>')
    boxes = Boxes((left + 2, top + 2, right - 2, bottom - 2))
    if len(ran) <= SPARSE:  # a label covers no dot; past that, the plot is a cloud and labels go over it, haloed
        for x, y in zip(xs, ys, strict=True):
            boxes.taken.append((sx(x) - radius, sy(y) - radius, sx(x) + radius, sy(y) + radius))
    outliers = frontier(list(zip(xs, ys, strict=True)))
    if len(ran) > SPARSE:  # a cloud: only the models no other beats on both size and speed, a few of them
        order, max_labels = sorted(outliers, key=lambda i: xs[i]), min(max_labels, DENSE_LABELS)
    else:
        order = sorted(range(len(ran)), key=lambda i: (i not in outliers, -ys[i]))
    labelled = 0
    for i in order:
        if labelled >= max_labels:
            break
        name = elide(ran[i]["model_key"].split(":", 1)[-1].split("/")[-1], 32)
        spot = boxes.place(sx(xs[i]), sy(ys[i]), name)
        if spot:
            labelled += 1
            parts.append(f'<text x="{spot[0]:.1f}" y="{spot[1]:.1f}" class="label" stroke="white" stroke-width="3" '
                         f'paint-order="stroke">{html.escape(name)}</text>')
    if len(kinds) > 1:
        for i, kind in enumerate(kinds[: len(PALETTE)]):
            name = kind if i < len(PALETTE) - 1 or len(kinds) == len(PALETTE) else "others"
            x = left + 10 + (i % 4) * ((right - left) / 4)
            y = height - 22 + (i // 4) * 14 - (14 if len(kinds) > 4 else 0)
            parts.append(f'<circle cx="{x:.1f}" cy="{y - 4}" r="4" fill="{colour[kind]}"/>'
                         f'<text x="{x + 8:.1f}" y="{y}">{html.escape(elide(name, 26))}</text>')
    return "".join(parts) + "</svg>"


def _nice_step(top: float, ticks: int = 5) -> float:
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def latency_svg(rows: list[dict], width: int = 720, limit: int = 40) -> str:
    """Horizontal bars of p50 latency (ms) with p90 as a whisker, for the first `limit` models that ran; an axis
    with ticks, the names in a margin as wide as the longest (elided past 48 characters, whole in the tooltip)."""
    ran = [r for r in rows if r.get("status") == "ok" and r.get("latency_p50_ms")]
    more, ran = len(ran[limit:]), ran[:limit]
    names = [elide(r["model_key"], 48) for r in ran]
    margin = 12 + CHAR_WIDTH * max((len(n) for n in names), default=8)
    chart = max(width - margin - 70, 120)
    height = 70 + 22 * max(1, len(ran)) + (20 if more else 0)
    top_value = max((r.get("latency_p90_ms") or r["latency_p50_ms"] for r in ran), default=1.0)
    step = _nice_step(top_value)
    end = step * math.ceil(top_value / step)
    scale = lambda v: chart * v / end  # noqa: E731
    parts = _svg(int(margin + chart + 70), height, "latency per model (p50 bar, p90 whisker)")
    axis_y = 34 + 22 * max(1, len(ran))
    ticks = int(round(end / step))
    for k in range(ticks + 1):
        x = margin + scale(k * step)
        parts.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{axis_y}" stroke="#e4e4e4"/>'
                     f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{k * step:g}</text>')
    parts.append(f'<text x="{margin + chart / 2:.1f}" y="{axis_y + 32}" text-anchor="middle">milliseconds</text>')
    for i, (r, name) in enumerate(zip(ran, names, strict=True)):
        y = 34 + 22 * i
        p50, p90 = r["latency_p50_ms"], r.get("latency_p90_ms") or r["latency_p50_ms"]
        parts.append(f'<g><title>{html.escape(r["model_key"])}: p50 {p50:.3f} ms, p90 {p90:.3f} ms</title>'
                     f'<text x="{margin - 6:.1f}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>'
                     f'<rect x="{margin:.1f}" y="{y}" width="{scale(p50):.1f}" height="15" fill="#e08a3c"/>'
                     f'<line x1="{margin + scale(p50):.1f}" y1="{y + 7.5}" x2="{margin + scale(p90):.1f}" '
                     f'y2="{y + 7.5}" stroke="black"/>'
                     f'<text x="{margin + scale(p90) + 4:.1f}" y="{y + 12}">{p50:.3g}</text></g>')
    if more:
        parts.append(f'<text x="{margin:.1f}" y="{height - 8}">… and {more} more models (in the table)</text>')
    return "".join(parts) + "</svg>"
