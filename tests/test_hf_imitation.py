"""The imitation Hub answers the official huggingface_hub client as the real Hub does."""

import hashlib
from pathlib import Path

import pytest
import requests

from tests.conftest import TOKEN
from tests.fakes.model_files import MINILM_REPO_ID

hf = pytest.importorskip("huggingface_hub")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_snapshot_download_gets_the_real_minilm_files(minilm_hub, minilm, tmp_path):
    api = hf.HfApi(endpoint=minilm_hub.url)
    commit = minilm_hub.repos[MINILM_REPO_ID].branches["main"]
    folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=minilm_hub.url, cache_dir=tmp_path / "cache")
    assert Path(folder).name == commit
    got = {p.relative_to(folder).as_posix(): sha256(p) for p in Path(folder).rglob("*") if p.is_file()}
    assert got == {name: sha256(path) for name, path in minilm.items()}
    # LFS blobs are named by sha256 in the client cache, regular ones by git blob id, as with the real Hub
    blobs = {p.name for p in (tmp_path / "cache" / "models--sentence-transformers--all-MiniLM-L6-v2" / "blobs").iterdir()}
    assert sha256(minilm["model.safetensors"]) in blobs
    tree = {f.path: f for f in api.list_repo_tree(MINILM_REPO_ID, recursive=True) if isinstance(f, hf.hf_api.RepoFile)}
    assert tree["model.safetensors"].lfs.sha256 == sha256(minilm["model.safetensors"])
    assert tree["config.json"].blob_id in blobs
    assert minilm_hub.cdn_violations == []


def test_model_info_tree_pagination_and_refs(minilm_hub, minilm):
    api = hf.HfApi(endpoint=minilm_hub.url)
    repo = minilm_hub.repos[MINILM_REPO_ID]
    info = api.model_info(MINILM_REPO_ID, files_metadata=True)
    assert info.sha == repo.branches["main"]
    assert info.pipeline_tag == "sentence-similarity"
    assert "license:apache-2.0" in info.tags
    by_name = {s.rfilename: s for s in info.siblings}
    assert by_name["model.safetensors"].lfs.sha256 == sha256(minilm["model.safetensors"])
    # page size 4 in the fixture: the listing spans several Link-paginated pages and the client follows them
    entries = list(api.list_repo_tree(MINILM_REPO_ID, recursive=True))
    assert {e.path for e in entries if isinstance(e, hf.hf_api.RepoFile)} == set(minilm)
    assert sum(1 for r in minilm_hub.requests if "/tree/" in r["path"]) >= 4
    repo.commit({**{k: v for k, v in minilm.items()}, "extra.txt": b"v2"}, tag="v2")
    refs = api.list_repo_refs(MINILM_REPO_ID)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": repo.branches["main"]}
    assert {t.name: t.target_commit for t in refs.tags} == {"v2": repo.tags["v2"]}
    paths = api.get_paths_info(MINILM_REPO_ID, ["config.json", "1_Pooling"], revision="v2")
    assert {p.path for p in paths} == {"config.json", "1_Pooling"}


def test_client_errors_match_the_hub(hub, tmp_path):
    hub.create_repo("org/open", {"a.txt": b"a"})
    hub.create_repo("org/gated", {"a.txt": b"a"}, gated=True)
    kw = dict(endpoint=hub.url, cache_dir=tmp_path / "c")
    with pytest.raises(hf.errors.RepositoryNotFoundError):
        hf.hf_hub_download("org/missing", "a.txt", **kw)
    with pytest.raises(hf.errors.RevisionNotFoundError):
        hf.hf_hub_download("org/open", "a.txt", revision="nope", **kw)
    with pytest.raises(hf.errors.EntryNotFoundError):
        hf.hf_hub_download("org/open", "missing.txt", **kw)
    with pytest.raises(hf.errors.GatedRepoError):
        hf.hf_hub_download("org/gated", "a.txt", **kw)
    assert Path(hf.hf_hub_download("org/gated", "a.txt", token=TOKEN, **kw)).read_bytes() == b"a"


def test_lfs_redirect_carries_metadata_and_the_cdn_never_sees_the_token(hub, tmp_path):
    data = bytes(range(256)) * 4096
    hub.create_repo("org/lfs", {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n", "w.bin": data},
                    gated=True)
    url = f"{hub.url}/org/lfs/resolve/main/w.bin"
    head = requests.head(url, headers={"Authorization": f"Bearer {TOKEN}"}, allow_redirects=False)
    assert head.status_code == 302
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(head.headers["X-Linked-Size"]) == len(data)
    assert head.headers["X-Repo-Commit"] == hub.repos["org/lfs"].branches["main"]
    path = hf.hf_hub_download("org/lfs", "w.bin", endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == data
    assert hub.cdn_violations == []
    cdn = head.headers["Location"]
    assert requests.get(cdn, headers={"Authorization": "Bearer x"}).status_code == 400


def test_ranges_206_and_416(hub):
    hub.create_repo("org/r", {"f.txt": b"0123456789"})
    url = f"{hub.url}/org/r/resolve/main/f.txt"
    r = requests.get(url, headers={"Range": "bytes=3-"})
    assert (r.status_code, r.content, r.headers["Content-Range"]) == (206, b"3456789", "bytes 3-9/10")
    assert requests.get(url, headers={"Range": "bytes=-2"}).content == b"89"
    r = requests.get(url, headers={"Range": "bytes=10-"})
    assert (r.status_code, r.headers["Content-Range"]) == (416, "bytes */10")
    r = requests.get(f"{hub.url}/org/r/resolve/main/nope.txt")
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound"
    assert r.headers["X-Repo-Commit"] == hub.repos["org/r"].branches["main"]


def test_namespace_less_repo_ids(hub, tmp_path):
    hub.create_repo("gpt2", {"config.json": b"{}"})
    path = hf.hf_hub_download("gpt2", "config.json", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == b"{}"


def test_list_models_pages_like_the_hub(hub):
    for i in range(6):
        hub.create_repo(f"org/m{i}", {"README.md": b"---\npipeline_tag: fill-mask\n---\n"})
    api = hf.HfApi(endpoint=hub.url)
    listed = list(api.list_models(search="org/m", full=True))
    assert sorted(m.id for m in listed) == [f"org/m{i}" for i in range(6)]
    assert {m.pipeline_tag for m in listed} == {"fill-mask"}
    assert [m.id for m in api.list_models(limit=5)] == [f"org/m{i}" for i in range(5)]
