"""Pickle scanning without unpickling: every import a pickle makes (GLOBAL, STACK_GLOBAL, INST) must be on an
allowlist of what tensor checkpoints need (default deny, as the Hub's proposed design and fickling's ML mode)."""

from __future__ import annotations

import io
import pickletools

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


class PickleError(Exception):
    """The data is not a readable pickle."""


def pickle_imports(data: bytes, count: int = 1) -> tuple[list[str], int]:
    """Every `module.name` the first `count` pickles in `data` import, and where the last one ends. Opcodes are walked,
    never executed (the memo and STACK_GLOBAL's string arguments are tracked, as picklescan does). Raises PickleError
    when the opcodes do not parse."""
    imports: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(count):
        imports.extend(_one_pickle_imports(stream))
    return imports, stream.tell()


def _one_pickle_imports(stream: io.BytesIO) -> list[str]:
    imports: list[str] = []
    memo: dict[int, object] = {}
    recent: list[object] = []  # the values most recently pushed (strings, and a marker for anything else)
    other = object()
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                imports.append(f"{module}.{attr}")
                recent.append(other)
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                    imports.append("<unresolvable STACK_GLOBAL>")
                else:
                    imports.append(f"{recent[-2]}.{recent[-1]}")
                recent[-2:] = [other]
            elif name in _STRING_OPS:
                recent.append(arg)
            elif name in _PUT_OPS:
                memo[arg] = recent[-1] if recent else other
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else other
            elif name in _GET_OPS:
                recent.append(memo.get(arg, other))
            elif name == "STOP":
                stream.seek(pos + 1)
                break
            else:
                recent.append(other)
            del recent[:-16]
    except Exception as exc:  # pickletools raises ValueError and others on malformed input
        raise PickleError(f"not a readable pickle: {exc}") from None
    return imports


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


def legacy_torch_pickles(data: bytes) -> int:
    """How many leading pickles hold the objects of a legacy (pre-zip) torch.save file — magic number, protocol,
    system info, then the data — or 1 for any other pickle. The raw tensor bytes after them are not pickle."""
    try:
        opcodes = list(pickletools.genops(io.BytesIO(data[:64])))
    except Exception:
        return 1
    return 4 if any(op.name in ("LONG1", "LONG") and arg == LEGACY_TORCH_MAGIC for op, arg, _ in opcodes) else 1


def looks_like_pickle(stream) -> bool:
    """Protocol 2+ starts with PROTO; protocol 0/1 has no magic, so walk the opcodes from the (seekable) stream and
    require a clean STOP: other binaries fail on their first bytes, without being read whole."""
    head = stream.read(2)
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return True
    stream.seek(0)
    try:
        last, count = None, 0
        for opcode, _, _ in pickletools.genops(stream):
            last, count = opcode.name, count + 1
            if last == "STOP":
                break
        return last == "STOP" and count > 1
    except Exception:
        return False
