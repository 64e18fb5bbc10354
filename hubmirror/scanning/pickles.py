"""Pickle scanning without unpickling: every import a pickle makes (GLOBAL, STACK_GLOBAL, INST) must be on an
allowlist of what tensor checkpoints need (default deny, as the Hub's proposed design and fickling's ML mode).
Opcodes are read from the stream, never the whole file: long arguments (tensor bytes) are skipped by seeking."""

from __future__ import annotations

import io
import pickletools
import struct
from collections.abc import Iterator
from typing import BinaryIO

# What torch.save / numpy pickles import; anything else (os.system, builtins.eval, getattr, pkgutil.resolve_name,
# torch.load inside a pickle, ...) is refused.
SAFE_GLOBALS: dict[str, set[str]] = {
    "collections": {"OrderedDict"},
    "torch._utils": {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                     "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
                     "_rebuild_meta_tensor_no_storage", "_rebuild_device_tensor_from_numpy",
                     "_rebuild_nested_tensor", "_rebuild_wrapper_subclass"},
    "torch": {"Size", "device", "dtype", "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage",
              "LongStorage", "IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
              "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage",
              "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
              "per_tensor_affine", "per_channel_affine"},
    "torch.storage": {"UntypedStorage", "TypedStorage"},
    "torch.serialization": {"_get_layout"},
    "torch.nn.parameter": {"Parameter"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.dtypes": {"Float32DType", "Float64DType", "Int64DType", "Int32DType", "UInt8DType", "BoolDType"},
    "_codecs": {"encode"},
    "builtins": {"set", "frozenset", "slice", "range", "complex", "bytearray"},
}
# TorchScript archives: their pickles name TorchScript classes (`__torch__.…`, compiled from the archive's own code by
# the TorchScript importer, not imported from Python) and these list builders.
TORCHSCRIPT_GLOBALS: dict[str, set[str]] = {
    "torch.jit._pickle": {"build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                          "build_complexlist", "build_tensor_from_id", "restore_type_tag"},
}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}

# Memory caps. A longer length-prefixed argument (tensor bytes, long strings) is seeked over, never read; module and
# class names are far shorter. Protocol-0 arguments end at a newline, so they cannot be skipped: a longer one is an
# error. The skeleton (the opcodes with skipped arguments emptied) is what picklescan reads, and picklescan keeps
# every opcode of a pickle in memory (100-200 bytes each): past either cap the pickle is an error, not clean.
MAX_KEPT_ARGUMENT = 1024
MAX_LINE = 64 * 1024
MAX_OPCODES = 500_000
MAX_SKELETON_BYTES = 16 * 1024 * 1024
_LENGTH_FORMATS = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
                   pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
SKIPPED = object()  # the argument of an opcode whose argument was seeked over
_OTHER = object()  # any value on the stack but a string


class PickleError(Exception):
    """The data is not a readable pickle (or, as OverCapsError, is beyond the scanning caps)."""


class OverCapsError(PickleError):
    """A pickle, as far as it was read, that is beyond the scanning caps."""


def opcodes(stream: BinaryIO) -> Iterator[tuple[str, object, bytes]]:
    """One pickle's opcodes up to its STOP, as (name, argument, skeleton bytes); the stream is left just after STOP.
    The same parse as pickletools.genops, except that long arguments are SKIPPED (and emptied in the skeleton)."""
    while True:
        code = stream.read(1)
        op = pickletools.code2op.get(code.decode("latin-1")) if code else None
        if op is None:
            raise PickleError(f"unknown opcode {code!r}" if code else "the data ends before STOP")
        try:
            argument, raw = _argument(stream, op.arg)
        except PickleError:
            raise
        except Exception as exc:  # pickletools' readers raise ValueError and others on malformed input
            raise PickleError(f"{op.name}: {exc}") from None
        yield op.name, argument, code + raw
        if op.name == "STOP":
            return


def _argument(stream: BinaryIO, descriptor) -> tuple[object, bytes]:
    if descriptor is None:
        return None, b""
    if descriptor.n == pickletools.UP_TO_NEWLINE:
        raw = b"".join(_line(stream) for _ in range(2 if descriptor.name == "stringnl_noescape_pair" else 1))
    elif descriptor.n >= 0:
        raw = stream.read(descriptor.n)
    else:
        fmt = _LENGTH_FORMATS[descriptor.n]
        prefix = stream.read(struct.calcsize(fmt))
        (length,) = struct.unpack(fmt, prefix)
        if length < 0:
            raise PickleError(f"negative argument length {length}")
        if length > MAX_KEPT_ARGUMENT:
            stream.seek(length - 1, io.SEEK_CUR)
            if len(stream.read(1)) != 1:
                raise PickleError("an argument runs past the end of the data")
            return SKIPPED, struct.pack(fmt, 0)
        raw = prefix + stream.read(length)
    return descriptor.reader(io.BytesIO(raw)), raw


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise OverCapsError(f"a protocol-0 argument longer than {MAX_LINE} bytes")
    if not line.endswith(b"\n"):
        raise PickleError("a protocol-0 argument without its newline")
    return line


def pickle_imports(stream: BinaryIO, count: int = 1) -> tuple[list[str], bytes]:
    """Every `module.name` the first `count` pickles on `stream` import (the memo and STACK_GLOBAL's string arguments
    are tracked, as picklescan does), and their skeleton for a second engine. Raises PickleError when the opcodes do
    not parse or pass the caps."""
    imports: list[str] = []
    skeleton = io.BytesIO()
    seen = 0
    for _ in range(count):
        memo: dict[int, object] = {}
        recent: list[object] = []  # the values most recently pushed (strings, and a marker for anything else)
        for name, arg, raw in opcodes(stream):
            seen += 1
            skeleton.write(raw)
            if seen > MAX_OPCODES or skeleton.tell() > MAX_SKELETON_BYTES:
                raise OverCapsError(f"over the scanning caps ({MAX_OPCODES} opcodes, "
                                    f"{MAX_SKELETON_BYTES >> 20} MiB of opcodes and short arguments)")
            _track(name, arg, memo, recent, imports)
    return imports, skeleton.getvalue()


def _track(name: str, arg: object, memo: dict[int, object], recent: list[object], imports: list[str]) -> None:
    """Follow one opcode: record the import it makes, and the strings that STACK_GLOBAL may take from the stack."""
    if name in ("GLOBAL", "INST"):
        module, _, attr = str(arg).partition(" ")
        imports.append(f"{module}.{attr}")
        recent.append(_OTHER)
    elif name == "STACK_GLOBAL":
        if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
            imports.append("<unresolvable STACK_GLOBAL>")
        else:
            imports.append(f"{recent[-2]}.{recent[-1]}")
        recent[-2:] = [_OTHER]
    elif name in _STRING_OPS:
        recent.append(arg)  # SKIPPED when too long: not a string, so a STACK_GLOBAL on it is unresolvable
    elif name in _PUT_OPS:
        memo[arg] = recent[-1] if recent else _OTHER
    elif name == "MEMOIZE":
        memo[len(memo)] = recent[-1] if recent else _OTHER
    elif name in _GET_OPS:
        recent.append(memo.get(arg, _OTHER))
    else:
        recent.append(_OTHER)
    del recent[:-16]


def unsafe_imports(imports: list[str], torchscript: bool = False) -> list[str]:
    """The imports that are not on the allowlist (widened for the pickles inside a TorchScript archive)."""
    bad = []
    for full in imports:
        module, _, attr = full.rpartition(".")
        if attr in SAFE_GLOBALS.get(module, ()):
            continue
        if torchscript and (full.startswith("__torch__.") or attr in TORCHSCRIPT_GLOBALS.get(module, ())):
            continue
        bad.append(full)
    return bad


LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_torch_pickles(head: bytes) -> int:
    """How many leading pickles hold the objects of a legacy (pre-zip) torch.save file — magic number, protocol,
    system info, then the data — or 1 for any other pickle; `head` is the file's first 64 bytes. The raw tensor
    bytes after those pickles are not pickle."""
    try:
        ops = list(pickletools.genops(io.BytesIO(head[:64])))
    except Exception:
        return 1
    return 4 if any(op.name in ("LONG1", "LONG") and arg == LEGACY_TORCH_MAGIC for op, arg, _ in ops) else 1


def looks_like_pickle(stream: BinaryIO) -> bool:
    """Protocol 2+ starts with PROTO; protocol 0/1 has no magic, so walk the opcodes from the (seekable) stream and
    require a clean STOP (or a cap reached on the way, which the scan then reports): other binaries fail on their
    first bytes, without being read whole."""
    head = stream.read(2)
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return True
    stream.seek(0)
    try:
        return sum(1 for _ in opcodes(stream)) > 1
    except OverCapsError:
        return True
    except PickleError:
        return False
