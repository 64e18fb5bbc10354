"""Hand-built protobuf wire bytes for scanner tests (ONNX-like models, TF SavedModel headers)."""


def varint(n: int) -> bytes:
    """A protobuf base-128 varint."""
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload
