"""`hubmirror pull` against the imitation Hub: revisions, filters, dedup, refusals."""

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import TOKEN, noise
from tests.fakes.hf_hub import NOT_SET
from tests.fakes.model_files import MINILM_REPO_ID, silero_files, silero_onnx_files

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def blob_names(root: Path) -> set[str]:
    d = root / "blobs" / "sha256"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_pull_minilm_stores_every_file_verified_and_catalogued(minilm_hub, minilm, run, root):
    result = run("pull", f"hf:{MINILM_REPO_ID}")
    assert result.exit_code == 0, result.output
    commit = minilm_hub.repos[MINILM_REPO_ID].branches["main"]
    assert commit in result.stdout
    assert blob_names(root) == {sha256(p.read_bytes()) for p in minilm.values()}
    shown = run.json("show", f"hf:{MINILM_REPO_ID}")
    assert shown["commit"] == commit and shown["cached"] == 1
    assert shown["task"] == "sentence-similarity" and shown["license"] == "apache-2.0"
    assert shown["architecture"] == "BertModel" and shown["library"] == "sentence-transformers"
    assert "384 dimensional dense vector space" in shown["description"]
    files = {f["path"]: f for f in shown["files"]}
    assert set(files) == set(minilm)
    st = files["model.safetensors"]
    assert st["lfs"] == 1 and st["sha256"] == sha256(minilm["model.safetensors"].read_bytes())
    assert files["config.json"]["git_sha1"] == minilm_hub.repos[MINILM_REPO_ID].commits[commit]["config.json"].git_sha1
    assert [r["name"] for r in shown["refs"]] == ["main"]
    hits = run.json("search", "sentence embedding")
    assert [h["key"] for h in hits] == [f"hf:{MINILM_REPO_ID}"]
    assert run.json("search", "sentence", "--task", "sentence-similarity", "--license", "apache-2.0")
    assert run.json("search", "sentence", "--license", "mit") == []
    listed = run.json("list")
    assert [m["key"] for m in listed] == [f"hf:{MINILM_REPO_ID}"]
    # the LFS download went through the CDN redirect without the token
    assert minilm_hub.cdn_violations == []


def test_branch_tag_and_commit_revisions_are_pinned(hub, run, root):
    repo = hub.create_repo("org/m", {"config.json": b'{"v": 1}'})
    v1 = repo.branches["main"]
    repo.tags["v1.0"] = v1
    v2 = repo.commit({"config.json": b'{"v": 2}'})
    exp = repo.commit({"config.json": b'{"v": 3}'}, branch="experiment")
    assert run("pull", "hf:org/m").exit_code == 0
    assert run("pull", "hf:org/m@v1.0").exit_code == 0
    assert run("pull", f"hf:org/m@{exp}").exit_code == 0
    assert run("pull", "hf:org/m@experiment").exit_code == 0
    shown = run.json("show", "hf:org/m")
    assert {r["name"]: r["commit_id"] for r in shown["refs"]} == {"main": v2, "v1.0": v1, exp: exp, "experiment": exp}
    assert {r["commit_id"] for r in shown["revisions"]} == {v1, v2, exp}
    old = run.json("show", "hf:org/m@v1.0")
    assert old["commit"] == v1
    assert old["files"][0]["sha256"] == sha256(b'{"v": 1}')
    assert len(blob_names(root)) == 3


def test_include_and_exclude(hub, run):
    hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "model.safetensors": silero_files()["src/silero_vad/data/silero_vad_16k.safetensors"], "model.onnx": b"O" * 50,
                              "onnx/model.onnx": silero_onnx_files()["silero_vad_half.onnx"], "config.json": b"{}"})
    assert run("pull", "hf:org/m", "--include", "*.safetensors", "--include", "*.json", "--exclude", "*.onnx").exit_code == 0
    assert {f["path"] for f in run.json("show", "hf:org/m")["files"]} == {"model.safetensors", "config.json"}
    assert run("pull", "hf:org/m", "--include", "onnx/").exit_code == 0
    assert "onnx/model.onnx" in {f["path"] for f in run.json("show", "hf:org/m")["files"]}
    result = run("pull", "hf:org/m", "--include", "*.gguf")
    assert result.exit_code == 2 and "no file" in result.output


