"""Against a Hugging Face-compatible server nobody here wrote: olah (PyPI), offline on 127.0.0.1, serving the real
sentence-transformers/all-MiniLM-L6-v2 files. The official huggingface_hub client downloads them byte for byte,
and hubmirror pulls from it, verifies, serves, and the client downloads the same bytes from the mirror."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import Cli
from tests.fakes.independent_hf import olah_hub, unavailable_reason
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID

hf = pytest.importorskip("huggingface_hub")
pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digests(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in Path(folder).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def olah(tmp_path_factory):
    """One olah for the module: building the mirror and starting the server cost a few seconds."""
    from tests.fakes.model_files import minilm_files

    try:
        files = minilm_files()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    with olah_hub(MINILM_REPO_ID, files, base_dir=tmp_path_factory.mktemp("olah")) as url:
        yield url


def test_snapshot_download_from_olah_is_byte_identical(olah, minilm, tmp_path):
    folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=olah, cache_dir=tmp_path / "c")
    assert Path(folder).name == olah.commit
    assert tree_digests(folder) == {name: sha256(path) for name, path in minilm.items()}
    # the LFS blob is stored under its sha256 (olah's ETag), regular files under their git blob id
    blobs = {p.name for p in (tmp_path / "c" / "models--sentence-transformers--all-MiniLM-L6-v2" / "blobs").iterdir()}
    assert sha256(minilm["model.safetensors"]) in blobs


def test_hf_endpoint_variable_and_metadata_calls(olah, minilm, tmp_path):
    """HF_ENDPOINT as users set it (read when huggingface_hub is imported, hence a fresh interpreter)."""
    script = """
import json
from huggingface_hub import HfApi, model_info
repo = "sentence-transformers/all-MiniLM-L6-v2"
api = HfApi()
tree = {f.path: (f.size, f.blob_id, f.lfs.sha256 if getattr(f, "lfs", None) else None)
        for f in api.list_repo_tree(repo, recursive=True) if type(f).__name__ == "RepoFile"}
paths = sorted(p.path for p in api.get_paths_info(repo, ["config.json", "1_Pooling", "nope"]))
print(json.dumps({"sha": model_info(repo).sha, "sha_main": model_info(repo, revision="main").sha,
                  "tree": tree, "paths": paths, "exists": api.file_exists(repo, "config.json")}))
"""
    env = {**os.environ, "HF_ENDPOINT": olah, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["sha"] == got["sha_main"] == olah.commit
    assert {p: v[0] for p, v in got["tree"].items()} == {n: p.stat().st_size for n, p in minilm.items()}
    assert got["tree"]["model.safetensors"][2] == sha256(minilm["model.safetensors"])
    assert got["paths"] == ["1_Pooling", "config.json"]
    assert got["exists"] is True


def test_olah_protocol_as_found(olah, minilm):
    """What this independent server answers, pinned so a change in olah is noticed."""
    base = f"{olah}/{MINILM_REPO_ID}/resolve/main"
    head = requests.head(f"{base}/model.safetensors", allow_redirects=False)
    assert head.status_code == 200 and head.headers["X-Repo-Commit"] == olah.commit
    assert head.headers["ETag"] == sha256(minilm["model.safetensors"])  # unquoted, no X-Linked-*
    assert int(head.headers["Content-Length"]) == minilm["model.safetensors"].stat().st_size
    ranged = requests.get(f"{base}/config.json", headers={"Range": "bytes=2-9"})
    assert ranged.status_code == 200 and ranged.content == minilm["config.json"].read_bytes()  # Range ignored
    tree = requests.get(f"{olah}/api/models/{MINILM_REPO_ID}/tree/main", allow_redirects=False)
    assert tree.status_code == 307 and tree.headers["Location"].split("?")[0].endswith("/tree/main/")
    missing = requests.get(f"{olah}/api/models/org/nothing/revision/main")
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (401, "RepoNotFound")


def test_bare_model_info_needs_the_seeded_index(minilm, tmp_path):
    """Without its offline newest-commit index olah answers GET /api/models/{repo} 401 RepoNotFound, while
    /revision/main works: the behaviour a hubmirror user pointing at a plain olah mirror meets."""
    files = {k: v for k, v in minilm.items() if k.endswith(".json")}
    with olah_hub(MINILM_REPO_ID, files, seed_latest_commit=False, base_dir=tmp_path) as url:
        bare = requests.get(f"{url}/api/models/{MINILM_REPO_ID}")
        assert (bare.status_code, bare.headers["X-Error-Code"]) == (401, "RepoNotFound")
        assert requests.get(f"{url}/api/models/{MINILM_REPO_ID}/revision/main").json()["sha"] == url.commit
    assert not Path(url.storage).exists()  # cleaned up on exit


def test_pull_verify_serve_snapshot_download(olah, minilm, tmp_path):
    pull_verify_serve_download(olah, minilm, tmp_path)


def pull_verify_serve_download(hub_url, minilm, tmp_path):
    """`hubmirror pull hf:REPO` (no revision) from the server at `hub_url` → verify → serve → snapshot_download:
    the client gets the served commit and every file byte-identical."""
    run = Cli(tmp_path / "mirror", hub_url)
    pulled = run("pull", f"hf:{MINILM_REPO_ID}")
    assert pulled.exit_code == 0, pulled.output
    assert run.json("verify")["ok"] is True
    with MirrorServer(tmp_path / "mirror") as served:
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=served.url, cache_dir=tmp_path / "c")
    assert Path(folder).name == hub_url.commit
    assert tree_digests(folder) == {name: sha256(path) for name, path in minilm.items()}


def test_default_revision_pull_from_unseeded_olah(minilm, tmp_path):
    """The issue's regression: `hubmirror pull hf:REPO` without a revision against a plain olah mirror (no
    newest-commit index, so its bare `GET /api/models/{repo}` answers 401 RepoNotFound). The source must resolve
    the default revision as snapshot_download does (`/revision/main`), then verify, serve and download byte-identical."""
    with olah_hub(MINILM_REPO_ID, minilm, seed_latest_commit=False, base_dir=tmp_path) as url:
        pull_verify_serve_download(url, minilm, tmp_path)
