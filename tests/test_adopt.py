"""`hubmirror adopt`: existing Hugging Face and torch caches come in offline, checked against what they record."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import noise
from tests.fakes.model_files import MINILM_REPO_ID

hf = pytest.importorskip("huggingface_hub")

REPO_DIR = "models--sentence-transformers--all-MiniLM-L6-v2"


@pytest.fixture
def hf_cache(minilm_hub, tmp_path):
    """A real client cache, written by huggingface_hub from the imitation; the imitation is stopped afterwards."""
    cache = tmp_path / "hf-cache"
    hf.snapshot_download(MINILM_REPO_ID, endpoint=minilm_hub.url, cache_dir=cache)
    minilm_hub.stop()
    return cache


def snapshot(cache: Path) -> Path:
    return next((cache / REPO_DIR / "snapshots").iterdir())


def test_adopt_a_huggingface_cache_offline(hf_cache, minilm, run):
    out = run.json("adopt", str(hf_cache))
    commit = snapshot(hf_cache).name
    assert out["adopted"] == [f"hf:{MINILM_REPO_ID}@{commit} (main)"]
    assert out["corrupt"] == [] and out["unverified"] == []
    files = {f["path"]: f["sha256"] for f in run.json("show", f"hf:{MINILM_REPO_ID}")["files"]}
    assert files == {p: hashlib.sha256(f.read_bytes()).hexdigest() for p, f in minilm.items()}
    assert run.json("verify")["ok"] is True


def test_a_corrupt_cache_blob_is_refused(hf_cache, run):
    blob = hf_cache / REPO_DIR / "blobs" / "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    result = run("adopt", str(hf_cache))
    assert result.exit_code == 1
    assert "corrupt:" in result.output and "model.safetensors" in result.output
    assert run.json("list") == []


def test_copies_are_verified_against_the_tree_cache_or_reported(hf_cache, run):
    snap = snapshot(hf_cache)
    link = snap / "config.json"
    data = link.read_bytes()
    link.unlink()
    link.write_bytes(data)  # copy mode, as without symlink support
    assert len(run.json("adopt", str(hf_cache))["adopted"]) == 1  # trees/<commit>.json vouches for it
    (hf_cache / REPO_DIR / "trees" / f"{snap.name}.json").unlink()
    run("rm", f"hf:{MINILM_REPO_ID}")
    out = run.json("adopt", str(hf_cache))
    assert out["adopted"] == [] and out["unverified"] == [f"hf:{MINILM_REPO_ID}@{snap.name}:config.json"]
    assert len(run.json("adopt", "--allow-unverified", str(hf_cache))["adopted"]) == 1


def test_a_link_leaving_the_cache_is_refused(hf_cache, run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model file")
    link = snapshot(hf_cache) / "vocab.txt"
    link.unlink()
    link.symlink_to(secret)
    result = run("adopt", str(hf_cache))
    assert result.exit_code == 1 and "links outside" in result.output
    assert run.json("list") == []
    store = run.root / "blobs" / "sha256"
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in {p.name for p in store.iterdir()}


def test_adopt_torch_home(run, tmp_path):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    good = noise(3000)
    (checkpoints / f"tiny-{hashlib.sha256(good).hexdigest()[:8]}.pth").write_bytes(good)
    (checkpoints / "lying-deadbeef.pth").write_bytes(noise(100))
    (checkpoints / "20180402-114759-vggface2.pt").write_bytes(b"no prefix")
    checkout = tmp_path / "torch" / "hub" / "snakers4_silero-vad_master"
    checkout.mkdir()
    (checkout / "hubconf.py").write_text("def m(): pass\n")
    result = run("adopt", str(tmp_path / "torch"), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 1
    assert len(out["adopted"]) == 1 and out["adopted"][0].startswith(f"file:{checkpoints}/tiny-")
    assert len(out["corrupt"]) == 1 and "lying-deadbeef.pth" in out["corrupt"][0]
    assert out["unverified"] == [str(checkpoints / "20180402-114759-vggface2.pt")]
    assert any("torch hub checkout" in s for s in out["skipped"])
    assert [m["key"] for m in run.json("list")] == [out["adopted"][0].split("@")[0]]
    shutil.rmtree(tmp_path / "torch")
    assert run.json("verify")["ok"] is True  # the mirror holds its own copy
