"""`hubmirror report`: the benchmark table, the count per status and two plots (throughput against parameter count,
p50 latency per model) as Markdown, HTML (inline SVG), CSV or JSON. Plots are drawn as SVG by hand: no plotting
dependency, no script, no external reference; at hub scale the scatter drops its labels (each dot keeps its tooltip)
and the latency chart shows the first `limit` models."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import Counter

LABELLED_POINTS = 30  # above this many dots, names only as tooltips

COLUMNS = [("model_key", "model"), ("status", "status"), ("device", "device"), ("dtype", "dtype"),
           ("batch_size", "batch"), ("parameters_m", "params (M)"), ("latency_p50_ms", "p50 ms"),
           ("latency_p90_ms", "p90 ms"), ("latency_p99_ms", "p99 ms"), ("throughput", "samples/s"),
           ("peak_memory_mb", "peak MB")]


def _cells(row: dict) -> dict:
    params, memory = row.get("parameters"), row.get("peak_memory_bytes")
    out = dict(row, parameters_m=round(params / 1e6, 3) if params else None,
               peak_memory_mb=round(memory / 2**20, 1) if memory else None)
    for key in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput"):
        if out.get(key) is not None:
            out[key] = round(out[key], 3)
    return out


def _fmt(value) -> str:
    return "" if value is None else str(value)


def scatter_svg(rows: list[dict], width: int = 640, height: int = 360) -> str:
    """Throughput (log) against parameters (log), one labelled dot per model that ran."""
    points = [(r["parameters"], r["throughput"], r["model_key"]) for r in rows
              if r.get("status") == "ok" and r.get("parameters") and r.get("throughput")]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">throughput vs parameters</text>']
    if points:
        xs, ys = [math.log10(p[0]) for p in points], [math.log10(p[1]) for p in points]
        x0, x1 = min(xs) - 0.3, max(xs) + 0.3
        y0, y1 = min(ys) - 0.3, max(ys) + 0.3
        sx = lambda v: 60 + (v - x0) / (x1 - x0) * (width - 90)  # noqa: E731
        sy = lambda v: height - 40 - (v - y0) / (y1 - y0) * (height - 80)  # noqa: E731
        parts.append(f'<line x1="60" y1="{height - 40}" x2="{width - 30}" y2="{height - 40}" stroke="black"/>')
        parts.append(f'<line x1="60" y1="40" x2="60" y2="{height - 40}" stroke="black"/>')
        parts.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">parameters (log10)</text>')
        parts.append(f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
                     f'samples/s (log10)</text>')
        for (p, t, name), x, y in zip(points, xs, ys, strict=True):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="#3b6ea5"><title>'
                         f'{html.escape(name)}: {p:,} params, {t:.1f}/s</title></circle>')
            if len(points) <= LABELLED_POINTS:
                parts.append(f'<text x="{sx(x) + 7:.1f}" y="{sy(y) - 6:.1f}">'
                             f'{html.escape(name.split(":", 1)[-1][:40])}</text>')
    else:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no model ran</text>')
    return "".join(parts) + "</svg>"


def latency_svg(rows: list[dict], width: int = 640, limit: int = 40) -> str:
    """Horizontal bars of p50 latency, with p90 as a whisker, for the first `limit` models that ran."""
    ran = [r for r in rows if r.get("status") == "ok" and r.get("latency_p50_ms")]
    more, ran = len(ran[limit:]), ran[:limit]
    height = 50 + 24 * max(1, len(ran)) + (20 if more else 0)
    top = max((r.get("latency_p90_ms") or r["latency_p50_ms"] for r in ran), default=1)
    scale = lambda v: (width - 260) * v / top  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">latency per model (p50 bar, p90 '
             f'whisker, ms)</text>']
    for i, r in enumerate(ran):
        y = 34 + 24 * i
        parts.append(f'<text x="205" y="{y + 12}" text-anchor="end">{html.escape(r["model_key"][-34:])}</text>')
        parts.append(f'<rect x="210" y="{y}" width="{scale(r["latency_p50_ms"]):.1f}" height="16" fill="#e08a3c"/>')
        p90 = r.get("latency_p90_ms") or r["latency_p50_ms"]
        parts.append(f'<line x1="{210 + scale(r["latency_p50_ms"]):.1f}" y1="{y + 8}" x2="{210 + scale(p90):.1f}" '
                     f'y2="{y + 8}" stroke="black"/>')
        parts.append(f'<text x="{214 + scale(p90):.1f}" y="{y + 12}">{r["latency_p50_ms"]:.2f}</text>')
    if more:
        parts.append(f'<text x="210" y="{height - 10}">… and {more} more models (in the table)</text>')
    return "".join(parts) + "</svg>"


def status_line(rows: list[dict]) -> str:
    """How many models ended in each status, e.g. `12 ok, 1 timeout`."""
    counts = Counter(r.get("status") for r in rows)
    return ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no benchmark yet"


def render(rows: list[dict], fmt: str) -> str:
    """The report in `fmt` (md, html, csv, json)."""
    cells = [_cells(r) for r in rows]
    if fmt == "json":
        return json.dumps(cells, indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([title for _, title in COLUMNS])
        writer.writerows([[_fmt(c.get(k)) for k, _ in COLUMNS] for c in cells])
        return buf.getvalue()
    plots = [scatter_svg(rows), latency_svg(rows)]
    if fmt == "md":
        lines = ["# hubmirror benchmark report", "", status_line(rows), "", "| " + " | ".join(t for _, t in COLUMNS) + " |",
                 "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_fmt(c.get(k)) for k, _ in COLUMNS) + " |" for c in cells]
        lines += [""] + [f"![plot](data:image/svg+xml;base64,{base64.b64encode(p.encode()).decode()})" for p in plots]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{html.escape(t)}</th>" for _, t in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c.get(k)))}</td>" for k, _ in COLUMNS) + "</tr>"
                       for c in cells)
        style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                 "padding:4px 8px;text-align:right}td:first-child{text-align:left}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>hubmirror benchmarks</title>"
                f"<style>{style}</style></head><body><h1>hubmirror benchmarks</h1><p>{html.escape(status_line(rows))}</p>{''.join(plots)}"
                f"<table><tr>{head}</tr>{body}</table></body></html>")
    raise ValueError(f"unknown format {fmt}")
