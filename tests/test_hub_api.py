"""The Hub API calls huggingface_hub's `HfApi` makes, answered by `serve` and by a cold `serve --upstream` as the Hub
(here: its imitation) answers them: refs by kind, commits, and the same through the proxy."""

import hashlib
import subprocess
import threading

import pytest
import requests

from hubmirror.mirror import Mirror
from tests.conftest import TOKEN, noise
from tests.fakes.mirror_server import MirrorServer

hf = pytest.importorskip("huggingface_hub")


def refs_of(api, repo: str) -> dict:
    """{kind: {name: commit}} of `list_repo_refs(include_pull_requests=True)`."""
    found = api.list_repo_refs(repo, include_pull_requests=True)
    return {kind: {r.name: r.target_commit for r in getattr(found, kind) or []}
            for kind in ("branches", "tags", "pull_requests")}


def commits_of(api, repo: str, revision: str | None = None) -> list[tuple]:
    return [(c.commit_id, c.title, c.created_at.isoformat(), tuple(c.authors))
            for c in api.list_repo_commits(repo, revision=revision)]


@pytest.fixture
def history(hub):
    """org/h: main three commits long, a branch `dev`, a tag `v1` on the first commit, a pull request."""
    repo = hub.create_repo("org/h", {"config.json": b'{"v": 1}'})
    first = repo.branches["main"]
    repo.tags["v1"] = first
    repo.commit({"config.json": b'{"v": 2}'}, title="second")
    repo.commit({"config.json": b'{"v": 3}'}, title="third")
    repo.commit({"config.json": b'{"dev": 1}'}, branch="dev", title="dev work")
    repo.commit({"config.json": b'{"pr": 1}'}, branch="refs/pr/1", title="a pull request")
    return repo


def test_refs_keep_their_kind_and_commits_list_what_the_mirror_holds(hub, history, run, root):
    for spec in ("hf:org/h@v1", "hf:org/h@dev", "hf:org/h@refs/pr/1", "hf:org/h",
                 f"hf:org/h@{history.history[history.branches['main']]['parent']}"):  # the second, by its commit
        assert run("pull", spec).exit_code == 0, spec
    with MirrorServer(root) as server:
        api = hf.HfApi(endpoint=server.url)
        upstream = hf.HfApi(endpoint=hub.url)
        assert refs_of(api, "org/h") == refs_of(upstream, "org/h")  # a commit pulled by its id is no ref
        plain = requests.get(f"{server.url}/api/models/org/h/refs").json()
        assert "pullRequests" not in plain and [b["name"] for b in plain["branches"]] == ["dev", "main"]

        held = commits_of(api, "org/h")  # main's history as far as the mirror holds it: newest first
        main, second, first = history.ancestry(history.branches["main"])
        assert [c[0] for c in held] == [main, second, first][:len(held)]
        # v1, dev and pr were pulled before main and the second commit: main's list is what was pulled up to it
        dates = {c[0]: c[2] for c in commits_of(upstream, "org/h")}
        assert all(c[2] == dates[c[0]] for c in held)  # the upstream's commit date, recorded at pull time
        assert [c[0] for c in commits_of(api, "org/h", "v1")] == [first]
        with pytest.raises(hf.errors.RevisionNotFoundError):
            api.list_repo_commits("org/h", revision="nope")
        with pytest.raises(hf.errors.RepositoryNotFoundError):
            api.list_repo_commits("org/none")


def test_commits_page_by_link(hub, run, root, monkeypatch):
    repo = hub.create_repo("org/long", {"config.json": b"0"})
    for i in range(1, 5):
        repo.commit({"config.json": str(i).encode()})
        assert run("pull", "hf:org/long").exit_code == 0
    monkeypatch.setattr("hubmirror.serving.app.COMMITS_PAGE", 2)
    with MirrorServer(root) as server:
        first = requests.get(f"{server.url}/api/models/org/long/commits/main")
        assert len(first.json()) == 2 and 'rel="next"' in first.headers["Link"]
        listed = [c.commit_id for c in hf.HfApi(endpoint=server.url).list_repo_commits("org/long")]
    assert listed == repo.ancestry(repo.branches["main"])[:4]


