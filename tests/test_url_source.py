"""`url:` sources against the GitHub imitation: hash-prefix names, release digests, redirects, user digests."""

import hashlib

import pytest

from tests.conftest import noise
from tests.fakes.model_files import silero_files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def weights():
    return silero_files()["src/silero_vad/data/silero_vad.jit"].read_bytes()


def test_hash_prefixed_name_is_checked(github, run, weights):
    url = github.add_file(f"silero_vad-{sha256(weights)[:8]}.jit", weights)
    result = run.json("pull", f"url:{url}")
    assert result[0]["commit"] == sha256(weights)
    shown = run.json("show", f"url:{url}")
    assert shown["files"][0]["sha256"] == sha256(weights)
    assert '"sha256-prefix"' in shown["files"][0]["upstream_digests"]
    assert shown["metadata"]["verified_by"] == "sha256-prefix"


def test_a_hash_prefix_that_disagrees_is_refused(github, run, root, weights):
    url = github.add_file("silero_vad-deadbeef.jit", weights)
    result = run("pull", f"url:{url}")
    assert result.exit_code == 1
    assert "does not start with the deadbeef" in result.output
    assert run.json("list") == []
    assert not (root / "blobs" / "sha256" / sha256(weights)).exists()


def test_release_asset_digest_from_the_api_and_no_token_to_storage(github, run, monkeypatch, weights):
    github.create_repo("snakers4/silero-vad", {"README.md": b"# silero"})
    github.add_release("snakers4/silero-vad", "v6.2", {"silero_vad.jit": weights})
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    url = github.release_url("snakers4/silero-vad", "v6.2", "silero_vad.jit")
    assert run("pull", f"url:{url}").exit_code == 0
    shown = run.json("show", f"url:{url}")
    assert shown["metadata"]["verified_by"] == "sha256" and shown["files"][0]["size"] == len(weights)
    assert github.storage_violations == []
    api_calls = [r for r in github.requests if r["host"] == "api"]
    assert api_calls and all(r["authorization"] == "Bearer ghp_secret" for r in api_calls)
    github.add_release("snakers4/silero-vad", "v6.2", {"silero_vad.jit": weights, "other.onnx": b"onnx bytes"})
    github.corrupt = {"other.onnx"}
    result = run("pull", f"url:{github.release_url('snakers4/silero-vad', 'v6.2', 'other.onnx')}")
    assert result.exit_code == 1 and "refused" in result.output


def test_user_given_sha256_and_trust_on_first_use(github, run, weights):
    url = github.add_file("vad.jit", weights)
    bad = "0" * 64
    result = run("pull", f"url:{url}#sha256={bad}")
    assert result.exit_code == 1 and "refused" in result.output
    assert run("pull", f"url:{url}#sha256={sha256(weights)}").exit_code == 0
    tofu_url = github.add_file("other.bin", noise(1000))
    out = run.json("pull", f"url:{tofu_url}")
    assert len(out[0]["commit"]) == 64
    assert run.json("show", f"url:{tofu_url}")["metadata"]["verified_by"] == "tofu"


def test_redirect_loop_and_missing_asset_are_clear_errors(github, run):
    github.create_repo("o/r", {"a": b"a"})
    github.add_release("o/r", "v1", {"a.bin": b"a"})
    result = run("pull", f"url:{github.release_url('o/r', 'v1', 'loop.bin')}")
    assert result.exit_code == 1 and "no asset loop.bin" in result.output
    github.add_release("o/r", "v1", {"loop.bin": b"x"})
    result = run("pull", f"url:{github.release_url('o/r', 'v1', 'loop.bin')}")
    assert result.exit_code == 1 and "redirect loop" in result.output
    for bad in ("url:ftp://x/y.bin", "url:https://host/", "url:https://h/f.bin#md5=abc"):
        assert run("pull", bad).exit_code == 2


def test_torch_hub_loads_the_same_url_with_its_own_hash_check(github, tmp_path, weights):
    torch = pytest.importorskip("torch")
    url = github.add_file(f"silero_vad-{sha256(weights)[:8]}.jit", weights)
    torch.hub.download_url_to_file(url, str(tmp_path / "ok.jit"), hash_prefix=sha256(weights)[:8], progress=False)
    assert (tmp_path / "ok.jit").read_bytes() == weights
    github.corrupt = {f"silero_vad-{sha256(weights)[:8]}.jit"}
    with pytest.raises(RuntimeError, match="invalid hash value"):
        torch.hub.download_url_to_file(url, str(tmp_path / "bad.jit"), hash_prefix=sha256(weights)[:8], progress=False)


def test_a_release_asset_pull_sends_exactly_the_documented_requests(github, run, monkeypatch, weights):
    """plugins/urls.py's list: GitHub REST "Get a release by tag name" (the digest), then the download URL that
    torch.hub would GET, redirected to storage; the token only to the API."""
    github.create_repo("snakers4/silero-vad", {"README.md": b"# silero"})
    github.add_release("snakers4/silero-vad", "v6.2", {"silero_vad.jit": weights})
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    assert run("pull", f"url:{github.release_url('snakers4/silero-vad', 'v6.2', 'silero_vad.jit')}").exit_code == 0
    assert [(r["host"], r["method"], r["path"].split("?")[0]) for r in github.requests] == [
        ("api", "GET", "/repos/snakers4/silero-vad/releases/tags/v6.2"),
        ("web", "GET", "/snakers4/silero-vad/releases/download/v6.2/silero_vad.jit"),
        ("storage", "GET", "/releases/snakers4/silero-vad/v6.2/silero_vad.jit"),
    ]
    api = github.requests[0]
    assert (api["accept"], api["api_version"], api["authorization"]) == \
        ("application/vnd.github+json", "2022-11-28", "Bearer ghp_secret")
    assert "?" not in github.requests[0]["path"] and "?" not in github.requests[1]["path"]
    assert [r["authorization"] for r in github.requests[1:]] == [None, None]
    assert github.refused == []
    start = len(github.requests)
    plain = github.add_file(f"silero_vad-{sha256(weights)[:8]}.jit", weights)
    assert run("pull", f"url:{plain}").exit_code == 0  # a plain URL: one GET, nothing asked of the API
    assert [(r["host"], r["path"]) for r in github.requests[start:]] == \
        [("storage", f"/models/silero_vad-{sha256(weights)[:8]}.jit")]
