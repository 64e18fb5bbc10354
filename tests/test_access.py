"""Access control of `serve`: tokens per person (`hubmirror token`), what each may read (repo and gated globs), the
Hub's own auth conventions (HF_TOKEN as a bearer token, /api/whoami-v2), revocation and expiry at once, the audit
log, and tokens never written anywhere in clear. Real huggingface_hub clients against one server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from hubmirror.access.policy import Principal, matcher, restricted
from hubmirror.access.tokens import TokenRecord, issue, split
from hubmirror.store.bucket import SiteError
from tests.conftest import TOKEN
from tests.fakes.mirror_server import MirrorServer

hf = pytest.importorskip("huggingface_hub")
pytest_plugins = ["tests.site_fixtures"]

FILES = {"config.json": b'{"hidden_size": 8}', "README.md": b"# a model\n"}


def make_token(run, name, *args) -> str:
    result = run("token", "create", name, *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


@pytest.fixture
def site(hub, run, root):
    """A mirror holding org/public, org/gated (gated upstream) and team/secret, with tokens: alice (org/*, and the
    gated org/gated), bob (org/public only), ops (admin)."""
    hub.create_repo("org/public", FILES)
    hub.create_repo("org/gated", FILES, gated=True)
    hub.create_repo("team/secret", FILES)
    for repo in ("hf:org/public", "hf:org/gated", "hf:team/secret"):
        assert run("pull", repo, env={"HF_TOKEN": TOKEN}).exit_code == 0
    tokens = {"alice": make_token(run, "alice", "--repos", "org/*", "--gated", "org/gated"),
              "bob": make_token(run, "bob", "--repos", "ORG/Public"),
              "ops": make_token(run, "ops", "--scope", "admin")}
    return tokens


def test_tokens_are_shown_once_and_stored_as_slow_hashes_only(site, run, root):
    assert all(split(t) for t in site.values())
    listed = run.json("token", "list")
    assert {t["name"] for t in listed} == {"alice", "bob", "ops"}
    blob = (root / "catalog.db").read_bytes()
    for token in site.values():
        assert token.encode() not in blob and split(token)[1].encode() not in blob
    assert all("hash" not in t for t in listed)
    secret, record = issue("carol", "read", (), (), None)
    assert record.matches(split(secret)[1]) and not record.matches(split(secret)[1][:-1] + "A")


def test_each_token_sees_what_it_may_and_nothing_else_is_found(site, root, tmp_path):
    with MirrorServer(root) as server:
        def api(token):
            return hf.HfApi(endpoint=server.url, token=token)

        assert requests.get(f"{server.url}/api/models/org/public").status_code == 401  # no token: nothing
        assert api(site["alice"]).model_info("org/gated").id == "org/gated"
        folder = hf.snapshot_download("org/gated", endpoint=server.url, token=site["alice"], cache_dir=tmp_path / "a")
        assert Path(folder, "config.json").read_bytes() == FILES["config.json"]
        for token, repo in ((site["bob"], "org/gated"), (site["bob"], "team/secret"), (site["alice"], "team/secret")):
            with pytest.raises(hf.errors.RepositoryNotFoundError):  # a 404, as for a repo that does not exist
                api(token).model_info(repo)
            with pytest.raises(hf.errors.RepositoryNotFoundError):
                hf.hf_hub_download(repo, "config.json", endpoint=server.url, token=token, cache_dir=tmp_path / "b")
            answer = requests.get(f"{server.url}/{repo}/resolve/main/config.json",
                                  headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 404 and answer.headers["X-Error-Code"] == "RepoNotFound"
        assert [m.id for m in api(site["bob"]).list_models()] == ["org/public"]
        assert sorted(m.id for m in api(site["alice"]).list_models()) == ["org/gated", "org/public"]
        assert sorted(m.id for m in api(site["ops"]).list_models()) == ["org/gated", "org/public", "team/secret"]
        assert sorted(m.id for m in api(site["bob"]).list_models(search="org")) == ["org/public"]
        who = api(site["alice"]).whoami()
        assert who["name"] == "alice" and who["auth"]["accessToken"]["role"] == "read" and who["orgs"] == []
        assert api(site["ops"]).whoami()["auth"]["accessToken"]["role"] == "write"
        with pytest.raises(hf.errors.HfHubHTTPError):
            api("hm_000000000000_" + "A" * 43).whoami()
        bob = {"Authorization": f"Bearer {site['bob']}"}
        assert requests.get(f"{server.url}/metrics", headers=bob).status_code == 403
        assert requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {site['ops']}"}).ok


def test_a_revoked_or_expired_token_is_refused_at_once(site, run, root, monkeypatch):
    with MirrorServer(root) as server:
        def status(token):
            return requests.get(f"{server.url}/api/models/org/public",
                                headers={"Authorization": f"Bearer {token}"}).status_code

        assert status(site["bob"]) == 200
        assert run("token", "revoke", "bob").exit_code == 0
        assert status(site["bob"]) == 401  # the next request, same server, same process
        short = make_token(run, "temp", "--expires", "1m")
        assert status(short) == 200
        real = time.time
        with monkeypatch.context() as later:
            later.setattr(time, "time", lambda: real() + 61)  # a minute and a second on
            assert status(short) == 401
    assert run("token", "revoke", "nobody").exit_code == 2


def test_the_audit_log_says_who_read_what_and_never_a_token(site, run, root, tmp_path, capfd):
    audit = tmp_path / "audit.jsonl"
    from hubmirror.access.audit import AuditLog

    log = AuditLog(str(audit))
    from starlette.testclient import TestClient

    from hubmirror.plugin_manager import PluginRegistry
    from hubmirror.serving.app import create_app

    client = TestClient(create_app(root, registry=PluginRegistry(load_entry_points=False), audit=log))
    for who in ("alice", "bob"):
        client.get("/org/public/resolve/main/config.json", headers={"Authorization": f"Bearer {site[who]}"})
    client.get("/org/gated/resolve/main/config.json", headers={"Authorization": f"Bearer {site['bob']}"})
    log.close()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(l["who"], l["repo"], l["status"]) for l in lines] == [
        ("alice", "org/public", 200), ("bob", "org/public", 200), ("bob", "org/gated", 404)]
    assert lines[0]["bytes"] == len(FILES["config.json"]) and lines[0]["path"] == "config.json"
    text = audit.read_text() + capfd.readouterr().err
    assert not any(t in text for t in site.values())
    summary = run.json("audit", str(audit), "--repo", "ORG/*")
    assert {(r["who"], r["repo"], r["requests"]) for r in summary} == {("alice", "org/public", 1),
                                                                        ("bob", "org/public", 1)}


def test_web_sessions_are_per_person(site, root):
    with MirrorServer(root) as server:
        pages = {}
        for who in ("alice", "bob"):
            browser = requests.Session()
            login = browser.post(f"{server.url}/login", data={"token": site[who], "next": "/models"})
            assert login.status_code == 200 and site[who] not in browser.cookies.get("hubmirror_session")
            pages[who] = browser.get(f"{server.url}/models").text
            assert f">{who}<" in pages[who]
            assert browser.get(f"{server.url}/org/gated").status_code == (200 if who == "alice" else 404)
            assert browser.get(f"{server.url}/api/models/org/public").status_code == 200  # the session opens the API
        assert "org/gated" in pages["alice"] and "org/gated" not in pages["bob"]
        assert "team/secret" not in pages["alice"] + pages["bob"]
        refused = requests.post(f"{server.url}/login", data={"token": "hm_nope", "next": "/"})
        assert refused.status_code == 401


def test_the_proxy_fetches_nothing_for_a_token_that_may_not_read(hub, run, root, monkeypatch):
    from hubmirror.mirror import Mirror

    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the server's own token: it may read the gated repo upstream

    Mirror.open(root, create=True).close()
    hub.create_repo("org/open", FILES)
    hub.create_repo("org/licensed", FILES, gated=True)
    hub.create_repo("elsewhere/x", FILES)
    bob = make_token(run, "bob", "--repos", "org/*")
    alice = make_token(run, "alice", "--repos", "org/*", "--gated", "*")
    with MirrorServer(root, upstream={"endpoint": hub.url}) as server:
        def get(token, repo):
            return requests.get(f"{server.url}/api/models/{repo}", headers={"Authorization": f"Bearer {token}"})

        hub.requests.clear()
        assert get(bob, "elsewhere/x").status_code == 404
        assert not [r for r in hub.requests if "elsewhere" in r["path"]]  # never asked upstream
        assert get(bob, "org/licensed").status_code == 404
        # resolved (its model info and card read for the metadata that says it is gated), no file of it fetched
        assert not [r for r in hub.requests if r["path"].endswith("/config.json") and "licensed" in r["path"]]
        assert get(bob, "org/open").status_code == 200
        assert get(alice, "org/licensed").status_code == 200  # alice may read gated repos: fetched for her
        assert get(bob, "org/licensed").status_code == 404  # and still not for bob
        got = requests.get(f"{server.url}/org/licensed/resolve/main/config.json",
                           headers={"Authorization": f"Bearer {alice}"})
        assert got.status_code == 200 and got.content == FILES["config.json"]


def test_policy_globs_match_any_case_and_restricted_models():
    many = tuple(f"team{i}/*" for i in range(1000)) + ("exact/Name",)
    test = matcher(many)
    assert test("team999/x") and test("exact/name") and not test("team1000/x")
    reader = Principal("r", "read", repos=("Org/*",))
    assert reader.may_read("org/A", False) and not reader.may_read("org/A", True) and not reader.may_read("x/y", False)
    assert Principal("a", "admin").may_read("x/y", True)
    assert restricted({"gated": 1}) and restricted({"metadata": '{"private": true}'})
    assert not restricted({"gated": 0, "metadata": '{"private": false}'})


@pytest.mark.parametrize("value", [None, [], {"id": "x"}, {"id": "0" * 12, "name": "a b", "scope": "read",
                                                           "hash": "scrypt$x$y"},
                                   {"id": "0" * 12, "name": "a", "scope": "root", "hash": "x"}])
def test_hostile_token_records_are_refused(value):
    with pytest.raises(ValueError):
        TokenRecord.from_json(value)


def test_tokens_on_a_bucket_reach_every_host_and_a_revocation_too(hosts, registry, hub):
    a, b = hosts("a"), hosts("b")
    _, record = issue("svc", "read", ("org/*",), (), None)
    a.writer.put_token(record)
    b.writer.refresh()
    assert set(b.catalog.token_records()) == {record.id}
    b.writer.revoke_token(record.id)
    a.writer.refresh()
    assert a.catalog.token_records() == {}
    with pytest.raises(SiteError, match="exists"):
        a.writer.put_token(record)  # a revoked id never comes back, even from its own record
    b.writer.refresh()
    assert b.catalog.token_records() == {}


def test_the_hf_cli_transformers_and_hffilesystem_send_hf_token(site, root, tmp_path):
    """The clients as people use them, each with its own HF_TOKEN: the `hf` CLI (whoami, download), transformers
    (from_pretrained) and HfFileSystem."""
    hf_cli = Path(sys.executable).parent / "hf"
    with MirrorServer(root) as server:
        def env(who):
            values = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": site[who], "HF_HUB_DISABLE_XET": "1",
                      "HF_HOME": str(tmp_path / f"home-{who}")}
            values.pop("HF_HUB_OFFLINE", None)
            return values

        def cli(who, *args):
            return subprocess.run([str(hf_cli), *args], env=env(who), capture_output=True, text=True, timeout=120,
                                  check=False)

        assert "alice" in cli("alice", "auth", "whoami").stdout
        got = cli("alice", "download", "org/gated", "config.json")
        path = got.stdout.strip().splitlines()[-1].strip().removeprefix("path:").strip()  # "  path: /…/config.json"
        assert got.returncode == 0 and Path(path).read_bytes() == FILES["config.json"]
        refused = cli("bob", "download", "org/gated", "config.json")
        assert refused.returncode != 0 and site["bob"] not in refused.stdout + refused.stderr
        load = ("import sys; from transformers import PretrainedConfig; "
                "print(PretrainedConfig.from_pretrained('org/gated').hidden_size)")
        done = subprocess.run([sys.executable, "-c", load], env=env("alice"), capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "8", done.stderr[-2000:]
        denied = subprocess.run([sys.executable, "-c", load], env=env("bob"), capture_output=True, text=True,
                                timeout=300, check=False)
        assert denied.returncode != 0 and "org/gated" in denied.stderr
        fs = hf.HfFileSystem(endpoint=server.url, token=site["alice"], skip_instance_cache=True)
        assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("org/gated", detail=False)) == sorted(FILES)
        with pytest.raises(FileNotFoundError):
            hf.HfFileSystem(endpoint=server.url, token=site["bob"], skip_instance_cache=True).ls("org/gated")


def test_search_for_a_reader_is_the_unfiltered_order_less_what_it_may_not_see(tmp_path):
    """The filtered search (the access table, read in slices) gives exactly the unfiltered ranking minus the models
    hidden from the reader, for every order and paging, and follows every write to the models (triggers)."""
    from hubmirror.catalog import Catalog
    from hubmirror.upstream import ModelMetadata

    catalog = Catalog(tmp_path / "catalog.db")
    metas = [ModelMetadata("hf", f"{org}/model-{i}", task="text-classification", description=f"shared words {i % 3}",
                           downloads=(i * 7919) % 1000, likes=i % 17, gated=(i % 11 == 0),
                           extra={"private": True} if i % 13 == 0 else {})
             for i, org in ((i, ("team-a", "team-b", "Other")[i % 3]) for i in range(600))]
    catalog.record_index(metas, "huggingface", "test")
    reader = Principal("r", "read", repos=("team-a/*", "OTHER/model-1*"), gated=("team-a/model-1*",))

    def visible(key, hidden):
        return reader.may_read(key.partition(":")[2], hidden)

    def allowed(row):
        return reader.may_read(row["model_id"], restricted(row))

    for query in ("", "shared", "shared words 1", "model"):
        for sort in (None, "downloads", "likes", "lastModified"):
            for offset in (0, 7):
                whole = catalog.search(query, sort=sort, limit=700)
                expected = [r["key"] for r in whole if allowed(r)][offset:offset + 20]
                got = [r["key"] for r in catalog.search(query, sort=sort, limit=20, offset=offset, visible=visible)]
                assert got == expected, (query, sort, offset)
    assert "hf:team-a/model-3" in [r["key"] for r in catalog.search("shared", limit=500, visible=visible)]
    catalog.record_index([ModelMetadata("hf", "team-a/model-3", description="shared words 0", downloads=5,
                                        gated=True)], "huggingface", "test")  # now gated, and not granted
    assert "hf:team-a/model-3" not in [r["key"] for r in catalog.search("shared", limit=500, visible=visible)]
    assert "hf:team-a/model-3" in [r["key"] for r in catalog.search("shared", limit=700)]
    catalog.close()