def test_the_proxy_answers_refs_and_commits_from_the_upstream(hub, history, root):
    Mirror.open(root, create=True).close()
    with MirrorServer(root, upstream={"endpoint": hub.url}) as server:
        api, upstream = hf.HfApi(endpoint=server.url), hf.HfApi(endpoint=hub.url)
        assert refs_of(api, "org/h") == refs_of(upstream, "org/h")
        for revision in (None, "dev", "v1"):
            assert commits_of(api, "org/h", revision) == commits_of(upstream, "org/h", revision)
        formatted = api.list_repo_commits("org/h", formatted=True)
        assert formatted[0].formatted_title == "<p>third</p>"
        with pytest.raises(hf.errors.RevisionNotFoundError):
            api.list_repo_commits("org/h", revision="nope")


def test_proxy_refs_while_another_ref_is_coming_in(hub, history, root):
    """A ref being fetched never shows as `main`: with the upstream's refs unavailable, the proxy answers the refs
    it resolved itself, each at its own commit and of its own kind (`main` only where it resolved it)."""
    history.commit({"config.json": b'{"dev": 2}', "big.bin": b"x" * 400_000}, branch="dev")
    hub.faults.throttle["big.bin"] = 40_000  # ten seconds
    Mirror.open(root, create=True).close()
    with MirrorServer(root, upstream={"endpoint": hub.url, "timeout": 1}) as server:
        assert requests.get(f"{server.url}/org/h/resolve/dev/config.json").content == b'{"dev": 2}'
        getter = threading.Thread(target=requests.get, args=(f"{server.url}/org/h/resolve/dev/big.bin",),
                                  kwargs={"timeout": 3})
        getter.start()
        hub.faults.status_queue["/api/models/org/h/refs"] = [(503, {})] * 50  # its refs cannot be had upstream:
        refs = requests.get(f"{server.url}/api/models/org/h/refs").json()     # what the proxy resolved answers
        getter.join()
    assert any(r["path"].startswith("/api/models/org/h/refs") for r in hub.requests[-60:])
    branches = {b["name"]: b["targetCommit"] for b in refs["branches"]}
    assert branches["dev"] == history.branches["dev"]
    assert branches.get("main", history.branches["main"]) == history.branches["main"]  # never dev's commit


def test_list_models_answers_every_filter_the_client_sends(hub, run, root):
    cards = {"org/a": "---\nlicense: mit\npipeline_tag: text-classification\nlibrary_name: transformers\n"
                      "tags:\n- en\n---\n",
             "org/b": "---\nlicense: apache-2.0\npipeline_tag: image-classification\nlibrary_name: timm\n---\n",
             "other/c": "---\nlicense: mit\npipeline_tag: text-classification\nlibrary_name: transformers\n---\n"}
    for repo, card in cards.items():
        hub.create_repo(repo, {"README.md": card.encode(), "config.json": b"{}"}, gated=repo == "org/b")
        assert run("pull", f"hf:{repo}", env={"HF_TOKEN": TOKEN}).exit_code == 0
    with MirrorServer(root) as server:
        api = hf.HfApi(endpoint=server.url)

        def ids(**kw) -> list[str]:
            return sorted(m.id for m in api.list_models(**kw))

        assert ids() == ["org/a", "org/b", "other/c"]
        assert ids(author="nobody") == [] and ids(author="org") == ["org/a", "org/b"]
        assert ids(filter="license:mit") == ["org/a", "other/c"]
        assert ids(filter=["transformers", "en"]) == ["org/a"]
        assert ids(pipeline_tag="image-classification") == ["org/b"]
        assert ids(gated=True) == ["org/b"] and ids(gated=False) == ["org/a", "other/c"]
        assert ids(search="other") == ["other/c"]
        assert ids(author="org", filter="license:mit", pipeline_tag="text-classification") == ["org/a"]
        assert len(list(api.list_models(author="org", limit=1))) == 1
        for sort in ("downloads", "likes", "last_modified", "created_at", "trending_score"):
            assert len(list(api.list_models(sort=sort))) == 3, sort
        full = next(iter(api.list_models(author="other", full=True)))
        assert [s.rfilename for s in full.siblings] == ["README.md", "config.json"] and full.sha
        assert full.created_at is not None and full.card_data["license"] == "mit"
        expanded = next(iter(api.list_models(author="other", expand=["siblings", "likes"])))
        assert expanded.siblings is not None and expanded.likes is not None and expanded.downloads is None
        paged = requests.get(f"{server.url}/api/models", params={"author": "org", "limit": 1})
        assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["Link"]
        assert len(requests.get(paged.links["next"]["url"]).json()) == 1


