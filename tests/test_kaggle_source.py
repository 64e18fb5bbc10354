"""`kaggle:` sources against the Kaggle imitation, with the real facenet-pytorch MTCNN weights; kagglehub itself
downloads from the imitation to prove it faithful."""

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import noise
from tests.fakes.kaggle import FakeKaggle
from tests.fakes.model_files import facenet_files

HANDLE = "timesler/facenet-pytorch/pyTorch/mtcnn"
TOKEN = "kaggle_secret_token"


@pytest.fixture
def kaggle():
    with FakeKaggle(tokens={TOKEN}, keys={"alice": "alice-key"}) as fake:
        fake.add_instance(HANDLE, {1: {"pnet.pt": b"old weights"}, 2: facenet_files()},
                          overview="MTCNN face detection networks (P-Net, R-Net, O-Net).\n\nMore text.")
        yield fake


@pytest.fixture
def kag(run, kaggle, monkeypatch):
    """The CLI, pointed at the imitation's API base."""
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(run.root.parent / "kaggle-config"))

    def call(*args, **kw):
        return run(*args, "--endpoint", f"{kaggle.api.url}/api", **kw) if args[0] in ("pull", "index") else run(*args, **kw)

    call.json = lambda *args, **kw: json.loads(call(*args, "--json", **kw).stdout)
    return call


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_latest_version_checks_md5_and_sha256(kag, kaggle):
    out = kag.json("pull", f"kaggle:{HANDLE}")
    assert out[0]["commit"] == "2" and out[0]["requested"] == "latest"
    shown = kag.json("show", f"kaggle:{HANDLE}")
    files = {f["path"]: f for f in shown["files"]}
    assert {p: f["sha256"] for p, f in files.items()} == {p: sha256(f) for p, f in facenet_files().items()}
    pnet = facenet_files()["pnet.pt"].read_bytes()
    assert json.loads(files["pnet.pt"]["upstream_digests"]) == {"md5": hashlib.md5(pnet).hexdigest()}
    assert shown["description"] == "MTCNN face detection networks (P-Net, R-Net, O-Net)."
    assert shown["library"] == "pyTorch" and shown["license"] == "Apache 2.0"
    assert kaggle.storage_violations == []
    assert kag.json("pull", f"kaggle:{HANDLE}/1")[0]["commit"] == "1"
    assert {r["name"]: r["commit_id"] for r in kag.json("show", f"kaggle:{HANDLE}")["refs"]} == {"latest": "2", "1": "1"}


def test_credentials_are_used_never_printed(kag, kaggle, monkeypatch, tmp_path, root):
    kaggle.add_instance("me/private/keras/v1", {1: {"w.h5": b"secret weights"}}, private=True)
    result = kag("pull", "kaggle:me/private/keras/v1")
    assert result.exit_code == 1 and "KAGGLE_API_TOKEN" in result.output
    monkeypatch.setenv("KAGGLE_API_TOKEN", "wrong-token-value")
    result = kag("pull", "kaggle:me/private/keras/v1")
    assert result.exit_code == 1 and "refused the credentials" in result.output
    assert "wrong-token-value" not in result.output
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(token_file))  # a path to the token, as kagglesdk accepts
    assert kag("pull", "kaggle:me/private/keras/v1").exit_code == 0
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    config = tmp_path / "kaggle-config"
    config.mkdir(exist_ok=True)
    (config / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "alice-key"}))
    kag("rm", "kaggle:me/private/keras/v1")
    assert kag("pull", "kaggle:me/private/keras/v1").exit_code == 0
    assert all(r["authorization"] is None for r in kaggle.requests if "kaggle-models-data" in r["path"])
    for path in root.rglob("*"):
        if path.is_file():
            assert b"alice-key" not in path.read_bytes() and TOKEN.encode() not in path.read_bytes()


def test_corrupt_bytes_are_refused_by_md5_or_crc32c(kag, kaggle):
    kaggle.corrupt = {"onet.pt"}
    result = kag("pull", f"kaggle:{HANDLE}")
    assert result.exit_code == 1 and "md5" in result.output and "refused" in result.output
    kaggle.no_md5 = True  # a composite object: crc32c only
    result = kag("pull", f"kaggle:{HANDLE}")
    assert result.exit_code == 1 and "crc32c" in result.output
    assert kag.json("list") == []


