"""Formats the admission scan does not inspect (HDF5, GGUF, TensorFlow files) are `unscanned`, never `clean`; the
mirror's `[admission] unscanned` policy quarantines them (the default) or admits them, and every place that shows
verdicts shows it. Cheap inspections that are done: Lambda layers in a .keras archive, external data anywhere in an
ONNX model, object arrays inside a .npz."""

import io
import json
import pickle
import struct
import zipfile

import pytest

from hubmirror.mirror import Mirror
from hubmirror.scanning import scan_file
from tests.conftest import noise
from tests.fakes.protobuf_bytes import field

HDF5 = b"\x89HDF\r\n\x1a\n" + noise(2000)
GGUF = b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + noise(2000)




# A SavedModel's protobuf: saved_model_schema_version = 1 (byte 0x08, like ONNX's ir_version), then a MetaGraphDef
# whose GraphDef holds a ReadFile node. It has no ONNX graph (field 7), so it is not an ONNX model.
SAVED_MODEL = b"\x08\x01" + field(2, field(2, field(1, field(1, b"read") + field(2, b"ReadFile"))))


def _keras(config: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", HDF5)
    return buf.getvalue()


SEQUENTIAL = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": [
    {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 2}}]}}
WITH_LAMBDA = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": [
    {"module": "keras.layers", "class_name": "Lambda",
     "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}}}]}}


def _write(tmp_path, name, data):
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(data)
    return path


UNSCANNED = {  # name: (content, the format it is reported as)
    "model.weights.h5": (HDF5, "hdf5"),
    "model.h5": (pickle.dumps([1, 2]).ljust(512, b"\0") + HDF5, "pickle"),  # HDF5 behind a 512-byte user block
    "model.gguf": (GGUF, "gguf"),
    "saved_model.pb": (SAVED_MODEL, "protobuf"),
    "graph.bin": (SAVED_MODEL, "protobuf"),  # by content, whatever the name
    "variables/variables.index": (b"\0\x01tensor bundle", "tensorflow"),
    "variables/variables.data-00000-of-00001": (noise(100), "tensorflow"),
    "model.keras": (_keras(SEQUENTIAL), "keras"),
}


@pytest.mark.parametrize("name", list(UNSCANNED))
def test_formats_that_are_not_inspected_are_unscanned_not_clean(tmp_path, name):
    data, form = UNSCANNED[name]
    verdict = scan_file(_write(tmp_path, name, data), name)
    assert (verdict.verdict, verdict.format) == ("unscanned", form), verdict.findings


def test_inspected_formats_keep_their_verdicts(tmp_path):
    assert scan_file(_write(tmp_path, "m.keras", _keras(WITH_LAMBDA)), "m.keras").verdict == "unsafe"
    np = pytest.importorskip("numpy")
    np.savez(tmp_path / "objects.npz", a=np.array([{"a": 1}], dtype=object))
    assert scan_file(tmp_path / "objects.npz", "objects.npz").verdict == "unsafe"
    np.savez(tmp_path / "floats.npz", a=np.zeros(3))
    assert scan_file(tmp_path / "floats.npz", "floats.npz").verdict == "clean"


def _onnx(graph: bytes) -> bytes:
    return b"\x08\x08" + field(7, graph)


def _tensor(location: str) -> bytes:
    return field(1, b"w") + field(13, field(1, b"location") + field(2, location.encode()))


@pytest.mark.parametrize("where", ["node attribute", "subgraph", "sparse initializer"])
def test_onnx_external_data_is_found_wherever_a_tensor_can_be(tmp_path, where):
    def node(op: bytes, attribute_field: int, payload: bytes) -> bytes:  # NodeProto.op_type, .attribute
        return field(1, field(4, op) + field(5, field(1, b"attr") + field(attribute_field, payload)))

    graph = {
        "node attribute": lambda t: node(b"Constant", 5, t),  # AttributeProto.t
        "subgraph": lambda t: node(b"If", 6, field(5, t)),  # AttributeProto.g, whose initializer
        "sparse initializer": lambda t: field(15, field(1, t)),  # GraphProto.sparse_initializer.values
    }[where]
    for location, expected in (("../../etc/passwd", "unsafe"), ("m.onnx.data", "clean")):
        path = _write(tmp_path, "m.onnx", _onnx(graph(_tensor(location))))
        assert scan_file(path, "m.onnx").verdict == expected, location


def _admit(root, policy="admit"):
    (root / "config.toml").write_text(f'[admission]\nunscanned = "{policy}"\n')


def test_unscanned_files_are_quarantined_by_default(hub, run, root):
    hub.create_repo("org/llm", {"config.json": b"{}", "model.gguf": GGUF})
    result = run("pull", "hf:org/llm")
    assert result.exit_code == 1
    assert "quarantined: hf:org/llm:model.gguf (unscanned: GGUF is not inspected" in result.output
    assert 'unscanned = "admit"' in result.output
    scanned = run.json("scan")
    assert [q["path"] for q in scanned["quarantined"]] == ["model.gguf"]
    assert [(q["path"], q["quarantined"]) for q in scanned["unscanned"]] == [("model.gguf", True)]
    files = {f["path"]: (f["verdict"], f["quarantined"]) for f in run.json("show", "hf:org/llm")["files"]}
    assert files == {"config.json": ("clean", False), "model.gguf": ("unscanned", True)}
    assert "unscanned (quarantined)" in run("show", "hf:org/llm").output


def test_the_policy_can_admit_unscanned_files_and_they_are_still_shown(hub, run, root):
    hub.create_repo("org/keras", {"config.json": b"{}", "model.weights.h5": HDF5})
    assert run("pull", "hf:org/keras").exit_code == 1
    _admit(root)  # the policy applies at once, to files already judged: no re-scan
    mirror = Mirror.open(root)
    try:
        sha = mirror.catalog.file_verdicts("hf:org/keras", mirror.catalog.commit_for("hf:org/keras", None))
        assert not mirror.catalog.is_quarantined(sha["model.weights.h5"]["sha256"])
    finally:
        mirror.close()
    scanned = run.json("scan")
    assert scanned["quarantined"] == []
    assert [(q["path"], q["quarantined"]) for q in scanned["unscanned"]] == [("model.weights.h5", False)]
    assert "admitted: hf:org/keras@" in run("scan").output
    hub.create_repo("org/keras2", {"model.weights.h5": HDF5 + b"2"})
    result = run("pull", "hf:org/keras2")
    assert result.exit_code == 0
    assert ('warning: unscanned, admitted because config.toml has [admission] unscanned = "admit": '
            "hf:org/keras2:model.weights.h5 (HDF5") in result.output
    assert run.json("pull", "hf:org/keras2")[0]["unscanned"] == ["model.weights.h5"]
    shown = run("show", "hf:org/keras2").output
    assert "unscanned (admitted)" in shown and "VERDICT" in shown
    _admit(root, "quarantine")
    assert [q["path"] for q in run.json("scan")["quarantined"]] == ["model.weights.h5", "model.weights.h5"]


def test_a_bad_policy_is_a_usage_error(hub, run, root):
    hub.create_repo("org/m", {"config.json": b"{}"})
    assert run("pull", "hf:org/m").exit_code == 0
    _admit(root, "yes")
    result = run("scan")
    assert result.exit_code == 2 and "[admission] unscanned must be one of" in result.output