def test_folder_oids_are_the_git_tree_ids(hub, run, root, tmp_path):
    """A folder's `oid` in tree and paths-info is the id git gives that tree (LFS files as their pointers)."""
    files = {"a.txt": b"a", "d/b.txt": b"b", "d/e/c.txt": b"c", "d/e-f.txt": b"dash sorts before slash",
             "d/w.bin": noise(200_000), ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"}
    hub.create_repo("org/t", files)
    assert run("pull", "hf:org/t").exit_code == 0
    work = tmp_path / "git"
    for path, data in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        target.write_bytes(data if not path.endswith(".bin") else
                           f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(data)}\n".encode())
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)

    def git_tree(path: str) -> str:
        return subprocess.run([*git, "rev-parse", f"HEAD:{path}"], check=True, capture_output=True,
                              text=True).stdout.strip()

    with MirrorServer(root) as server:
        api = hf.HfApi(endpoint=server.url)
        folders = {e.path: e.tree_id for e in api.list_repo_tree("org/t", recursive=True)
                   if isinstance(e, hf.hf_api.RepoFolder)}
        assert folders == {"d": git_tree("d"), "d/e": git_tree("d/e")}
        listed = {e.path: e.tree_id for e in api.list_repo_tree("org/t", path_in_repo="d")
                  if isinstance(e, hf.hf_api.RepoFolder)}
        assert listed == {"d/e": git_tree("d/e")}
        info = {e.path: e.tree_id for e in api.get_paths_info("org/t", ["d", "d/e"])}
        assert info == {"d": git_tree("d"), "d/e": git_tree("d/e")}
    upstream = {e.path: e.tree_id for e in hf.HfApi(endpoint=hub.url).list_repo_tree("org/t", recursive=True)
                if isinstance(e, hf.hf_api.RepoFolder)}
    assert upstream == folders  # the imitation answers git's ids too


def test_expanded_tree_and_paths_info_carry_last_commit_and_the_scan(hub, run, root):
    from tests.test_admission import HOSTILE_PICKLES

    repo = hub.create_repo("org/x", {"config.json": b'{"v": 1}', "d/keep.txt": b"same"})
    first = repo.branches["main"]
    assert run("pull", "hf:org/x").exit_code == 0
    second = repo.commit({"config.json": b'{"v": 2}', "d/keep.txt": b"same",
                          "evil.bin": HOSTILE_PICKLES["os.system"]}, title="second")
    assert run("pull", "hf:org/x").exit_code != 0  # the pickle is quarantined; the revision is catalogued
    with MirrorServer(root) as server:
        api = hf.HfApi(endpoint=server.url)
        entries = {e.path: e for e in api.list_repo_tree("org/x", recursive=True, expand=True)}
        assert entries["config.json"].last_commit.oid == second
        assert entries["d/keep.txt"].last_commit.oid == first and entries["d"].last_commit.oid == first
        dates = {c.commit_id: c.created_at for c in hf.HfApi(endpoint=hub.url).list_repo_commits("org/x")}
        assert entries["config.json"].last_commit.date == dates[second]
        assert entries["config.json"].security["status"] == "safe"
        assert entries["evil.bin"].security["status"] == "unsafe" and not entries["evil.bin"].security["safe"]
        plain = next(iter(api.list_repo_tree("org/x")))
        assert plain.last_commit is None  # only asked for
        info = {e.path: e for e in api.get_paths_info("org/x", ["d", "config.json"], expand=True)}
        assert info["d"].last_commit.oid == first and info["config.json"].last_commit.oid == second
        fs = hf.HfFileSystem(endpoint=server.url)
        assert fs.modified("org/x/config.json") == dates[second]
        assert fs.modified("org/x/d/keep.txt") == dates[first]


def test_an_upstream_api_answer_is_read_to_a_bound_and_no_further():
    """Every JSON answer an upstream gives a source (hubmirror.fetch.http.json_body: listings, commits, NGC, GitHub)
    is read to a bound: a longer one is a one-line error, never a process holding all of it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from hubmirror.errors import HubmirrorError
    from hubmirror.fetch.http import json_body, new_session, request

    sent = []

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                self.wfile.write(b"[")
                for _ in range(64):  # 64 MiB offered; the reader stops after its first
                    self.wfile.write(b'"x",' * (1 << 18))
                    sent.append(1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/models"
        resp = request(new_session(), "GET", url, timeout=10, errors=lambda r: None, stream=True)
        with pytest.raises(HubmirrorError, match="answered over 1 MiB"):
            json_body(resp, limit=1 << 20)
    finally:
        server.shutdown()
        server.server_close()
    assert len(sent) < 64  # the reader hung up long before the end
