"""`kaggle:` sources against the Kaggle imitation, with the real facenet-pytorch MTCNN weights; kagglehub itself
downloads from the imitation to prove it faithful."""

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

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


def test_truncated_download_fails_cleanly_then_resumes(kag, kaggle):
    big = noise(5_000_000)
    kaggle.add_instance("me/big/pyTorch/v", {1: {"big.bin": big}})
    kaggle.truncate = {"big.bin"}
    result = kag("pull", "kaggle:me/big/pyTorch/v")
    assert result.exit_code == 1 and "broke off" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert kag.json("list") == []
    kaggle.truncate = set()
    assert kag("pull", "kaggle:me/big/pyTorch/v").exit_code == 0
    resumed = [r["range"] for r in kaggle.requests if "big.bin" in r["path"] and r.get("range")]
    assert resumed and int(resumed[0].split("=")[1].rstrip("-")) >= 1_000_000
    assert kag.json("show", "kaggle:me/big/pyTorch/v")["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()


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
        fake.corrupt = {"pnet.pt"}
        env["KAGGLEHUB_CACHE"] = str(tmp_path / "cache2")
        done = subprocess.run([sys.executable, "-c", code, HANDLE], capture_output=True, text=True, env=env, timeout=120,
                              errors="replace")
        assert done.returncode != 0 and "DataCorruptionError" in done.stderr