def test_the_largest_files_are_fetched_first(hub, run):
    """A pull ends when its longest download does, so that one starts first (one worker makes the order plain)."""
    sizes = {"a.json": 10, "b.bin": 300_000, "c.txt": 1_000, "d.bin": 40_000}
    hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, **{name: noise(n) for name, n in sizes.items()}})
    assert run("pull", "hf:org/m", "--workers", "1").exit_code == 0
    fetched = [r["path"].rsplit("/", 1)[-1] for r in hub.requests
               if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert fetched == ["b.bin", "d.bin", "c.txt", ".gitattributes", "a.json"]


def test_identical_files_of_two_models_are_stored_once(hub, run, root):
    weights = noise(300_000)
    hub.create_repo("org/a", {".gitattributes": LFS_ATTRS, "w.bin": weights, "config.json": b'{"a": 1}'})
    hub.create_repo("org/b", {".gitattributes": LFS_ATTRS, "w.bin": weights, "config.json": b'{"b": 2}'})
    assert run("pull", "hf:org/a").exit_code == 0
    before = len([r for r in hub.requests if r["path"].startswith("/repos/")])
    out = run.json("pull", "hf:org/b")
    assert out[0]["reused"] == 2  # w.bin (by sha256) and .gitattributes (by git blob id) were already stored
    assert len([r for r in hub.requests if r["path"].startswith("/repos/")]) == before  # no second CDN download
    assert len(blob_names(root)) == 4


def test_wrong_bytes_from_the_server_are_refused(hub, run, root):
    files = {"w.bin": b"W" * 5000, "config.json": b'{"x": 1}'}
    hub.create_repo("org/bad", {".gitattributes": LFS_ATTRS, **files})
    for corrupted in ("w.bin", "config.json"):  # checked against the LFS sha256 and against the git blob id
        hub.faults.corrupt = {corrupted}
        result = run("pull", "hf:org/bad")
        assert result.exit_code == 1
        assert "refused" in result.output and corrupted in result.output
        flipped = bytes([files[corrupted][0] ^ 0xFF]) + files[corrupted][1:]
        assert sha256(flipped) not in blob_names(root)
        assert run("list").exit_code == 0 and run.json("list") == []
        kept = [p.read_bytes() for p in (root / "tmp").iterdir() if p.is_file() and not p.name.endswith(".lock")]
        assert not [k for k in kept if k and flipped.startswith(k)]  # wrong bytes are not kept for a resume
    hub.faults.corrupt = set()
    assert run("pull", "hf:org/bad").exit_code == 0


def test_a_large_file_in_one_stream_hashed_behind_is_resumed_and_verified(hub, run, root):
    """A file of 9 MB in one stream (--connections 1) is hashed a chunk behind on its own thread: a connection reset
    mid-body is resumed and the digest covers every byte; a flipped byte is still refused."""
    weights = noise(9_000_000)
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "w.bin": weights})
    hub.faults.corrupt = {"w.bin"}
    result = run("pull", "hf:org/big", "--connections", "1")
    assert result.exit_code == 1 and "refused" in result.output and "w.bin" in result.output
    assert sha256(weights) not in blob_names(root)
    hub.faults.corrupt = set()
    hub.faults.reset_after = {"w.bin": 5_000_000}
    result = run("pull", "hf:org/big", "--connections", "1")
    assert result.exit_code == 0, result.output
    assert sha256(weights) in blob_names(root)
    resumed = [r["range"] for r in hub.requests if r["path"].startswith("/repos/") and r["range"]]
    assert resumed and int(resumed[-1].split("=")[1].rstrip("-")) >= 4_000_000  # from the bytes it held