def test_truncated_download_fails_cleanly_then_resumes(kag, kaggle, monkeypatch):
    big = noise(5_000_000)
    kaggle.add_instance("me/big/pyTorch/v", {1: {"big.bin": big}})
    kaggle.truncate = {"big.bin"}
    monkeypatch.setenv("HUBMIRROR_RETRIES", "0")  # no resume within this pull: it fails, the bytes are kept
    result = kag("pull", "kaggle:me/big/pyTorch/v")
    assert result.exit_code == 1 and "broke off" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert kag.json("list") == []
    monkeypatch.delenv("HUBMIRROR_RETRIES")
    start = len(kaggle.requests)
    assert kag("pull", "kaggle:me/big/pyTorch/v").exit_code == 0
    # kagglehub's resume: the download call (kagglesdk follows the 302 and reads from 0), then a ranged GET of the
    # signed URL it was redirected to
    tail = [(r["host"], r["method"], r["path"].split("?")[0].rsplit("/", 1)[-1], r.get("range"))
            for r in kaggle.requests[start:] if "big.bin" in r["path"] or b"big.bin" in r.get("body", b"")]
    assert tail[0][:3] == ("api", "POST", "DownloadModelInstanceVersion")
    assert tail[1] == ("storage", "GET", "big.bin", None)
    assert tail[2][:3] == ("storage", "GET", "big.bin") and int(tail[2][3].split("=")[1].rstrip("-")) >= 1_000_000
    assert kag.json("show", "kaggle:me/big/pyTorch/v")["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()


def test_a_truncated_download_resumes_within_the_pull(kag, kaggle):
    big = noise(3_000_000)
    kaggle.add_instance("me/big/pyTorch/v", {1: {"big.bin": big}})
    kaggle.truncate = {"big.bin"}
    assert kag("pull", "kaggle:me/big/pyTorch/v").exit_code == 0
    ranges = [r["range"] for r in kaggle.requests if r["host"] == "storage" and r["range"]]
    assert len(ranges) == 1 and int(ranges[0].split("=")[1].rstrip("-")) >= 1_000_000
    assert kag.json("show", "kaggle:me/big/pyTorch/v")["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()


def test_busy_api_answers_are_retried(kag, kaggle):
    kaggle.api_faults = [503, 429]  # GetModelInstance twice: kagglesdk's calls only read, so they are tried again
    assert kag("pull", f"kaggle:{HANDLE}").exit_code == 0
    assert [r["path"].rsplit("/", 1)[-1] for r in kaggle.requests if r["host"] == "api"][:3] == \
        ["GetModelInstance"] * 3


def _api_calls(kaggle, since=0):
    """(method name, JSON body) of every API call the imitation received."""
    return [(r["path"].rsplit("/", 1)[-1], json.loads(r["body"]))
            for r in kaggle.requests[since:] if r["host"] == "api"]


def test_a_pull_sends_exactly_kagglesdk_requests(kag, kaggle, monkeypatch):
    """The documented list (plugins/kaggle.py): GetModelInstance, ListModelInstanceVersionFiles (pageSize 25),
    one DownloadModelInstanceVersion per file, and a GET of each signed URL; bodies as kagglesdk serialises them."""
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    assert kag("pull", f"kaggle:{HANDLE}").exit_code == 0
    instance = {"ownerSlug": "timesler", "modelSlug": "facenet-pytorch", "framework": "MODEL_FRAMEWORK_PY_TORCH",
                "instanceSlug": "mtcnn"}
    calls = _api_calls(kaggle)
    assert calls[:2] == [("GetModelInstance", instance),
                         ("ListModelInstanceVersionFiles", {**instance, "versionNumber": 2, "pageSize": 25})]
    assert sorted(calls[2:], key=lambda c: c[1]["path"]) == [
        ("DownloadModelInstanceVersion", {**instance, "versionNumber": 2, "path": name})
        for name in sorted(facenet_files())]
    api = [r for r in kaggle.requests if r["host"] == "api"]
    assert all(r["method"] == "POST" and r["path"].startswith("/api/v1/models.ModelApiService/") for r in api)
    assert all(r["content_type"] == "application/json" and r["authorization"] == f"Bearer {TOKEN}" for r in api)
    assert all(r["user_agent"].startswith("hubmirror/") and " kagglesdk/" in r["user_agent"] for r in api)
    storage = [r for r in kaggle.requests if r["host"] == "storage"]
    assert sorted(r["path"].split("?")[0].rsplit("/", 1)[-1] for r in storage) == sorted(facenet_files())
    assert all(r["method"] == "GET" and r["range"] is None and r["authorization"] is None for r in storage)
    assert kaggle.refused == []
    start = len(kaggle.requests)
    assert kag("index", "kaggle", "--query", "facenet").exit_code == 0
    assert _api_calls(kaggle, start) == [("ListModels", {"search": "facenet", "pageSize": 50})]


def _post(kaggle, method, body, content_type="application/json", http_method="POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.request(http_method, f"{kaggle.api.url}/api/v1/models.ModelApiService/{method}", data=data,
                            headers={"Content-Type": content_type, "User-Agent": "test"}, timeout=10)


def test_the_imitation_refuses_what_kagglesdk_never_sends(kaggle):
    instance = {"ownerSlug": "timesler", "modelSlug": "facenet-pytorch", "framework": "MODEL_FRAMEWORK_PY_TORCH",
                "instanceSlug": "mtcnn"}
    assert _post(kaggle, "GetModelInstance", instance).status_code == 200  # what kagglesdk sends
    refused = [
        _post(kaggle, "GetModelInstance", instance, http_method="GET"),  # kagglesdk POSTs every call
        _post(kaggle, "GetModelInstance", instance, content_type="application/x-www-form-urlencoded"),
        _post(kaggle, "GetModelInstance", b"ownerSlug=timesler", content_type="application/json"),  # not JSON
        _post(kaggle, "GetModelInstance", {**instance, "owner_slug": "timesler"}),  # snake_case: not a field
        _post(kaggle, "GetModelInstance", {**instance, "versionNumber": 2}),  # not a field of this request
        _post(kaggle, "GetModelInstance", {**instance, "framework": "pyTorch"}),  # enums go by their name
        _post(kaggle, "ListModelInstanceVersionFiles", {**instance, "versionNumber": "2", "pageSize": 25}),
        _post(kaggle, "DownloadModelInstanceVersion", {**instance, "versionNumber": 0}),  # a default: left out
        _post(kaggle, "ListModels", {"pageSize": 50, "sortBy": "NEWEST"}),  # not a ListModelsOrderBy name
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert all(r.json()["code"] == 400 for r in refused)
    assert len(kaggle.refused) == len(refused)
    # an optional field at an explicit empty value is something kagglesdk does send (its default is None)
    assert _post(kaggle, "ListModels", {"search": "", "pageSize": 50, "pageToken": ""}).status_code == 200


def test_unknown_and_malformed_handles(kag):
    result = kag("pull", "kaggle:nobody/nothing/pyTorch/x")
    assert result.exit_code == 1 and "not found on Kaggle" in result.output
    for bad in ("kaggle:a/b/c", "kaggle:a/b/notaframework/v", "kaggle:a/b/pyTorch/v/x", "kaggle:../b/pyTorch/v"):
        assert kag("pull", bad).exit_code == 2, bad


def test_index_lists_instances(kag, kaggle):
    kaggle.add_instance("google/gemma/keras/gemma_2b_en", {3: {"config.json": b"{}"}}, overview="Gemma 2B.")
    out = kag.json("index", "kaggle")
    assert out["models"] == 2
    hits = kag.json("search", "gemma", "--source", "kaggle")
    assert [h["key"] for h in hits] == ["kaggle:google/gemma/keras/gemma_2b_en"]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_kagglehub_downloads_from_the_imitation(tmp_path):
    """kagglehub (its TEST environment is http://localhost:7777) gets the same files, md5 checked."""
    pytest.importorskip("kagglehub")
    if not _port_free(7777):
        pytest.skip("port 7777 is taken")
    with FakeKaggle(port=7777) as fake:
        fake.add_instance(HANDLE, {2: facenet_files()})
        code = "import kagglehub, sys; print(kagglehub.model_download(sys.argv[1]))"
        env = {**os.environ, "KAGGLE_API_ENVIRONMENT": "TEST", "KAGGLEHUB_CACHE": str(tmp_path / "cache"),
               "KAGGLE_CONFIG_DIR": str(tmp_path / "none"), "DISABLE_KAGGLE_CACHE": "true"}
        for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
            env.pop(name, None)
        done = subprocess.run([sys.executable, "-c", code, HANDLE], capture_output=True, text=True, env=env, timeout=120,
                              errors="replace")
        assert done.returncode == 0, done.stderr[-2000:]
        folder = done.stdout.strip().splitlines()[-1]
        assert folder.endswith("models/timesler/facenet-pytorch/pyTorch/mtcnn/2")
        got = {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
               for name in os.listdir(folder)}
        assert got == {p: sha256(f) for p, f in facenet_files().items()}
        assert fake.refused == []  # kagglehub's own requests pass the imitation's protocol checks
        fake.corrupt = {"pnet.pt"}
        env["KAGGLEHUB_CACHE"] = str(tmp_path / "cache2")
        done = subprocess.run([sys.executable, "-c", code, HANDLE], capture_output=True, text=True, env=env, timeout=120,
                              errors="replace")
        assert done.returncode != 0 and "DataCorruptionError" in done.stderr
