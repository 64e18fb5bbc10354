"""ONNX external-data paths, read from the stream: protobuf fields are walked without loading the model, descending
only into the messages that can hold a tensor's `external_data`; every other field (raw tensor bytes included) is
seeked over, never read."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from hubmirror.errors import UnsafePathError
from hubmirror.safepath import check_relative_path

# The onnx.proto messages that lead to TensorProto.external_data, and the length-delimited fields to follow in each.
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},  # ModelProto.graph, .training_info, .functions
    "training": {1: "graph", 2: "graph"},  # TrainingInfoProto.initialization, .algorithm
    "function": {7: "node", 11: "attribute"},  # FunctionProto.node, .attribute_proto
    "graph": {1: "node", 5: "tensor", 15: "sparse"},  # GraphProto.node, .initializer, .sparse_initializer
    "node": {5: "attribute"},  # NodeProto.attribute
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},  # t, g, tensors…
    "sparse": {1: "tensor", 2: "tensor"},  # SparseTensorProto.values, .indices
    "tensor": {13: "entry"},  # TensorProto.external_data: StringStringEntryProto
}
MAX_DEPTH = 64  # subgraphs nest (If/Loop bodies); deeper is an attack on the walker
MAX_ENTRY = 64 * 1024  # an external_data key/value pair is read whole; nothing legitimate comes near this


def _varint(stream: BinaryIO) -> int:
    value = shift = 0
    while shift <= 63:
        byte = stream.read(1)
        if not byte:
            raise ValueError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _fields(stream: BinaryIO, end: int) -> Iterator[tuple[int, int]]:
    """(field number, end offset) of each length-delimited field of the message that ends at `end`, with the stream
    at the field's payload; after each, the stream moves to the field's end whatever the caller read."""
    while stream.tell() < end:
        key = _varint(stream)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _varint(stream)
            continue
        if wire not in (1, 2, 5):
            raise ValueError(f"unsupported wire type {wire}")
        length = _varint(stream) if wire == 2 else (8 if wire == 1 else 4)
        field_end = stream.tell() + length
        if field_end > end:
            raise ValueError("a field runs past the end of its message")
        if wire == 2:
            yield number, field_end
        stream.seek(field_end)
    if stream.tell() != end:
        raise ValueError("a field runs past the end of its message")


def _locations(stream: BinaryIO, end: int, message: str, depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"messages nested deeper than {MAX_DEPTH}")
    for number, field_end in _fields(stream, end):
        child = _CHILDREN[message].get(number)
        if child == "entry":
            entry = _strings(stream, field_end)
            if entry.get(1) == b"location":
                out.append(entry.get(2, b"").decode("utf-8", "replace"))
        elif child is not None:
            _locations(stream, field_end, child, depth + 1, out)


def _strings(stream: BinaryIO, end: int) -> dict[int, bytes]:
    """The length-delimited fields of a small message, read whole."""
    length = end - stream.tell()
    if length > MAX_ENTRY:
        raise ValueError(f"an external_data entry of {length} bytes")
    data = io.BytesIO(stream.read(length))
    out = {}
    for number, field_end in _fields(data, length):
        out[number] = data.read(field_end - data.tell())
    return out


def onnx_model(stream: BinaryIO, size: int) -> tuple[bool, list[str]]:
    """Whether the protobuf message on `stream` (`size` bytes) has an ONNX graph (ModelProto.graph), and the
    `location` of every tensor stored as external data. Raises ValueError when it is not a protobuf message."""
    has_graph = False
    locations: list[str] = []
    for number, field_end in _fields(stream, size):
        has_graph = has_graph or number == 7
        if number in _CHILDREN["model"]:
            _locations(stream, field_end, _CHILDREN["model"][number], 1, locations)
    return has_graph, locations


def location_problems(locations: list[str]) -> list[str]:
    problems = []
    for location in locations:
        try:
            check_relative_path(location)
        except UnsafePathError:
            problems.append(f"external data location {location!r} escapes the model's folder")
    return problems
