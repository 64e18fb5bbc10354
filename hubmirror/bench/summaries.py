"""What the report says besides its rows: the environment each device's figures come from, views per task and per
model family, and a comparison of two runs or two devices."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

ENVIRONMENT_FIELDS = ("device_name", "driver", "cuda", "torch", "python")


TEXT_FIELDS = ("node", "hostname", "run", "device_name", "driver", "cuda", "torch", "python")


def environment(row: dict) -> dict:
    """A row's environment JSON as a dict (empty when missing or malformed); the fields the report reads are text
    (or absent) and `versions` a dict of text, whatever a bucket's row held."""
    try:
        value = json.loads(row.get("environment") or "{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    for field in TEXT_FIELDS:
        if value.get(field) is not None and not isinstance(value[field], str):
            value[field] = None if isinstance(value[field], dict | list) else str(value[field])
    versions = value.get("versions")
    value["versions"] = ({k: v for k, v in versions.items() if isinstance(v, str)} if isinstance(versions, dict)
                         else {})
    return value


def family(model_key: str) -> str:
    """A model's family: the first word of its name (`timm:mobilenetv3_small_050.lamb_in1k` → `mobilenetv3`)."""
    name = model_key.split(":", 1)[-1].rsplit("/", 1)[-1]
    return re.split(r"[._\-]", name, maxsplit=1)[0].lower() or name


def _values(rows: list[dict], pick) -> list[str]:
    return sorted({str(v) for r in rows if (v := pick(r)) not in (None, "")})


def environments(rows: list[dict]) -> list[dict]:
    """Per device (kind and name): how many rows, from which nodes and runs, when, with which driver and versions."""
    groups = defaultdict(list)
    for r in rows:
        env = environment(r)
        groups[(r.get("device") or "?", env.get("device_name") or "?")].append((r, env))
    summary = []
    for (device, name), members in sorted(groups.items()):
        envs = [env for _, env in members]
        dates = sorted({(r.get("created_at") or "")[:10] for r, _ in members} - {""})
        item = {"device": device, "device_name": name, "rows": len(members),
                "nodes": _values(envs, lambda e: e.get("node") or e.get("hostname")),
                "runs": len(_values(envs, lambda e: e.get("run"))),
                "measured": " to ".join(dict.fromkeys(dates[:1] + dates[-1:]))}
        for field in ENVIRONMENT_FIELDS[1:]:
            item[field] = ", ".join(_values(envs, lambda e, f=field: e.get(f)))
        item["hubmirror"] = ", ".join(_values(envs, lambda e: (e.get("versions") or {}).get("hubmirror")))
        summary.append(item)
    return summary


def grouped(rows: list[dict], key) -> list[dict]:
    """Rows grouped by `key(row)`: models, how many ran, median and best throughput, the fastest model."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r) or "unknown"].append(r)
    out = []
    for name, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok" and r.get("throughput")]
        fastest = max(ok, key=lambda r: r["throughput"], default=None)
        out.append({"group": name, "models": len(members), "ok": len(ok),
                    "median_throughput": round(statistics.median(r["throughput"] for r in ok), 2) if ok else None,
                    "fastest": fastest["model_key"] if fastest else None,
                    "best_throughput": round(fastest["throughput"], 2) if fastest else None})
    return sorted(out, key=lambda g: (-g["models"], g["group"]))


@dataclass
class Comparison:
    left: str
    right: str
    pairs: list[dict]  # model, the two throughputs, right / left
    geomean: float | None  # geometric mean of right / left over the models measured on both sides


def _side(rows: list[dict], name: str) -> dict[str, dict]:
    """The newest row per model of one side: rows whose run id starts with `name`, or measured on device `name`."""
    chosen = {}
    for r in rows:
        env = environment(r)
        if r.get("device") == name or env.get("device_name") == name or str(env.get("run", "")).startswith(name):
            if r.get("status") == "ok" and r.get("throughput"):
                previous = chosen.get(r["model_key"])
                if previous is None or (r.get("created_at") or "") > (previous.get("created_at") or ""):
                    chosen[r["model_key"]] = r
    return chosen


def default_sides(rows: list[dict]) -> tuple[str, str] | None:
    """What to compare when nobody said: the two devices with the most rows (the CPU first when it is one), else the
    two newest runs (the older first)."""
    devices = defaultdict(int)
    runs = {}
    for r in rows:
        devices[r.get("device")] += 1
        run = environment(r).get("run")
        if run:
            runs[run] = max(runs.get(run, ""), r.get("created_at") or "")
    if len(devices) >= 2:  # the CPU, when it is one of them, as the baseline
        first, second = sorted(sorted(devices, key=lambda d: -devices[d])[:2], key=lambda d: d != "cpu")
        return first, second
    if len(runs) >= 2:
        newest, previous = sorted(runs, key=lambda run: runs[run], reverse=True)[:2]
        return previous[:12], newest[:12]
    return None


def compare(rows: list[dict], left: str, right: str) -> Comparison:
    """Throughput of the models measured on both sides, right / left, biggest change first."""
    a, b = _side(rows, left), _side(rows, right)
    pairs = [{"model_key": key, "left": a[key]["throughput"], "right": b[key]["throughput"],
              "ratio": b[key]["throughput"] / a[key]["throughput"]} for key in sorted(a.keys() & b.keys())]
    pairs.sort(key=lambda p: -abs(math.log(p["ratio"])))
    geomean = math.exp(statistics.fmean(math.log(p["ratio"]) for p in pairs)) if pairs else None
    return Comparison(left, right, pairs, geomean)
