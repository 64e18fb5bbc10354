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


def test_every_official_client_call_is_accepted(minilm_hub, minilm, tmp_path):
    """The imitation's refusals never catch huggingface_hub itself: every call the tests and hubmirror rely on, with
    the parameters each can send, passes."""
    hub = minilm_hub
    api = hf.HfApi(endpoint=hub.url)
    repo = MINILM_REPO_ID
    api.model_info(repo)
    api.model_info(repo, revision="main", files_metadata=True, securityStatus=True)
    api.model_info(repo, expand=["sha", "siblings", "cardData", "model-index"])
    list(api.list_repo_tree(repo, recursive=True, expand=True))
    list(api.list_repo_tree(repo, "1_Pooling"))
    api.get_paths_info(repo, ["config.json", "1_Pooling"], expand=True)
    api.list_repo_refs(repo, include_pull_requests=True)
    list(api.list_models(search="MiniLM", sort="likes", limit=2, cardData=True, fetch_config=True, full=True))
    list(api.list_models(filter=["sentence-similarity", "license:apache-2.0"], author="sentence-transformers",
                         pipeline_tag="sentence-similarity", gated=False, expand=["downloads", "tags"]))
    assert api.file_exists(repo, "config.json") and not api.file_exists(repo, "nope.json")
    hf.hf_hub_download(repo, "config.json", endpoint=hub.url, cache_dir=tmp_path / "c")
    hf.snapshot_download(repo, endpoint=hub.url, cache_dir=tmp_path / "c", allow_patterns=["*.json"])
    assert hub.refused == []


@pytest.mark.parametrize("method, path, why", [
    ("GET", "/api/models?limit=10&sort=downloads&direction=-1&full=true", "unknown query parameter 'direction'"),
    ("GET", "/api/models?sort=downloads_desc", "sort='downloads_desc' is never sent"),
    ("GET", "/api/models?full=true&expand=downloads", "refuses to send that combination"),
    ("GET", "/api/models?full=false", "full='false' is never sent"),
    ("GET", "/api/models?limit=ten", "limit='ten' is never sent"),
    ("POST", "/api/models", "never sends POST"),
    ("GET", "/api/models/org/m?blobs=true&expand=sha", "refuses to send that combination"),
    ("GET", "/api/models/org/m/revision/main?blobs=1", "blobs='1' is never sent"),
    ("GET", "/api/models/org/m/revision/main?direction=-1", "unknown query parameter 'direction'"),
    ("HEAD", "/api/models/org/m", "never sends HEAD"),
    ("GET", "/api/models/org/m/tree/main", "'recursive' missing"),
    ("GET", "/api/models/org/m/tree/main?recursive=true&expand=false&limit=5", "unknown query parameter 'limit'"),
    ("GET", "/api/models/org/m/tree/main?recursive=1&expand=false", "recursive='1' is never sent"),
    ("GET", "/api/models/org/m/paths-info/main", "never sends GET"),
    ("GET", "/api/models/org/m/refs?include_prs=true", "include_prs='true' is never sent"),
    ("GET", "/org/m/resolve/main/a.txt?download=true", "unknown query parameter 'download'"),
    ("POST", "/org/m/resolve/main/a.txt", "never sends POST"),
])
def test_requests_no_official_client_sends_are_refused(hub, method, path, why):
    hub.create_repo("org/m", {"a.txt": b"a"})
    resp = requests.request(method, hub.url + path)
    assert resp.status_code == (405 if "never sends" in why else 400)
    assert why in resp.headers["X-Error-Message"] and "X-Error-Code" not in resp.headers
    assert len(hub.refused) == 1 and why in hub.refused[0]
    with pytest.raises(hf.errors.HfHubHTTPError):  # the official client reads it as a failed call
        hf.utils.hf_raise_for_status(hf.utils.get_session().request(method, hub.url + path))


def test_paths_info_takes_only_the_clients_form(hub):
    hub.create_repo("org/m", {"a.txt": b"a"})
    url = f"{hub.url}/api/models/org/m/paths-info/main"
    assert requests.post(url, data={"paths": ["a.txt"], "expand": "false"}).json()[0]["path"] == "a.txt"
    assert requests.post(url, json={"paths": ["a.txt"], "expand": False}).status_code == 400
    assert requests.post(url, data={"paths": ["a.txt"]}).status_code == 400  # the client always sends expand
    assert requests.post(url, data={"paths": ["a.txt"], "expand": "false", "recursive": "true"}).status_code == 400
    assert requests.post(f"{url}?expand=true", data={"paths": ["a.txt"], "expand": "false"}).status_code == 400
    assert len(hub.refused) == 4


def test_bare_model_info_is_answered_as_the_hub_does(hub):
    """The real Hub answers `GET /api/models/{repo}` (model_info without a revision sends it) with the default branch;
    `answer_bare_model_info = False` imitates a server that does not (olah), which the download path never needs."""
    repo = hub.create_repo("org/m", {"a.txt": b"a"})
    api = hf.HfApi(endpoint=hub.url)
    assert api.model_info("org/m").sha == repo.branches["main"]
    hub.answer_bare_model_info = False
    with pytest.raises(hf.errors.RepositoryNotFoundError):
        api.model_info("org/m")
    assert api.model_info("org/m", revision="main").sha == repo.branches["main"]
