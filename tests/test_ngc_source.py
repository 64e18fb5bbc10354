"""`ngc:` sources against the NGC imitation (auth, API and storage hosts) with silero-vad's real ONNX files."""

import hashlib
import json

import pytest

from tests.fakes.model_files import silero_onnx_files
from tests.fakes.ngc import FakeNgc

KEY = "nvapi-secret-key-value"


@pytest.fixture
def ngc(monkeypatch):
    with FakeNgc(api_keys={KEY}) as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        for name in ("NGC_CLI_API_KEY", "NGC_API_KEY", "NGC_APP_KEY", "NGC_CLI_ORG"):
            monkeypatch.delenv(name, raising=False)
        fake.add_model("silero/vad/silero-vad", {"6.2.3": silero_onnx_files(), "5.1": {"README.md": b"old release notes"}},
                       description="Silero voice activity detector, ONNX exports.", application="Speech",
                       labels=["vad", "audio"])
        fake.add_model("acme/private-net", {"1.0": {"weights.bin": b"private weights"}}, public=False)
        yield fake


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_public_model_latest_version_every_sha256_checked(ngc, run):
    out = run.json("pull", "ngc:silero/vad/silero-vad")
    assert out[0]["commit"] == "6.2.3" and out[0]["files"] == len(silero_onnx_files())
    shown = run.json("show", "ngc:silero/vad/silero-vad")
    files = {f["path"]: f for f in shown["files"]}
    assert {p: f["sha256"] for p, f in files.items()} == {p: sha256(f) for p, f in silero_onnx_files().items()}
    assert all(json.loads(f["upstream_digests"]) == {"sha256": f["sha256"]} for f in files.values())
    assert shown["task"] == "Speech" and "vad" in shown["tags"]
    # the listing is paged (two files a page in the imitation) and no token was needed or sent
    assert len([r for r in ngc.requests if "/files?page-size" in r["path"]]) >= 3
    assert all(r["authorization"] is None for r in ngc.requests if r["host"] == "api")
    assert run.json("pull", "ngc:silero/vad/silero-vad:5.1")[0]["commit"] == "5.1"


def test_private_model_needs_the_key_exchanged_for_a_token(ngc, run, monkeypatch, root):
    result = run("pull", "ngc:acme/private-net")
    assert result.exit_code == 1 and "NGC_CLI_API_KEY" in result.output
    monkeypatch.setenv("NGC_API_KEY", "nvapi-wrong")
    result = run("pull", "ngc:acme/private-net")
    assert result.exit_code == 1 and "refused the API key" in result.output and "nvapi-wrong" not in result.output
    monkeypatch.setenv("NGC_API_KEY", KEY)
    assert run("pull", "ngc:acme/private-net:1.0").exit_code == 0
    assert [r for r in ngc.requests if r["host"] == "auth" and "scope=group%2Fngc%3Aacme" in r["path"]]
    assert ngc.storage_violations == []
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


def test_digest_mismatch_and_unknown_model(ngc, run):
    ngc.corrupt = {"silero_vad_half.onnx"}
    result = run("pull", "ngc:silero/vad/silero-vad")
    assert result.exit_code == 1 and "silero_vad_half.onnx" in result.output and "refused" in result.output
    assert run.json("list") == []
    result = run("pull", "ngc:silero/vad/nothing")
    assert result.exit_code == 1 and "not found on NGC" in result.output
    result = run("pull", "ngc:silero/vad/silero-vad:9.9")
    assert result.exit_code == 1 and "not found" in result.output
    for bad in ("ngc:justone", "ngc:a/b/c/d", "ngc:a/../b"):
        assert run("pull", bad).exit_code == 2


def test_malformed_published_digest_is_refused(ngc, run, monkeypatch):
    import tests.fakes.ngc as fake_module

    monkeypatch.setattr(fake_module, "_b64", lambda hex_digest: "not-base64!")
    result = run("pull", "ngc:silero/vad/silero-vad")
    assert result.exit_code == 1 and "malformed sha256_base64" in result.output


def test_index_uses_the_search_api(ngc, run):
    out = run.json("index", "ngc")
    assert out["models"] == 1  # the private model is not listed
    assert run.json("search", "voice activity", "--source", "ngc")[0]["key"] == "ngc:silero/vad/silero-vad"
