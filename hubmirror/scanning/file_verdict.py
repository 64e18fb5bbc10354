"""One file's admission verdict: sniff the format from the leading bytes, run every engine that applies, keep the
worst verdict. Verdicts, best to worst: `clean`; `unscanned` (a format no engine here inspects: HDF5, GGUF, TensorFlow
files; the mirror's `[admission] unscanned` policy admits or quarantines it); `unsafe` (a finding); `error` (could not
be scanned: quarantined like unsafe). Files are read as streams, never whole."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import BinaryIO

from hubmirror.scanning.formats import hdf5_superblock, keras_lambda_layers, npy_problems, safetensors_problems
from hubmirror.scanning.pickles import (
    PickleError,
    legacy_torch_pickles,
    looks_like_pickle,
    pickle_imports,
    unsafe_imports,
)
from hubmirror.scanning.protobuf import location_problems, onnx_model

SCANNER_VERSION = "3"  # bump when a rule changes, so `hubmirror scan` re-scans everything
VERDICTS = ("clean", "unscanned", "unsafe", "error")  # best to worst
MAX_ZIP_MEMBERS = 100_000
MAX_KERAS_CONFIG = 8 * 1024 * 1024  # a .keras archive's config.json is parsed whole to look for Lambda layers
ZIP_SEEK_READ = 1024 * 1024  # a zip member seeks forward by reading (zipfile's default: 16 MiB at a time)
NOT_INSPECTED = {
    "hdf5": "HDF5 (Keras .h5/.weights.h5) is not inspected: a legacy Keras model's Lambda layers are code",
    "gguf": "GGUF is not inspected: its chat template is a Jinja program that some loaders run",
}
# TensorFlow files by name: a SavedModel's or frozen graph's protobuf (graphs hold ops that read and write files),
# and the variables / checkpoint tensor bundles that the graph restores.
_TENSORFLOW_NAME = re.compile(r"\.pb(txt)?$|(^|/)(variables|[^/]*\.ckpt(-\d+)?)\.(index|data-\d+-of-\d+)$")


@dataclass
class Verdict:
    verdict: str = "clean"
    format: str = "unknown"
    findings: list[str] = field(default_factory=list)
    readings: list[str] = field(default_factory=list)  # the name readings it covers (see `reading`)

    def worse(self, verdict: str, finding: str) -> None:
        self.findings.append(finding)
        if VERDICTS.index(verdict) > VERDICTS.index(self.verdict):
            self.verdict = verdict

    def combined(self, other: Verdict) -> Verdict:
        """One blob judged under two readings: the worse verdict wins, findings and readings add up."""
        worst = other if VERDICTS.index(other.verdict) > VERDICTS.index(self.verdict) else self
        findings = self.findings + [f for f in other.findings if f not in self.findings]
        return Verdict(worst.verdict, worst.format, findings, sorted({*self.readings, *other.readings}))

    def details(self) -> str:
        """The catalog's `details` column: format, findings and the readings judged."""
        return json.dumps({"format": self.format, "findings": self.findings, "readings": self.readings})

    @classmethod
    def from_details(cls, verdict: str, details: str) -> Verdict:
        known = json.loads(details or "{}")
        return cls(verdict, known.get("format", "unknown"), list(known.get("findings") or []),
                   list(known.get("readings") or []))


def reading(name: str) -> str:
    """The rules a file's name adds to the reading of its bytes: `safetensors` (it must be one), `onnx` (parsed as
    ONNX whatever its first byte), `tensorflow` (not inspected), or `content` (the bytes alone decide)."""
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".onnx"):
        return "onnx"
    if _TENSORFLOW_NAME.search(name):
        return "tensorflow"
    return "content"


def scanner_versions() -> str:
    """The rule set and engine versions a verdict was reached with; a change means re-scan."""
    try:
        picklescan = version("picklescan")
    except PackageNotFoundError:
        picklescan = "missing"
    return f"{SCANNER_VERSION}+picklescan-{picklescan}"


def sniff(head: bytes) -> str:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
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


def _scan_pickle(stream: BinaryIO, head: bytes, label: str, verdict: Verdict, torchscript: bool = False) -> None:
    """Two engines: the allowlist walk (default deny) over the stream, then picklescan in strict mode over the walk's
    skeleton (the same opcodes, tensor bytes left out); the worse verdict wins. A legacy torch.save file is several
    pickles followed by raw tensor bytes: each pickle is scanned, the bytes are not."""
    try:
        imports, skeleton = pickle_imports(stream, legacy_torch_pickles(head))
    except PickleError as exc:
        verdict.worse("error", f"{label}: {exc}")
        return
    for name in unsafe_imports(imports, torchscript):
        verdict.worse("unsafe", f"{label}: imports {name}, which is not on the allowlist")
    try:
        from picklescan.scanner import scan_pickle_bytes
    except ImportError:
        verdict.worse("error", f"{label}: picklescan is not installed")
        return
    result = scan_pickle_bytes(io.BytesIO(skeleton), label, multiple_pickles=True, strict=not torchscript)
    if result.scan_err:
        verdict.worse("error", f"{label}: picklescan could not parse it")
    elif result.infected_files or result.issues_count:
        verdict.worse("unsafe", f"{label}: picklescan flags {result.issues_count} dangerous import(s)")


