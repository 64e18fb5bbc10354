"""`tfhub:` (Kaggle mapping, or the compressed-tarball protocol) and `keras:` presets (through Kaggle or HF)."""

import hashlib
import io
import json
import tarfile

import pytest
import requests

from tests.conftest import noise
from tests.fakes.kaggle import FakeKaggle
from tests.fakes.model_files import facenet_files, silero_onnx_files
from tests.fakes.tfhub import FakeTfHub, tarball

USE_KAGGLE = "google/universal-sentence-encoder/tensorFlow2/universal-sentence-encoder"


@pytest.fixture(autouse=True)
def admit_unscanned(root):
    """TF Hub models are SavedModels, which the admission scan does not inspect: this mirror's policy admits them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text('[admission]\nunscanned = "admit"\n')


@pytest.fixture
def kaggle(monkeypatch):
    with FakeKaggle() as fake:
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "PROD")
        for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
            monkeypatch.delenv(name, raising=False)
        yield fake


@pytest.fixture
def via_kaggle(run, kaggle, monkeypatch):
    """The CLI with the Kaggle source pointed at the imitation (KAGGLE_API_ENVIRONMENT cannot take a URL)."""
    monkeypatch.setenv("HUBMIRROR_KAGGLE_ENDPOINT", f"{kaggle.api.url}/api")
    return run


@pytest.fixture
def tfhub():
    with FakeTfHub() as fake:
        yield fake


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tfhub_handle_goes_through_its_kaggle_mapping(via_kaggle, kaggle):
    kaggle.add_instance(USE_KAGGLE, {2: {"saved_model.pb": b"graph", "variables/variables.index": b"index"}},
                        overview="Universal Sentence Encoder.")
    out = via_kaggle.json("pull", "tfhub:https://tfhub.dev/google/universal-sentence-encoder/4")
    assert out[0]["model"] == "tfhub:google/universal-sentence-encoder/4" and out[0]["files"] == 2
    shown = via_kaggle.json("show", "tfhub:google/universal-sentence-encoder/4")
    assert shown["metadata"]["kaggle_handle"] == f"{USE_KAGGLE}/2"
    assert {f["path"] for f in shown["files"]} == {"saved_model.pb", "variables/variables.index"}
    assert all('"md5"' in f["upstream_digests"] for f in shown["files"])


def test_unknown_tfhub_handle_says_how_to_extend_the_mapping(via_kaggle, kaggle, tmp_path, monkeypatch):
    result = via_kaggle("pull", "tfhub:google/spice/2")
    assert result.exit_code == 1 and "HUBMIRROR_TFHUB_MAP" in result.output
    extra = tmp_path / "more.json"
    extra.write_text(json.dumps({"mappings": {"google/spice/2": {"kaggle": "google/spice/tensorFlow2/spice/2"}}}))
    monkeypatch.setenv("HUBMIRROR_TFHUB_MAP", str(extra))
    kaggle.add_instance("google/spice/tensorFlow2/spice", {2: {"saved_model.pb": b"spice"}})
    assert via_kaggle("pull", "tfhub:google/spice/2").exit_code == 0


def test_compressed_protocol_unpacks_the_tarball_into_files(run, tfhub):
    files = {"saved_model.pb": b"a graph", **{f"assets/{k}": v for k, v in silero_onnx_files().items()}}
    tfhub.add_module("silero/vad/1", files)
    out = run.json("pull", "tfhub:silero/vad/1", "--endpoint", tfhub.url)
    assert out[0]["commit"] == sha256(tfhub.modules["silero/vad/1"])  # pinned by the tarball's sha256
    shown = run.json("show", "tfhub:silero/vad/1")
    got = {f["path"]: f["sha256"] for f in shown["files"]}
    assert got == {k: sha256(v if isinstance(v, bytes) else v.read_bytes()) for k, v in files.items()}
    assert shown["metadata"]["verified_by"] == "tofu"
    assert any("tf-hub-format=compressed" in r for r in tfhub.requests)
    assert run.json("pull", f"tfhub:{tfhub.url}/silero/vad/1")[0]["files"] == len(files)  # a URL works the same


def _evil_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"ok!"))
        evil = tarfile.TarInfo({"dotdot": "../escape.txt", "absolute": "/tmp/escape.txt",
                                "symlink": "link", "hardlink": "hard", "device": "dev"}[kind])
        if kind == "symlink":
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            evil.type, evil.linkname = tarfile.LNKTYPE, "saved_model.pb"
        elif kind == "device":
            evil.type = tarfile.CHRTYPE
        else:
            evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil") if evil.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unsafe_tarball_members_are_refused(run, tfhub, tmp_path, root, kind):
    tfhub.modules["evil/module/1"] = _evil_tar(kind)
    before = set(tmp_path.rglob("*"))
    result = run("pull", "tfhub:evil/module/1", "--endpoint", tfhub.url)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert run.json("list") == []
    created = set(tmp_path.rglob("*")) - before
    assert all(p == root or root in p.parents for p in created), created


def test_truncated_tarball_is_refused(run, tfhub):
    whole = tarball({"saved_model.pb": noise(50_000)})
    tfhub.modules["cut/module/1"] = whole[: len(whole) // 2]
    result = run("pull", "tfhub:cut/module/1", "--endpoint", tfhub.url)
    assert result.exit_code == 1 and "unreadable" in result.output


def test_keras_preset_resolves_to_its_kaggle_handle(via_kaggle, kaggle):
    weights = facenet_files()["onet.pt"].read_bytes()  # real bytes standing in for the preset's weights file
    files = {"config.json": b'{"module": "keras_hub.src.models.bert.bert_backbone"}', "model.weights.h5": weights,
             "tokenizer.json": b"{}", "metadata.json": b'{"keras_version": "3.8.0"}'}
    kaggle.add_instance("keras/bert/keras/bert_tiny_en_uncased", {3: files})
    out = via_kaggle.json("pull", "keras:bert_tiny_en_uncased")
    assert out[0]["model"] == "keras:bert_tiny_en_uncased" and out[0]["files"] == 4
    shown = via_kaggle.json("show", "keras:bert_tiny_en_uncased")
    assert shown["metadata"]["handle"] == "kaggle://keras/bert/keras/bert_tiny_en_uncased/3"
    assert shown["metadata"]["params"] == 4385920 and shown["architecture"] == "bert"
    assert {f["path"]: f["sha256"] for f in shown["files"]}["model.weights.h5"] == sha256(weights)
    result = via_kaggle("pull", "keras:bert_tiny_en_uncasd")
    assert result.exit_code == 1 and "did you mean bert_tiny_en_uncased" in result.output


def test_keras_hf_handle_goes_through_the_hf_source(hub, run):
    hub.create_repo("keras/some-preset", {"config.json": b"{}", "metadata.json": b"{}"})
    out = run.json("pull", "keras:hf://keras/some-preset")
    assert out[0]["commit"] == f"hf-{hub.repos['keras/some-preset'].branches['main']}"


def test_index_tfhub_lists_the_mapped_handles(run):
    assert run.json("index", "tfhub")["models"] >= 2
    hits = run.json("search", "universal sentence encoder", "--source", "tfhub")
    assert hits[0]["key"] == "tfhub:google/universal-sentence-encoder/4"


def test_index_keras_is_offline_and_complete(run):
    out = run.json("index", "keras")
    assert out["models"] > 400
    hits = [hit["key"] for hit in run.json("search", "bert tiny", "--source", "keras")]
    # the presets carry no download counts: every one with both words in its name ranks first, newest catalogued first
    assert "keras:bert_tiny_en_uncased" in hits[:5] and all("bert_tiny" in key for key in hits[:2])


def test_compressed_protocol_sends_exactly_tensorflow_hubs_request(run, tfhub):
    tfhub.add_module("silero/vad/1", {"saved_model.pb": b"a graph"})
    assert run("pull", "tfhub:silero/vad/1", "--endpoint", tfhub.url).exit_code == 0
    assert tfhub.requests == ["/silero/vad/1?tf-hub-format=compressed", "/storage/silero/vad/1.tar.gz"]
    # a handle's own query is kept, the format appended after it (tensorflow_hub's _append_format_query)
    assert run("pull", f"tfhub:{tfhub.url}/silero/vad/1?variant=a+b").exit_code == 0
    assert tfhub.requests[2] == "/silero/vad/1?variant=a+b&tf-hub-format=compressed"
    assert tfhub.refused == []


def test_the_tfhub_imitation_refuses_what_tensorflow_hub_never_sends(tfhub):
    tfhub.add_module("silero/vad/1", {"saved_model.pb": b"a graph"})
    handle = f"{tfhub.url}/silero/vad/1"
    assert requests.get(f"{handle}?tf-hub-format=compressed", timeout=10, allow_redirects=False).status_code == 302
    refused = [requests.get(handle, timeout=10),
               requests.get(f"{handle}?tf-hub-format=compressed&tf-hub-format=compressed", timeout=10),
               requests.get(f"{handle}?tf-hub-format=zip", timeout=10),
               requests.post(f"{handle}?tf-hub-format=compressed", timeout=10)]
    assert [r.status_code for r in refused] == [400] * 4 and len(tfhub.refused) == 4


def test_a_keras_preset_pull_sends_only_kagglesdk_requests(via_kaggle, kaggle):
    files = {"config.json": b"{}", "model.weights.h5": b"weights", "metadata.json": b"{}"}
    kaggle.add_instance("keras/bert/keras/bert_tiny_en_uncased", {3: files})
    assert via_kaggle("pull", "keras:bert_tiny_en_uncased").exit_code == 0
    calls = [(r["path"].rsplit("/", 1)[-1], json.loads(r["body"])) for r in kaggle.requests if r["host"] == "api"]
    instance = {"ownerSlug": "keras", "modelSlug": "bert", "framework": "MODEL_FRAMEWORK_KERAS",
                "instanceSlug": "bert_tiny_en_uncased"}
    assert calls[:2] == [("GetModelInstance", instance),
                         ("ListModelInstanceVersionFiles", {**instance, "versionNumber": 3, "pageSize": 25})]
    assert sorted(c[1]["path"] for c in calls[2:]) == sorted(files)
    assert {c[0] for c in calls[2:]} == {"DownloadModelInstanceVersion"} and kaggle.refused == []
