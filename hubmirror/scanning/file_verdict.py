"""One file's admission verdict: sniff the format from the leading bytes, run every engine that applies, keep the
worst verdict. Verdicts: `clean`, `unsafe` (a finding), `error` (could not be scanned — quarantined like unsafe)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hubmirror.scanning.formats import npy_problems, onnx_problems, safetensors_problems
from hubmirror.scanning.pickles import (
    PickleError,
    legacy_torch_pickles,
    looks_like_pickle,
    pickle_imports,
    unsafe_imports,
)

SCANNER_VERSION = "1"  # bump when a rule changes, so `hubmirror scan` re-scans everything
_RANK = {"clean": 0, "unsafe": 1, "error": 2}
MAX_PICKLE_BYTES = 512 * 1024 * 1024
MAX_ZIP_MEMBERS = 100_000


@dataclass
class Verdict:
    verdict: str = "clean"
    format: str = "unknown"
    findings: list[str] = field(default_factory=list)

    def worse(self, verdict: str, finding: str) -> None:
        self.findings.append(finding)
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict

    @property
    def quarantined(self) -> bool:
        return self.verdict != "clean"


def scanner_versions() -> str:
    """The rule set and engine versions a verdict was reached with; a change means re-scan."""
    try:
        picklescan = version("picklescan")
    except PackageNotFoundError:
        picklescan = "missing"
    return f"{SCANNER_VERSION}+picklescan-{picklescan}"


def sniff(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    return "unknown"


def _scan_pickle(data: bytes, label: str, verdict: Verdict, torchscript: bool = False) -> None:
    """Two engines: the allowlist walk (default deny) and picklescan in strict mode; the worse verdict wins.
    A legacy torch.save file is several pickles followed by raw tensor bytes: each pickle is scanned."""
    try:
        imports, end = pickle_imports(data, legacy_torch_pickles(data))
        bad = unsafe_imports(imports, torchscript)
    except PickleError as exc:
        verdict.worse("error", f"{label}: {exc}")
        return
    data = data[:end]
    for name in bad:
        verdict.worse("unsafe", f"{label}: imports {name}, which is not on the allowlist")
    try:
        from picklescan.scanner import scan_bytes
    except ImportError:
        verdict.worse("error", f"{label}: picklescan is not installed")
        return
    result = scan_bytes(io.BytesIO(data), label, "pkl", strict=not torchscript)
    if result.scan_err:
        verdict.worse("error", f"{label}: picklescan could not parse it")
    elif result.infected_files or result.issues_count:
        verdict.worse("unsafe", f"{label}: picklescan flags {result.issues_count} dangerous import(s)")


def _scan_zip(f, verdict: Verdict) -> None:
    """Scan every member by content (torch.save's zip format holds data.pkl; TorchScript holds several pickles)."""
    try:
        with zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                verdict.worse("error", f"zip with {len(infos)} members")
                return
            torchscript = any("/code/" in i.filename for i in infos) and any(
                i.filename.endswith("/constants.pkl") for i in infos)
            if torchscript:
                verdict.format = "torchscript"
            for info in infos:
                if info.is_dir():
                    continue
                with archive.open(info) as member:
                    head = member.read(64)
                with archive.open(info) as member:
                    is_pickle = info.filename.endswith(".pkl") or sniff(head) == "pickle" or looks_like_pickle(member)
                if is_pickle:
                    if info.file_size > MAX_PICKLE_BYTES:
                        verdict.worse("error", f"{info.filename}: pickle too large to scan")
                        continue
                    _scan_pickle(archive.read(info), info.filename, verdict, torchscript)
                elif sniff(head) in ("zip", "7z"):
                    verdict.worse("error", f"{info.filename}: nested archive")
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        verdict.worse("error", f"zip could not be read: {exc}")


def scan_file(path: Path, name: str) -> Verdict:
    """The admission verdict of the file at `path` (its repo name is used only to spot ONNX models)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        kind = sniff(head)
        if kind == "unknown" and name.endswith(".safetensors"):
            kind = "safetensors"  # whatever it holds, it must pass as one
        verdict = Verdict(format=kind)
        f.seek(0)
        if kind == "zip":
            _scan_zip(f, verdict)
        elif kind == "7z":
            verdict.worse("error", "7z archive: its members cannot be scanned (7z-wrapped pickles are an attack)")
        elif kind == "pickle":
            if size > MAX_PICKLE_BYTES:
                verdict.worse("error", "pickle too large to scan")
            else:
                _scan_pickle(f.read(), name, verdict)
        elif kind == "safetensors":
            for problem in safetensors_problems(f, size):
                verdict.worse("unsafe", f"safetensors: {problem}")
        elif kind == "numpy":
            for problem in npy_problems(f.read(4096 + 10)):
                verdict.worse("unsafe", problem)
        elif name.endswith(".onnx") or (head[:1] == b"\x08" and size < 2 << 30):
            _scan_onnx(f, name, verdict)
        elif kind == "unknown" and size <= MAX_PICKLE_BYTES and looks_like_pickle(f):
            verdict.format = "pickle"  # protocol 0/1: no magic, so parse to tell
            f.seek(0)
            _scan_pickle(f.read(), name, verdict)
    return verdict


def _scan_onnx(f, name: str, verdict: Verdict) -> None:
    try:
        problems = onnx_problems(f.read())
    except ValueError as exc:
        if name.endswith(".onnx"):
            verdict.worse("error", f"ONNX model could not be parsed: {exc}")
        return
    verdict.format = "onnx"
    for problem in problems:
        verdict.worse("unsafe", f"onnx: {problem}")