def test_clear_errors_for_missing_repo_revision_and_gated_repo(hub, run, root):
    hub.create_repo("org/m", {"a.txt": b"a"})
    hub.create_repo("org/gated", {"README.md": b"# gated\n\nA gated model.\n", "a.txt": b"g"}, gated=True)
    cases = {
        "hf:org/nope": "repository not found",
        "hf:org/m@nope": "revision not found",
        "hf:org/gated": "gated repository",
    }
    for ref, message in cases.items():
        result = run("pull", ref)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert run.json("list") == []
    result = run("pull", "hf:org/gated", env={"HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_token_is_read_from_the_hf_token_file(hub, run, tmp_path):
    hub.create_repo("org/gated", {"a.txt": b"g"}, gated=True)
    token_file = Path(os.environ["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN + "\n")
    assert run("pull", "hf:org/gated").exit_code == 0


@pytest.mark.parametrize("hostile", ["../escape.txt", "/tmp/absolute.txt", "a/../../b.txt", "ok/../../../x"])
def test_hostile_file_names_are_refused_and_nothing_escapes(hub, run, root, tmp_path, hostile):
    repo = hub.create_repo("org/evil", {"fine.txt": b"fine"})
    commit = repo.branches["main"]
    from tests.fakes.repo import RepoFile

    repo.commits[commit][hostile] = RepoFile(hostile, data=b"pwned")
    before = {p for p in tmp_path.rglob("*")}
    result = run("pull", "hf:org/evil")
    assert result.exit_code == 1 and "refusing" in result.output and len(result.output.strip().splitlines()) == 1
    assert run.json("list") == []
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(root in p.parents or p == root for p in created), created
    assert not Path("/tmp/absolute.txt").exists()
    assert sha256(b"pwned") not in blob_names(root)


def test_malformed_references_are_usage_errors(run):
    for ref in ("nocolon", "zz:org/m", "hf:org/m@", "hf:../../etc", "hf:a/b/c"):
        result = run("pull", ref)
        assert result.exit_code == 2, (ref, result.output)
        assert result.output.startswith("error: ")


def test_a_range_ignoring_server_still_gives_correct_bytes(hub, run, root):
    data = noise(200_000)
    hub.create_repo("org/r", {".gitattributes": LFS_ATTRS, "w.bin": data})
    hub.faults.ignore_range = True
    # leave a partial download behind as an interrupted pull would
    from hubmirror.store import LocalBlobStore

    store = LocalBlobStore(root)
    with pytest.raises(ConnectionError):
        with store.writer(sha256(data)) as w:
            w.write(data[:1000])
            raise ConnectionError
    assert run("pull", "hf:org/r").exit_code == 0
    assert sha256(data) in blob_names(root)


def test_catalog_never_references_a_missing_blob(minilm_hub, run, root):
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    db = sqlite3.connect(root / "catalog.db")
    for (digest,) in db.execute("SELECT sha256 FROM files"):
        assert (root / "blobs" / "sha256" / digest).is_file()


def test_index_lists_hub_models_through_the_paginated_listing_api(hub, run):
    for i in range(10):  # page size 4 in the fixture: three pages
        hub.create_repo(f"org/model-{i}", {"README.md": b"---\npipeline_tag: text-classification\nlicense: mit\n---\n"})
    hub.create_repo("other/private", {"a.txt": b"a"}, private=True)
    assert run.json("index", "hf")["models"] == 10
    hits = run.json("search", "model", "--source", "hf", "--task", "text-classification", "--license", "mit",
                    "--limit", "50")
    assert len(hits) == 10 and all(h["cached"] == 0 for h in hits)
    assert run.json("index", "hf", "--query", "model-3")["models"] == 1
    assert run.json("index", "hf", "--limit", "5")["models"] == 5
    assert len([r for r in hub.requests if r["path"].startswith("/api/models?")]) >= 3


def _api_requests(hub, since: int = 0) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in hub.requests[since:] if r["path"].startswith("/api/")]


def test_default_revision_resolves_as_snapshot_download_does(hub, run, tmp_path):
    """The issue's regression, on the imitation: `pull hf:REPO` without a revision asks `/revision/main`, as
    snapshot_download does (`revision or DEFAULT_REVISION`), never the bare `/api/models/{repo}`: an independent server
    (olah) answers that 401 RepoNotFound, which the imitation does here too."""
    hf = pytest.importorskip("huggingface_hub")
    repo = hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "config.json": b"{}", "w.bin": noise(5000),
                                     "sub/a.txt": b"a", "README.md": b"# m\n\nA model.\n"})
    commit = repo.branches["main"]
    hub.answer_bare_model_info = False
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    ours = _api_requests(hub)
    assert ours[0] == ("GET", "/api/models/org/m/revision/main")
    assert ours[1] == ("GET", f"/api/models/org/m/tree/{commit}?recursive=true&expand=false")
    assert all(path.startswith(f"/api/models/org/m/tree/{commit}?") for _, path in ours[2:])  # Link pages
    assert not any(path.split("?")[0] == "/api/models/org/m" for _, path in ours)
    # exactly the API requests of the official client's snapshot_download, in the same order
    mark = len(hub.requests)
    hf.snapshot_download("org/m", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert _api_requests(hub, mark) == ours
    # and file requests among the resolve URLs the official client asks (it HEADs each, then GETs)
    theirs = {r["path"] for r in hub.requests[mark:] if "/resolve/" in r["path"]}
    assert {r["path"] for r in hub.requests[:mark] if "/resolve/" in r["path"]} <= theirs
    assert hub.refused == [] and hub.cdn_violations == []


def test_index_sends_list_models_parameters_only(hub, run):
    """`index hf` is `HfApi.list_models(search=, sort="downloads", limit=, full=True)`: no `direction=-1`, which the
    official client dropped and the imitation refuses."""
    hf = pytest.importorskip("huggingface_hub")
    hub.create_repo("org/model-1", {"README.md": b"---\nlicense: mit\n---\n"})
    assert run.json("index", "hf", "--query", "model", "--limit", "3")["models"] == 1
    (listing,) = [p for _, p in _api_requests(hub)]
    assert listing == "/api/models?search=model&sort=downloads&limit=3&full=true"
    mark = len(hub.requests)
    list(hf.HfApi(endpoint=hub.url).list_models(search="model", sort="downloads", limit=3, full=True))
    assert _api_requests(hub, mark) == [("GET", listing)]
    assert hub.refused == []


def test_model_info_is_retried_after_429_and_5xx_then_fails_in_one_line(hub, run):
    hub.create_repo("org/m", {"a.txt": b"a"})
    hub.faults.status_queue["api"] = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert [p for _, p in _api_requests(hub)][:3] == ["/api/models/org/m/revision/main"] * 3
    hub.faults.status_queue["api"] = [(429, {"Retry-After": "0"})] * 3
    result = run("pull", "hf:org/m@main", env={"HUBMIRROR_RETRIES": "1"})
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: hf:org/m@main: the Hub is rate-limiting this client (HTTP 429)"), line


def test_unusable_hub_answers_are_one_line_errors(hub, run):
    hub.create_repo("org/m", {"a.txt": b"a"})
    hub.faults.info_override = {"id": "org/m", "sha": "0" * 40, "lastModified": "yesterday"}
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "cannot read" in result.output
    hub.faults.info_override = NOT_SET
    hub.faults.tree_override = [{"type": "file", "path": "a.txt", "size": 1, "oid": "x", "lfs": {"oid": "y"}}]
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "cannot read" in result.output
    result = run("pull", "hf:org/a--b")  # huggingface_hub's repo id rules
    assert result.exit_code == 2 and result.output.startswith("error: hf:org/a--b: ")
