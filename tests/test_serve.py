"""`hubmirror serve`: unmodified huggingface_hub, transformers, sentence-transformers and timm load from the mirror."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID

hf = pytest.importorskip("huggingface_hub")


@pytest.fixture
def served(minilm_hub, run, root):
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    minilm_hub.stop()  # from here on, only the mirror answers
    with MirrorServer(root) as server:
        yield server


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_snapshot_download_from_the_mirror(served, minilm, tmp_path):
    folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=served.url, cache_dir=tmp_path / "c")
    got = {p.relative_to(folder).as_posix(): sha256(p) for p in Path(folder).rglob("*") if p.is_file()}
    assert got == {name: sha256(path) for name, path in minilm.items()}
    path = hf.hf_hub_download(MINILM_REPO_ID, "config.json", endpoint=served.url, cache_dir=tmp_path / "c2")
    assert Path(path).read_bytes() == minilm["config.json"].read_bytes()
    api = hf.HfApi(endpoint=served.url)
    info = api.model_info(MINILM_REPO_ID, files_metadata=True)
    assert info.pipeline_tag == "sentence-similarity"
    assert {s.rfilename: s.lfs.sha256 for s in info.siblings if s.lfs} == {"model.safetensors": sha256(minilm["model.safetensors"])}
    assert [b.name for b in api.list_repo_refs(MINILM_REPO_ID).branches] == ["main"]
    assert {p.path for p in api.get_paths_info(MINILM_REPO_ID, ["config.json", "nope"])} == {"config.json"}


def test_protocol_details_clients_rely_on(served, minilm):
    base = f"{served.url}/{MINILM_REPO_ID}/resolve/main"
    head = requests.head(f"{base}/model.safetensors", allow_redirects=False)
    assert head.status_code == 200 and "Location" not in head.headers
    digest = sha256(minilm["model.safetensors"])
    assert head.headers["X-Linked-Etag"] == f'"{digest}"' and head.headers["ETag"] == f'"{digest}"'
    assert int(head.headers["X-Linked-Size"]) == minilm["model.safetensors"].stat().st_size
    assert len(head.headers["X-Repo-Commit"]) == 40
    assert not [h for h in head.headers if h.lower().startswith("x-xet")]
    ranged = requests.get(f"{base}/config.json", headers={"Range": "bytes=2-9"})
    assert ranged.status_code == 206 and ranged.content == minilm["config.json"].read_bytes()[2:10]
    missing = requests.get(f"{base}/nope.bin")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == head.headers["X-Repo-Commit"]
    assert requests.get(f"{served.url}/api/models/org/nothing").headers["X-Error-Code"] == "RepoNotFound"
    assert requests.get(f"{served.url}/api/models/{MINILM_REPO_ID}/revision/nope").headers["X-Error-Code"] == "RevisionNotFound"
    for hostile in ("/../../etc/passwd", f"/{MINILM_REPO_ID}/resolve/main/../../../../etc/passwd",
                    "/torch/checkpoints/..%2F..%2Fcatalog.db"):
        response = requests.get(served.url + hostile)
        assert response.status_code == 404 and b"root:" not in response.content


def test_bearer_token(minilm_hub, run, root, tmp_path):
    assert run("pull", f"hf:{MINILM_REPO_ID}", "--include", "*.json").exit_code == 0
    with MirrorServer(root, token="s3cret") as server:
        with pytest.raises(hf.errors.RepositoryNotFoundError):
            hf.hf_hub_download(MINILM_REPO_ID, "config.json", endpoint=server.url, cache_dir=tmp_path / "a")
        path = hf.hf_hub_download(MINILM_REPO_ID, "config.json", endpoint=server.url, cache_dir=tmp_path / "b",
                                  token="s3cret")
        assert Path(path).is_file()


EMBED = """
import sys, json
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
print(json.dumps(model.encode(["hubmirror keeps models offline"])[0][:8].tolist()))
"""


def test_sentence_transformers_gives_the_same_embeddings_through_the_mirror(served, minilm, tmp_path):
    pytest.importorskip("sentence_transformers")
    env = {**os.environ, "HF_ENDPOINT": served.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    through_mirror = subprocess.run([sys.executable, "-c", EMBED, MINILM_REPO_ID], capture_output=True, text=True,
                                    env=env, timeout=300)
    assert through_mirror.returncode == 0, through_mirror.stderr[-2000:]
    local_dir = minilm["config.json"].parent
    direct = subprocess.run([sys.executable, "-c", EMBED, str(local_dir)], capture_output=True, text=True,
                            env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert through_mirror.stdout.strip().splitlines()[-1] == direct.stdout.strip().splitlines()[-1]


def test_transformers_from_pretrained_through_the_mirror(served, tmp_path):
    pytest.importorskip("transformers")
    code = ("import sys; from transformers import AutoModel, AutoTokenizer\n"
            "m = AutoModel.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
            "print(type(m).__name__, m.config.hidden_size, len(t('hello world')['input_ids']))")
    env = {**os.environ, "HF_ENDPOINT": served.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    done = subprocess.run([sys.executable, "-c", code, MINILM_REPO_ID], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "BertModel 384 4"
