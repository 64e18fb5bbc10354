"""What a site log entry may say, checked before anything of it is applied.

An entry is a JSON object any host wrote, or anyone who can write to the bucket: every field is checked for its type
and shape, and an entry that fails is refused whole (its key named once, never blocking the entries beside it).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field

from hubmirror.digests import SHA256_RE
from hubmirror.errors import IntegrityError
from hubmirror.scanning.file_verdict import VERDICTS
from hubmirror.store.bucket import SiteError
from hubmirror.upstream import check_model_id
from hubmirror.xet.format import is_xet_hash
from hubmirror.xet.layout import unpack_layout

_TOKEN_ID = re.compile(r"[0-9a-f]{12}\Z")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_SCAN_FIELDS = {"sha256": str, "scanner_version": str, "verdict": str, "details": str}
_BENCHMARK_SCALARS = (str, int, float, bool, type(None))
_NUMBER = (int, float)
# the benchmarks table's columns and what each may hold (None: absent); other keys are scalars, dropped on apply
_BENCHMARK_COLUMNS = {"model_key": str, "commit_id": str, "status": str, "device": str, "dtype": str,
                      "batch_size": int, "latency_p50_ms": _NUMBER, "latency_p90_ms": _NUMBER,
                      "latency_p99_ms": _NUMBER, "throughput": _NUMBER, "peak_memory_bytes": int, "parameters": int,
                      "environment": str, "created_at": str}
_BENCHMARK_REQUIRED = ("model_key", "commit_id", "status")


@dataclass
class LogEntry:
    models: list[str] = field(default_factory=list)  # model keys whose ref object changed
    allowed: list[str] = field(default_factory=list)  # sha256 of allowances touched
    scans: list[dict] = field(default_factory=list)  # {sha256, scanner_version, verdict, details}
    benchmarks: list[dict] = field(default_factory=list)  # benchmark rows (scalar values only)
    tokens: list[str] = field(default_factory=list)  # ids of tokens added or revoked
    xet: list[tuple[str, str, bytes]] = field(default_factory=list)  # (sha256, Xet file hash, packed layout)


def parse_entry(body: bytes) -> LogEntry:
    """The checked content of one log entry's bytes; a `SiteError` saying what is wrong with it otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise SiteError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SiteError("not a JSON object")
    entry = LogEntry()
    for key in _list(value, "models"):
        entry.models.append(_model_key(key))
    for sha256 in _list(value, "allowed"):
        entry.allowed.append(_sha256(sha256))
    for scan in _list(value, "scans"):
        if not isinstance(scan, dict) or any(not isinstance(scan.get(k), t) for k, t in _SCAN_FIELDS.items()):
            raise SiteError("a scan verdict lacks sha256, scanner_version, verdict or details")
        _sha256(scan["sha256"])
        if scan["verdict"] not in VERDICTS:
            raise SiteError(f"scan verdict {scan['verdict'][:40]!r} is not one of {', '.join(VERDICTS)}")
        entry.scans.append({k: scan[k] for k in _SCAN_FIELDS})
    for token_id in _list(value, "tokens"):
        if not (isinstance(token_id, str) and _TOKEN_ID.match(token_id)):
            raise SiteError(f"{str(token_id)[:40]!r} is not a token id")
        entry.tokens.append(token_id)
    for row in _list(value, "benchmarks"):
        entry.benchmarks.append(_benchmark_row(row))
    for item in _list(value, "xet"):
        entry.xet.append(_xet_layout(item))
    return entry


def _benchmark_row(row) -> dict:
    """A benchmark row: an object of scalars, its model key well formed, each column's value of the column's kind
    (numbers for figures, never a boolean), as the report and the web pages will read them."""
    if not isinstance(row, dict) or not all(isinstance(k, str) and isinstance(v, _BENCHMARK_SCALARS)
                                            for k, v in row.items()):
        raise SiteError("a benchmark row is not an object of scalars")
    if any(row.get(k) is None for k in _BENCHMARK_REQUIRED):
        raise SiteError(f"a benchmark row lacks one of {', '.join(_BENCHMARK_REQUIRED)}")
    _model_key(row["model_key"])
    for column, kind in _BENCHMARK_COLUMNS.items():
        value = row.get(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise SiteError(f"a benchmark row's {column} is not a {getattr(kind, '__name__', 'number')}")
    return row


def _xet_layout(item) -> tuple[str, str, bytes]:
    """A blob's Xet hash and layout, as `SiteLog.publish_xet_layout` writes them; the layout must unpack whole."""
    if not isinstance(item, dict) or not is_xet_hash(item.get("xet_hash")) or not isinstance(item.get("layout"), str):
        raise SiteError("a Xet layout lacks its sha256, xet_hash or layout")
    try:
        layout = base64.b64decode(item["layout"], validate=True)
        unpack_layout(layout)
    except ValueError:
        raise SiteError("a Xet layout does not unpack") from None
    return _sha256(item.get("sha256")), item["xet_hash"], layout


def _list(value: dict, name: str) -> list:
    items = value.get(name) or []
    if not isinstance(items, list):
        raise SiteError(f"{name!r} is not a list")
    return items


def _model_key(key) -> str:
    """`source:model_id`, the id as every way in checks it (`upstream.check_model_id`)."""
    source, sep, model_id = key.partition(":") if isinstance(key, str) else ("", "", "")
    try:
        if not (sep and _SOURCE.match(source)):
            raise IntegrityError("no source")
        check_model_id(model_id)
    except IntegrityError:
        raise SiteError(f"model key {str(key)[:80]!r} is malformed") from None
    return key


def _sha256(value) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise SiteError(f"{str(value)[:80]!r} is not a sha256 digest")
    return value