def _scan_zip(f: BinaryIO, verdict: Verdict) -> None:
    """Scan every member by content (torch.save's zip format holds data.pkl; TorchScript holds several pickles; a
    .keras archive holds config.json and HDF5 weights)."""
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
            elif "config.json" in {i.filename for i in infos}:
                verdict.format = "keras"
                _scan_keras_config(archive, verdict)
            for info in infos:
                if not info.is_dir():
                    with archive.open(info) as member:
                        member.MAX_SEEK_READ = ZIP_SEEK_READ
                        _scan_member(member, info.filename, verdict, torchscript)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        verdict.worse("error", f"zip could not be read: {exc}")


def _scan_member(member: BinaryIO, name: str, verdict: Verdict, torchscript: bool) -> None:
    head = member.read(64)
    member.seek(0)
    kind = sniff(head)
    if name.endswith(".pkl") or kind == "pickle" or looks_like_pickle(member):
        member.seek(0)
        _scan_pickle(member, head, name, verdict, torchscript)
    elif kind in ("zip", "7z"):
        verdict.worse("error", f"{name}: nested archive")
    elif kind == "numpy":
        member.seek(0)
        for problem in npy_problems(member.read(4096 + 10)):
            verdict.worse("unsafe", f"{name}: {problem}")
    elif kind in NOT_INSPECTED:
        verdict.worse("unscanned", f"{name}: {NOT_INSPECTED[kind]}")


def _scan_keras_config(archive: zipfile.ZipFile, verdict: Verdict) -> None:
    with archive.open("config.json") as member:
        data = member.read(MAX_KERAS_CONFIG + 1)
    if len(data) > MAX_KERAS_CONFIG:
        verdict.worse("error", f"config.json: over {MAX_KERAS_CONFIG >> 20} MiB, too large to check for Lambda layers")
        return
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as exc:
        verdict.worse("error", f"config.json is not readable JSON: {exc}")
        return
    for name in keras_lambda_layers(config):
        verdict.worse("unsafe", f"config.json: Lambda layer {name!r} (its function is code that loading runs)")


def _scan_protobuf(f: BinaryIO, size: int, name: str, verdict: Verdict) -> None:
    try:
        has_graph, locations = onnx_model(f, size)
    except ValueError as exc:
        if name.endswith(".onnx"):
            verdict.worse("error", f"ONNX model could not be parsed: {exc}")
        return
    if not has_graph:
        verdict.format = "protobuf"
        verdict.worse("unscanned", "a protobuf message with no ONNX graph (a TensorFlow SavedModel?) is not inspected")
        return
    verdict.format = "onnx"
    for problem in location_problems(locations):
        verdict.worse("unsafe", f"onnx: {problem}")


def _not_inspected(f: BinaryIO, size: int, name: str, verdict: Verdict) -> None:
    """What content routing misses: HDF5 behind a user block, and TensorFlow files known by name."""
    offset = hdf5_superblock(f, size) if verdict.format != "hdf5" else None
    if offset is not None:
        verdict.worse("unscanned", f"HDF5 after a {offset}-byte user block: {NOT_INSPECTED['hdf5']}")
    if verdict.verdict == "clean" and _TENSORFLOW_NAME.search(name):
        verdict.format = "tensorflow"
        verdict.worse("unscanned", "TensorFlow SavedModel, graph or checkpoint file: not inspected")


def scan_file(source: Path | str | BinaryIO, name: str) -> Verdict:
    """The admission verdict of the file at `source`, a path or an open, seekable binary file (a store backend's
    `open`, which the caller closes); its repo name is used only to spot ONNX and TensorFlow files."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _scan_stream(f, name)
    return _scan_stream(source, name)


def _scan_stream(f: BinaryIO, name: str) -> Verdict:
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
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
        _scan_pickle(f, head, name, verdict)
    elif kind == "safetensors":
        for problem in safetensors_problems(f, size):
            verdict.worse("unsafe", f"safetensors: {problem}")
    elif kind == "numpy":
        for problem in npy_problems(f.read(4096 + 10)):
            verdict.worse("unsafe", problem)
    elif kind in NOT_INSPECTED:
        verdict.worse("unscanned", NOT_INSPECTED[kind])
    elif name.endswith(".onnx") or head[:1] == b"\x08":
        _scan_protobuf(f, size, name, verdict)
    elif looks_like_pickle(f):
        verdict.format = "pickle"  # protocol 0/1: no magic, so parse to tell
        f.seek(0)
        _scan_pickle(f, head, name, verdict)
    _not_inspected(f, size, name, verdict)
    return verdict
