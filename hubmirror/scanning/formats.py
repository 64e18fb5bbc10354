"""Format checks that need no unpickling: safetensors and NumPy headers, HDF5 behind a user block, Keras Lambda
layers."""

from __future__ import annotations

import json
import re
import struct
from typing import BinaryIO

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


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def hdf5_superblock(f: BinaryIO, size: int) -> int | None:
    """Where an HDF5 superblock starts: at 0, or after a user block of 512, 1024, 2048... bytes (h5py and Keras open
    such a file whatever its first bytes hold), or None."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        f.seek(offset)
        if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return offset
        offset = offset * 2 or 512
    return None


def keras_lambda_layers(config: object) -> list[str]:
    """The names of the Lambda layers in a Keras model config (config.json of a .keras archive): a Lambda layer's
    function is Python code that loading the model runs."""
    names, todo = [], [config]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                names.append(str((node.get("config") or {}).get("name", "?")))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return names
