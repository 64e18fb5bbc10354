"""Format checks that need no unpickling: safetensors headers, NumPy headers, ONNX external-data paths."""

from __future__ import annotations

import json
import re
import struct

from hubmirror.errors import UnsafePathError
from hubmirror.safepath import check_relative_path

MAX_SAFETENSORS_HEADER = 100_000_000
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
               "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
               "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def safetensors_problems(f, size: int) -> list[str]:
    """What is wrong with a safetensors file's header, by the rules of the Rust core (empty when valid)."""
    if size < 8:
        return ["shorter than the 8-byte header length"]
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_SAFETENSORS_HEADER:
        return [f"header length {n} is over the {MAX_SAFETENSORS_HEADER} limit"]
    if 8 + n > size:
        return [f"header length {n} runs past the end of the file"]
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"header is not valid JSON: {exc}"]
    if not isinstance(header, dict):
        return ["header is not a JSON object"]
    problems = []
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        problems.append("__metadata__ must map strings to strings")
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            problems.append(f"tensor {name!r}: malformed entry")
            continue
        if dtype not in _DTYPE_BITS or not all(isinstance(d, int) and d >= 0 for d in shape):
            problems.append(f"tensor {name!r}: unknown dtype or bad shape")
            continue
        count = 1
        for d in shape:
            count *= d
        if not (isinstance(begin, int) and isinstance(end, int)) or end - begin != count * _DTYPE_BITS[dtype] // 8:
            problems.append(f"tensor {name!r}: offsets {begin}-{end} do not hold {count} {dtype}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            problems.append(f"tensor {name!r}: offsets not contiguous from 0 (hole or overlap at {begin})")
        position = end
    if 8 + n + position != size:
        problems.append(f"buffer ends at {8 + n + position}, file at {size}: bytes outside every tensor")
    return problems


def npy_problems(data: bytes) -> list[str]:
    """A .npy whose dtype holds Python objects needs pickle to load."""
    header = data[:10 + 4096].decode("latin1", "replace")
    match = re.search(r"""['"]descr['"]\s*:\s*['"]([^'"]*)['"]""", header)
    if match is None:
        return ["NumPy header has no dtype description"]
    return ["NumPy array of Python objects (loading it unpickles)"] if "O" in match.group(1) else []


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > len(buf):
                raise ValueError("truncated field")
            value, i = buf[i:i + length], i + length
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def onnx_external_locations(model: bytes) -> list[str]:
    """The `location` of every external-data initializer (ModelProto.graph.initializer[].external_data)."""
    locations = []
    for number, wire, graph in _fields(model):
        if number == 7 and wire == 2:  # ModelProto.graph
            for g_number, g_wire, tensor in _fields(graph):
                if g_number == 5 and g_wire == 2:  # GraphProto.initializer
                    for t_number, t_wire, entry in _fields(tensor):
                        if t_number == 13 and t_wire == 2:  # TensorProto.external_data
                            kv = {n: v for n, w, v in _fields(entry) if w == 2}
                            if kv.get(1) == b"location":
                                locations.append(kv.get(2, b"").decode("utf-8", "replace"))
    return locations


def onnx_problems(model: bytes) -> list[str]:
    problems = []
    for location in onnx_external_locations(model):
        try:
            check_relative_path(location)
        except UnsafePathError:
            problems.append(f"external data location {location!r} escapes the model's folder")
    return problems
