"""Admission scanning streams: a 200 MiB pickle, ONNX model or zip member is judged correctly in a few MiB of memory
(the scanner once read such files whole, four at a time)."""

import struct
import tracemalloc
import zipfile

import pytest

from hubmirror.scanning import scan_file
from tests.fakes.protobuf_bytes import field, varint

BIG = 200 * 1024 * 1024 + 12345  # bytes of one tensor-like argument: far above any cap the scanner keeps in memory
PAYLOAD_AT = 64  # the big argument starts within the first bytes of each generated file




def _pickle_parts(hostile: bool) -> tuple[bytes, bytes]:
    """A protocol-4 pickle of [b"\\0" * BIG] (+ posix.system("id") when hostile), as (before, after) the bytes."""
    head = b"\x80\x04]" + b"\x8e" + struct.pack("<Q", BIG)  # PROTO 4, EMPTY_LIST, BINBYTES8
    evil = b"\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85Ra"  # STACK_GLOBAL posix.system, REDUCE, APPEND
    return head, b"a" + (evil if hostile else b"") + b"."


def _onnx_parts(location: str) -> tuple[bytes, bytes]:
    """An ONNX ModelProto whose one initializer holds BIG bytes of raw_data, then an external-data `location`."""
    entry = field(13, field(1, b"location") + field(2, location.encode()))
    raw_key = varint(9 << 3 | 2) + varint(BIG)
    name = field(1, b"w")
    tensor_len = len(name) + len(raw_key) + BIG + len(entry)
    initializer = varint(5 << 3 | 2) + varint(tensor_len)
    graph = varint(7 << 3 | 2) + varint(len(initializer) + tensor_len)
    return b"\x08\x08" + graph + initializer + name + raw_key, entry


def _sparse_file(path, parts: tuple[bytes, bytes]):
    """A file of `before`, BIG zero bytes (a hole: nothing is written), `after`."""
    before, after = parts
    with open(path, "wb") as f:
        f.write(before)
        f.seek(BIG, 1)
        f.write(after)
    return path


def _zip_with_member(path, parts: tuple[bytes, bytes]):
    """A zip whose one stored (uncompressed) member `archive/data.pkl` is the pickle."""
    before, after = parts
    with zipfile.ZipFile(path, "w") as zf, zf.open("archive/data.pkl", "w", force_zip64=True) as member:
        member.write(before)
        chunk = bytes(1 << 20)
        for _ in range(BIG >> 20):
            member.write(chunk)
        member.write(bytes(BIG & ((1 << 20) - 1)) + after)
    return path


def _peak_scan(path, name):
    warm_up = path.with_name("warm-up.pkl")
    warm_up.write_bytes(b"\x80\x04]\x8c\x01a\x8c\x01b\x93a.")  # a first scan, so that imports are not measured
    scan_file(warm_up, warm_up.name)
    tracemalloc.start()
    try:
        verdict = scan_file(path, name)
        return verdict, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        path.unlink()


CASES = {
    "pickle": ("weights.pkl", lambda p: _sparse_file(p, _pickle_parts(False)), "clean"),
    "hostile pickle": ("weights.bin", lambda p: _sparse_file(p, _pickle_parts(True)), "unsafe"),
    "onnx": ("model.onnx", lambda p: _sparse_file(p, _onnx_parts("model.onnx.data")), "clean"),
    "escaping onnx": ("model.onnx", lambda p: _sparse_file(p, _onnx_parts("../../etc/passwd")), "unsafe"),
    "hostile zip member": ("model.pt", lambda p: _zip_with_member(p, _pickle_parts(True)), "unsafe"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_big_files_are_scanned_in_bounded_memory(tmp_path, case):
    name, make, expected = CASES[case]
    path = make(tmp_path / name)
    assert path.stat().st_size > BIG
    verdict, peak = _peak_scan(path, name)
    assert verdict.verdict == expected, verdict
    assert peak < 4 << 20, f"{case}: peak {peak / 2**20:.1f} MiB while scanning"


def _scan_bytes(tmp_path, data: bytes):
    path = tmp_path / "weights.pkl"
    path.write_bytes(data)
    return scan_file(path, "weights.pkl")


def test_a_skipped_argument_hides_no_import(tmp_path):
    module = ("os" + " " * 2000).encode()  # too long to keep: a STACK_GLOBAL on it cannot be resolved, so is refused
    data = b"\x80\x04X" + struct.pack("<I", len(module)) + module + b"\x8c\x06system\x93\x8c\x02id\x85R."
    assert _scan_bytes(tmp_path, data).verdict == "unsafe"


def test_pickles_past_the_caps_are_errors_not_clean(tmp_path, monkeypatch):
    import os
    import pickle

    from hubmirror.scanning import pickles

    assert _scan_bytes(tmp_path, b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b".").verdict == "error"  # past EOF
    long_line = pickle.dumps(["a" * 70_000, os.system], protocol=0)  # no magic, and a line too long to keep
    assert _scan_bytes(tmp_path, long_line).verdict == "error"
    monkeypatch.setattr(pickles, "MAX_OPCODES", 1000)
    verdict = _scan_bytes(tmp_path, pickle.dumps(list(range(2000)), protocol=4))
    assert verdict.verdict == "error" and "over the scanning caps" in verdict.findings[0]
