"""Admission scanning: hostile files are found by content, quarantined (not served, exported or materialised),
and admitted only one by one by an operator; real checkpoints pass."""

import io
import json
import os
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import pytest
import requests

from hubmirror.scanning import scan_file
from tests.conftest import noise
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import facenet_files, minilm_files, silero_files
from tests.fakes.protobuf_bytes import field


class Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _stack_global_via_memo() -> bytes:
    """STACK_GLOBAL whose module and name come back from the memo (BINPUT/BINGET), to confuse naive scanners."""
    return (b"\x80\x04" + b"\x8c\x02os\x94" + b"\x8c\x06system\x94" + b"h\x00h\x01\x93"
            + b"\x8c\x02id\x85R." )


HOSTILE_PICKLES = {
    "os.system": pickle.dumps(Reduce(os.system, ("echo pwned",))),
    "eval": pickle.dumps(Reduce(eval, ("1+1",))),
    "getattr chain": pickle.dumps(Reduce(getattr, (Reduce(__import__, ("os",)), "system"))),
    "pkgutil.resolve_name": pickle.dumps(Reduce(__import__("pkgutil").resolve_name, ("os:system",))),
    "protocol 0": pickle.dumps(Reduce(os.system, ("echo pwned",)), protocol=0),
    "memo STACK_GLOBAL": _stack_global_via_memo(),
}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(HOSTILE_PICKLES))
@pytest.mark.parametrize("name", ["model.pkl", "weights.bin", "README.md", "vocab.txt"])
def test_hostile_pickles_are_found_by_content_whatever_their_name(tmp_path, kind, name):
    data = HOSTILE_PICKLES[kind]
    list(pickletools.genops(io.BytesIO(data)))  # each is a well-formed pickle
    verdict = scan_file(_write(tmp_path, name, data), name)
    assert verdict.verdict == "unsafe", (kind, verdict)


def test_a_pickle_inside_a_zip_is_scanned(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2), "evil": Reduce(os.system, ("echo",))}, tmp_path / "evil.pt")
    assert scan_file(tmp_path / "evil.pt", "evil.pt").verdict == "unsafe"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/notes.dat", HOSTILE_PICKLES["eval"])  # no .pkl name: found by its PROTO byte
    assert scan_file(_write(tmp_path, "bundle.zip", buf.getvalue()), "bundle.zip").verdict == "unsafe"
    torch.save({"w": torch.zeros(2)}, tmp_path / "good.pt")
    assert scan_file(tmp_path / "good.pt", "good.pt").verdict == "clean"


def test_unscannable_files_are_not_clean(tmp_path):
    assert scan_file(_write(tmp_path, "x.7z", b"7z\xbc\xaf\x27\x1c" + noise(100)), "x.7z").verdict == "error"
    truncated = HOSTILE_PICKLES["os.system"][:-5]
    assert scan_file(_write(tmp_path, "t.pkl", truncated), "t.pkl").verdict == "error"
    assert scan_file(_write(tmp_path, "broken.zip", b"PK\x03\x04" + noise(50)), "broken.zip").verdict == "error"


