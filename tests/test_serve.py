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


# -- regressions -------------------------------------------------------------------------------------------------------

def test_a_pr_ref_through_the_real_client(hub, run, root, tmp_path, monkeypatch):
    """The path is decoded once: `refs%2Fpr%2F1` names one revision, in resolve, model info, tree (and its pages)
    and paths-info."""
    repo = hub.create_repo("org/pr", {"config.json": b'{"pr": 0}'})
    pr = repo.commit({"config.json": b'{"pr": 1}', "d/one.txt": b"1", "d/two.txt": b"2"}, branch="refs/pr/1")
    assert run("pull", "hf:org/pr").exit_code == 0
    assert run("pull", "hf:org/pr@refs/pr/1").exit_code == 0
    monkeypatch.setattr("hubmirror.serving.hf_api.TREE_PAGE", 2)  # the tree below takes two pages
    with MirrorServer(root) as server:
        def download(**kw):
            return Path(hf.hf_hub_download("org/pr", "config.json", endpoint=server.url, cache_dir=tmp_path / "c",
                                           **kw)).read_bytes()

        assert download(revision="refs/pr/1") == b'{"pr": 1}' and download() == b'{"pr": 0}'
        api = hf.HfApi(endpoint=server.url)
        assert api.model_info("org/pr", revision="refs/pr/1").sha == pr
        listed = {e.path for e in api.list_repo_tree("org/pr", revision="refs/pr/1", recursive=True)}
        assert listed == {"config.json", "d", "d/one.txt", "d/two.txt"}
        assert {e.path for e in api.get_paths_info("org/pr", ["d/one.txt", "d", "nope"], revision="refs/pr/1")} == \
            {"d/one.txt", "d"}


def test_file_names_with_percent_signs(hub, run, root, tmp_path):
    """`a%2520b.txt` in a URL names the file `a%20b.txt`, not `a b.txt`."""
    names = {"100%25 done.txt": b"done", "a%20b.txt": b"literal", "a b.txt": b"space"}
    hub.create_repo("org/pct", names)
    assert run("pull", "hf:org/pct").exit_code == 0
    with MirrorServer(root) as server:
        for name, content in names.items():
            path = hf.hf_hub_download("org/pct", name, endpoint=server.url, cache_dir=tmp_path / "c")
            assert Path(path).read_bytes() == content, name
        paths = {e.path for e in hf.HfApi(endpoint=server.url).get_paths_info("org/pct", ["a%20b.txt", "a%2520b.txt"])}
        assert paths == {"a%20b.txt"}


def test_resolve_looks_up_one_file_and_leaves_the_event_loop_free(hub, run, root, monkeypatch):
    """Catalog reads run in threads (two requests are inside the catalog at once), and a resolve reads one file row,
    not every file of the commit."""
    import threading

    from hubmirror.catalog.reads import ModelReads

    repo = hub.create_repo("org/many", {f"f{i}.txt": str(i).encode() for i in range(20)})
    commit = repo.branches["main"]
    assert run("pull", "hf:org/many").exit_code == 0
    with MirrorServer(root) as server:
        url = f"{server.url}/org/many/resolve/{commit}"
        assert requests.head(f"{url}/f0.txt").status_code == 200
        listings = []
        monkeypatch.setattr(ModelReads, "files", lambda *a, **kw: listings.append(a) or [])
        together = threading.Barrier(2, timeout=10)
        commit_for = ModelReads.commit_for

        def meeting(self, *args):
            together.wait()  # returns only while the other request is in the catalog too
            return commit_for(self, *args)

        monkeypatch.setattr(ModelReads, "commit_for", meeting)
        responses = {}
        threads = [threading.Thread(target=lambda i=i: responses.__setitem__(i, requests.get(f"{url}/f{i}.txt")))
                   for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert {i: (r.status_code, r.content) for i, r in responses.items()} == {1: (200, b"1"), 2: (200, b"2")}
        assert listings == []


def test_torch_checkpoints_match_the_exact_base_name(hub, run, root):
    """`_` and `%` are not wildcards, and case matters: a checkpoint name never serves another file."""
    hub.create_repo("org/ckpt", {"sub/aXb.json": b"aXb", "sub/a.json": b"a", "top.json": b"top"})
    assert run("pull", "hf:org/ckpt").exit_code == 0
    with MirrorServer(root) as server:
        def get(name):
            response = requests.get(f"{server.url}/torch/checkpoints/{name}")
            return response.status_code, response.content if response.status_code == 200 else None

        assert get("aXb.json") == (200, b"aXb") and get("a.json") == (200, b"a") and get("top.json") == (200, b"top")
        for other in ("a_b.json", "A.json", "%25.json", "_.json", "AXB.json"):
            assert get(other) == (404, None), other


def test_checkpoint_lookup_uses_the_base_name_index(hub, run, root):
    from hubmirror.catalog import Catalog
    from hubmirror.catalog.reads import ModelReads

    hub.create_repo("org/ckpt", {"sub/a.json": b"a"})
    assert run("pull", "hf:org/ckpt").exit_code == 0
    catalog = Catalog(root / "catalog.db", create=False)
    plan = " ".join(str(r) for r in catalog.conn.execute("EXPLAIN QUERY PLAN " + ModelReads.NEWEST_FILE_NAMED, ["a"]))
    catalog.close()
    assert "files_basename" in plan, plan


def test_refs_forget_a_removed_revision(hub, run, root):
    repo = hub.create_repo("org/x", {"config.json": b'{"v": 1}'})
    first = repo.branches["main"]
    repo.tags["v1"] = first
    second = repo.commit({"config.json": b'{"v": 2}'})
    assert run("pull", "hf:org/x@v1").exit_code == 0
    assert run("pull", "hf:org/x").exit_code == 0
    with MirrorServer(root) as server:
        def targets():
            refs = requests.get(f"{server.url}/api/models/org/x/refs").json()
            return {r["targetCommit"] for kind in ("branches", "tags") for r in refs[kind]}

        assert targets() == {first, second}
        assert run("rm", f"hf:org/x@{second}").exit_code == 0
        assert targets() == {first}
        assert requests.get(f"{server.url}/api/models/org/x").json()["sha"] == first


def test_tokens_are_compared_in_constant_time(minilm_hub, run, root, monkeypatch):
    import hmac

    compared = []
    compare_digest = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(1) or compare_digest(a, b))
    assert run("pull", f"hf:{MINILM_REPO_ID}", "--include", "*.json").exit_code == 0
    with MirrorServer(root, token="s3cret") as server:
        url = f"{server.url}/{MINILM_REPO_ID}/resolve/main/config.json"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cre"},
                        {"Authorization": "s3cret"},
                        {"Authorization": "Bearer s3cret2"}):
            response = requests.get(url, headers=headers)
            assert response.status_code == 401 and response.headers["X-Error-Code"] == "RepoNotFound", headers
        assert requests.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert compared
