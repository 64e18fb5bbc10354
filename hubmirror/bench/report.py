"""`hubmirror report`: the benchmark results as Markdown, a standalone HTML page, CSV or JSON. Besides the rows: the
environment each device's figures come from (device, driver, CUDA, torch, nodes, runs), the plots
(hubmirror/bench/plots.py), views per task and per model family, and a comparison of two runs or two devices. The
HTML page's table sorts and filters with a small inline script (the only script hubmirror writes: the served web
pages carry none) and works as a plain table without it."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter

from hubmirror.bench.plots import elide, latency_svg, scatter_svg
from hubmirror.bench.summaries import Comparison, compare, default_sides, environment, environments, family, grouped

COLUMNS = [("model_key", "model"), ("status", "status"), ("task", "task"), ("family", "family"),
           ("device", "device"), ("dtype", "dtype"), ("batch_size", "batch"), ("parameters_m", "params (M)"),
           ("latency_p50_ms", "p50 ms"), ("latency_p90_ms", "p90 ms"), ("latency_p99_ms", "p99 ms"),
           ("throughput", "samples/s"), ("peak_memory_mb", "peak MB"), ("node", "node"), ("run", "run")]
NUMERIC = {"batch_size", "parameters_m", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput",
           "peak_memory_mb"}
FILTERS = ("status", "task", "device")  # the HTML table's drop-downs
COMPARED_ROWS = 50  # models listed in a comparison (the biggest changes)
FAMILY_ROWS = 40

SCRIPT = """
const table = document.getElementById('results'), body = table.tBodies[0], rows = Array.from(body.rows);
const text = document.getElementById('filter'), selects = Array.from(document.querySelectorAll('select[data-col]'));
const shown = document.getElementById('shown');
function apply() {
  const words = text.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let n = 0;
  for (const row of rows) {
    const line = row.textContent.toLowerCase();
    const ok = words.every(w => line.includes(w)) &&
      selects.every(s => !s.value || row.cells[+s.dataset.col].textContent === s.value);
    row.hidden = !ok; n += ok;
  }
  shown.textContent = n + ' of ' + rows.length + ' rows';
}
text.addEventListener('input', apply); selects.forEach(s => s.addEventListener('change', apply));
Array.from(table.tHead.rows[0].cells).forEach((th, col) => th.addEventListener('click', () => {
  const numeric = th.dataset.type === 'number', down = th.dataset.sort !== 'asc';
  Array.from(table.tHead.rows[0].cells).forEach(c => delete c.dataset.sort);
  th.dataset.sort = down ? 'asc' : 'desc';
  const key = r => { const v = r.cells[col].textContent; return numeric ? (v === '' ? -Infinity : +v) : v; };
  rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (down ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}));
apply();
"""
STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:1400px;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
td:first-child,th:first-child,td.text{text-align:left}
th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
th[data-sort=asc]::after{content:' ▲'}th[data-sort=desc]::after{content:' ▼'}
svg{max-width:100%;height:auto;display:block;margin:1em 0}
.controls{margin:.6em 0;display:flex;gap:.6em;flex-wrap:wrap;align-items:center}
.note{color:#555}
"""


def _cells(row: dict) -> dict:
    params, memory = row.get("parameters"), row.get("peak_memory_bytes")
    env = environment(row)
    out = dict(row, parameters_m=round(params / 1e6, 3) if params else None,
               peak_memory_mb=round(memory / 2**20, 1) if memory else None, family=family(row["model_key"]),
               node=env.get("node") or env.get("hostname"), run=(env.get("run") or "")[:12] or None)
    for key in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput"):
        if out.get(key) is not None:
            out[key] = round(out[key], 3)
    return out


def _fmt(value) -> str:
    return "" if value is None else str(value)


def status_line(rows: list[dict]) -> str:
    """How many models ended in each status, e.g. `12 ok, 1 timeout`."""
    counts = Counter(r.get("status") for r in rows)
    return ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no benchmark yet"


def _sections(rows: list[dict], sides: tuple[str, str] | None) -> list[tuple[str, list[str], list[list]]]:
    """The summary tables, each (title, column titles, rows of values)."""
    sections = [("Environment per device", ["device", "name", "rows", "nodes", "runs", "measured", "driver", "CUDA",
                                            "torch", "python", "hubmirror"],
                 [[e["device"], e["device_name"], e["rows"], elide(", ".join(e["nodes"]), 60), e["runs"],
                   e["measured"], e["driver"], e["cuda"], e["torch"], e["python"], e["hubmirror"]]
                  for e in environments(rows)])]
    sides = sides or default_sides(rows)
    if sides:
        result = compare(rows, *sides)
        sections.append((_comparison_title(result), ["model", f"{result.left} samples/s",
                                                     f"{result.right} samples/s", "ratio"],
                         [[p["model_key"], round(p["left"], 2), round(p["right"], 2), f"{p['ratio']:.2f}x"]
                          for p in result.pairs[:COMPARED_ROWS]]))
    group_columns = ["models", "ran", "median samples/s", "fastest", "its samples/s"]
    for title, key, limit in (("By task", lambda r: r.get("task"), None),
                              ("By model family", lambda r: family(r["model_key"]), FAMILY_ROWS)):
        groups = grouped(rows, key)
        sections.append((title + (f" (the {limit} largest of {len(groups)})" if limit and len(groups) > limit else ""),
                         [title.split()[-1]] + group_columns,
                         [[g["group"], g["models"], g["ok"], g["median_throughput"], g["fastest"],
                           g["best_throughput"]] for g in groups[:limit]]))
    return sections


def _comparison_title(result: Comparison) -> str:
    if not result.pairs:
        return f"{result.right} vs {result.left}: no model measured on both"
    return (f"{result.right} vs {result.left}: {len(result.pairs)} models measured on both, throughput ratio "
            f"{result.geomean:.2f}x (geometric mean; the biggest changes first)")


def render(rows: list[dict], fmt: str, compare_sides: tuple[str, str] | None = None) -> str:
    """The report in `fmt` (md, html, csv, json); `compare_sides` names the two runs (id prefixes) or devices to
    compare (default: the two devices with the most rows, else the two newest runs)."""
    cells = [_cells(r) for r in rows]
    if fmt == "json":
        return json.dumps(cells, indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([title for _, title in COLUMNS])
        writer.writerows([[_fmt(c.get(k)) for k, _ in COLUMNS] for c in cells])
        return buf.getvalue()
    sections, plots = _sections(rows, compare_sides), [scatter_svg(rows), latency_svg(rows)]
    if fmt == "md":
        return _markdown(rows, cells, sections, plots)
    if fmt == "html":
        return _html(rows, cells, sections, plots)
    raise ValueError(f"unknown format {fmt}")


def _md(value) -> str:
    """Text for Markdown: as text, whatever it holds (rows come from a shared bucket), and no cell break."""
    return html.escape(_fmt(value)).replace("|", "\\|")


def _md_table(columns: list[str], values: list[list]) -> list[str]:
    return ["| " + " | ".join(map(_md, columns)) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(_md(v) for v in row) + " |" for row in values]


def _markdown(rows, cells, sections, plots) -> str:
    lines = ["# hubmirror benchmark report", "", _md(status_line(rows)), ""]
    for title, columns, values in sections:
        lines += [f"## {_md(title)}", "", *(_md_table(columns, values) if values else []), ""]
    lines += ["## Plots", ""] + [f"![plot](data:image/svg+xml;base64,{base64.b64encode(p.encode()).decode()})"
                                 for p in plots]
    lines += ["", "## Results", "", *_md_table([t for _, t in COLUMNS], [[c.get(k) for k, _ in COLUMNS]
                                                                          for c in cells])]
    return "\n".join(lines) + "\n"


def _html_table(columns: list[str], values: list[list], numeric: list[bool], table_id: str | None = None) -> str:
    """A table; numeric columns right-aligned and sorted as numbers by the page's script, the others as text."""
    head = "".join(f'<th data-type="{"number" if n else "text"}">{html.escape(c)}</th>'
                   for c, n in zip(columns, numeric, strict=True))
    body = "".join("<tr>" + "".join(f'<td{"" if n else " class=text"}>{html.escape(_fmt(v))}</td>'
                                    for v, n in zip(row, numeric, strict=True)) + "</tr>" for row in values)
    ident = f' id="{table_id}"' if table_id else ""
    return f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _numeric(values: list[list]) -> list[bool]:
    """Per column of a summary table: whether every value in it is a number (or absent)."""
    return [all(v is None or isinstance(v, int | float) for v in column) for column in zip(*values, strict=True)]


def _html(rows, cells, sections, plots) -> str:
    parts = [f"<h1>hubmirror benchmarks</h1><p>{html.escape(status_line(rows))}</p>"]
    for title, columns, values in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>" + (_html_table(columns, values, _numeric(values))
                                                          if values else ""))
    parts.append("<h2>Plots</h2>" + "".join(plots))
    controls = ['<input id="filter" type="search" placeholder="filter: words in any column" size="40">']
    for name in FILTERS:
        col = [k for k, _ in COLUMNS].index(name)
        options = "".join(f"<option>{html.escape(v)}</option>" for v in sorted({_fmt(c.get(name)) for c in cells}))
        controls.append(f'<label>{name} <select data-col="{col}"><option value="">all</option>{options}</select>'
                        f"</label>")
    table = _html_table([t for _, t in COLUMNS], [[c.get(k) for k, _ in COLUMNS] for c in cells],
                        [k in NUMERIC for k, _ in COLUMNS], "results")
    parts.append(f'<h2>Results</h2><div class="controls">{"".join(controls)}<span id="shown" class="note">'
                 f'{len(cells)} rows</span></div><p class="note">Click a column title to sort.</p>{table}')
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width'><title>hubmirror benchmarks</title><style>{STYLE}</style></head><body>"
            f"{''.join(parts)}<script>{SCRIPT}</script></body></html>")