def _safetensors(header: dict, body: bytes, pad: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize("case", ["hole", "overlap", "trailing bytes", "wrong size", "huge header", "bad metadata",
                                  "duplicate key"])
def test_safetensors_header_rules(tmp_path, case):
    t = lambda b, e, shape=(2,): {"dtype": "F32", "shape": list(shape), "data_offsets": [b, e]}  # noqa: E731
    data = {
        "hole": _safetensors({"a": t(0, 8), "b": t(12, 20)}, bytes(20)),
        "overlap": _safetensors({"a": t(0, 8), "b": t(4, 12)}, bytes(12)),
        "trailing bytes": _safetensors({"a": t(0, 8)}, bytes(8) + b"polyglot"),
        "wrong size": _safetensors({"a": t(0, 12)}, bytes(12)),
        "huge header": struct.pack("<Q", 200_000_000) + b"{}",
        "bad metadata": _safetensors({"__metadata__": {"k": 1}, "a": t(0, 8)}, bytes(8)),
        "duplicate key": (lambda raw: struct.pack("<Q", len(raw)) + raw + bytes(8))(
            b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
            b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'),
    }[case]
    assert scan_file(_write(tmp_path, "m.safetensors", data), "m.safetensors").verdict == "unsafe"


def _onnx_with_external(location: str) -> bytes:
    entry = field(1, b"location") + field(2, location.encode())
    tensor = field(8, b"w") + field(13, entry)
    graph = field(5, tensor)
    return b"\x08\x08" + field(7, graph)



def test_numpy_object_arrays_and_escaping_onnx_external_data(tmp_path):
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert scan_file(tmp_path / "obj.npy", "obj.npy").verdict == "unsafe"
    np.save(tmp_path / "f.npy", np.zeros(3))
    assert scan_file(tmp_path / "f.npy", "f.npy").verdict == "clean"
    for location, expected in (("../../etc/passwd", "unsafe"), ("/etc/passwd", "unsafe"), ("weights.data", "clean")):
        path = _write(tmp_path, "m.onnx", _onnx_with_external(location))
        assert scan_file(path, "m.onnx").verdict == expected, location


def test_real_model_files_are_clean():
    real = {**{f"facenet/{k}": v for k, v in facenet_files().items()}, **silero_files(),
            "minilm/model.safetensors": minilm_files()["model.safetensors"]}
    verdicts = {name: scan_file(path, name) for name, path in real.items()}
    assert {n: v.findings for n, v in verdicts.items() if v.verdict != "clean"} == {}
    assert verdicts["src/silero_vad/data/silero_vad.jit"].format == "torchscript"
    assert verdicts["facenet/pnet.pt"].format == "pickle"


def test_quarantine_is_enforced_until_an_operator_allows_one_file(hub, run, root, tmp_path):
    evil = HOSTILE_PICKLES["os.system"]
    hub.create_repo("org/evil", {"config.json": b"{}", "pytorch_model.bin": evil})
    result = run("pull", "hf:org/evil")
    assert result.exit_code == 1
    assert "quarantined: hf:org/evil:pytorch_model.bin" in result.output and "posix.system" in result.output
    shown = run.json("scan")
    assert [q["path"] for q in shown["quarantined"]] == ["pytorch_model.bin"]
    sha = shown["quarantined"][0]["sha256"]
    with MirrorServer(root) as server:
        url = f"{server.url}/org/evil/resolve/main"
        assert requests.get(f"{url}/pytorch_model.bin").status_code == 403
        assert requests.get(f"{url}/config.json").status_code == 200
        exported = run.json("export", str(tmp_path / "bundle"), "--all")
        assert exported["quarantined"] == [f"hf:org/evil@{hub.repos['org/evil'].branches['main']}:pytorch_model.bin"]
        assert sha not in {p.name for p in (tmp_path / "bundle" / "blobs" / "sha256").iterdir()}
        out = run.json("materialize", "--layout", "dir", str(tmp_path / "plain"))
        assert out["quarantined"] == ["org/evil/pytorch_model.bin"]
        assert run("allow", sha).exit_code == 2  # a reason is required
        assert run("allow", sha, "--reason", "reviewed: test fixture").exit_code == 0
        assert requests.get(f"{url}/pytorch_model.bin").content == evil
        assert run("allow", sha, "--revoke").exit_code == 0
        assert requests.get(f"{url}/pytorch_model.bin").status_code == 403


def test_scan_rescans_when_the_rules_change(hub, run, monkeypatch):
    hub.create_repo("org/ok", {"config.json": b"{}", "w.safetensors": _safetensors({}, b"")})
    assert run("pull", "hf:org/ok").exit_code == 0
    assert run.json("scan")["scanned"] == 0  # nothing changed since admission
    import hubmirror.scanning.file_verdict as admission

    monkeypatch.setattr(admission, "SCANNER_VERSION", admission.SCANNER_VERSION + "-next")
    assert run.json("scan")["scanned"] == 2
    assert run.json("scan", "--force", "hf:org/ok")["scanned"] == 2


def _onnx_graph_first(location: str) -> bytes:
    """An ONNX model whose first field is its graph (protobuf fields come in any order): by its bytes alone it is
    nothing recognisable; read as ONNX, as a loader reads any file named *.onnx, it points outside the model."""
    entry = field(1, b"location") + field(2, location.encode())
    return field(7, field(5, field(8, b"w") + field(13, entry))) + b"\x08\x08"


def test_a_verdict_covers_every_name_its_bytes_are_catalogued_under(hub, run, root):
    """The verdict of a blob is not the verdict of whichever name judged it first: the same bytes listed as `zz.dat`
    and as `model.onnx` are judged as both, in one repo and across repos, and `scan --force` judges every name."""
    evil = _onnx_graph_first("../../../etc/passwd")
    assert scan_file(io.BytesIO(evil), "zz.dat").verdict == "clean"  # the rule depends on the name
    assert scan_file(io.BytesIO(evil), "model.onnx").verdict == "unsafe"
    hub.create_repo("org/twice", {"config.json": b"{}", "model.onnx": evil, "zz.dat": evil})
    result = run("pull", "hf:org/twice")
    assert result.exit_code == 1
    assert "quarantined: hf:org/twice:model.onnx" in result.output and "quarantined: hf:org/twice:zz.dat" in result.output
    later = _onnx_graph_first("/etc/shadow")  # across repos: stored first under a harmless name, clean as such
    hub.create_repo("org/harmless", {"zz.dat": later})
    assert run("pull", "hf:org/harmless").exit_code == 0
    hub.create_repo("org/renamed", {"model.onnx": later})
    result = run("pull", "hf:org/renamed")  # a new name for stored bytes is judged before it is catalogued
    assert result.exit_code == 1 and "quarantined: hf:org/renamed:model.onnx" in result.output
    with MirrorServer(root) as server:
        for repo in ("org/harmless/resolve/main/zz.dat", "org/renamed/resolve/main/model.onnx"):
            assert requests.get(f"{server.url}/{repo}").status_code == 403
    flagged = {(q["model_key"], q["path"]) for q in run.json("scan", "--force")["quarantined"]}
    assert flagged == {("hf:org/twice", "model.onnx"), ("hf:org/twice", "zz.dat"), ("hf:org/harmless", "zz.dat"),
                       ("hf:org/renamed", "model.onnx")}
