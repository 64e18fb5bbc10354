"""`hubmirror serve --upstream`: a cold mirror in front of the Hub imitation pulls what clients ask for, once, with
the usual verification and admission scan, and keeps serving it when the upstream is gone."""

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from hubmirror.catalog import Catalog
from hubmirror.mirror import Mirror
from hubmirror.serving.hf_api import HubError
from tests.conftest import TOKEN, Cli, noise
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID, timm_hub_repo
from tests.test_admission import HOSTILE_PICKLES
from tests.test_serve import EMBED

hf = pytest.importorskip("huggingface_hub")
CLIENT_TOKEN = "hf_client_token_never_forwarded"
TIMM_NAME = "test_vit.r160_in1k"
TIMM_LOAD = """
import sys, timm, torch
from safetensors.torch import load_file
model = timm.create_model(sys.argv[1], pretrained=True)
reference = load_file(sys.argv[2])
print(all(torch.equal(v, reference[k]) for k, v in model.state_dict().items()))
"""


@pytest.fixture
def cold(root):
    Mirror.open(root, create=True).close()
    return root


def proxy(root, hub, **settings):
    return MirrorServer(root, upstream={"endpoint": hub.url, **settings})


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in Path(folder).rglob("*") if p.is_file()}


def in_client(code: str, endpoint: str, home: Path, *args: str) -> str:
    """The last line `code` prints, run with `args` in a fresh interpreter whose huggingface_hub asks `endpoint` and
    caches in `home`."""
    env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_ENDPOINT": endpoint, "HF_HOME": str(home)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def wait_catalogued(root: Path, repo: str, timeout: float = 60) -> None:
    """Wait until the proxy has catalogued `repo` (every file in), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        catalog = Catalog(root / "catalog.db", create=False)
        ids = [m["model_id"] for m in catalog.models(cached_only=True)]
        catalog.close()
        if repo in ids:
            return
        assert time.monotonic() < deadline, f"{repo} not catalogued within {timeout} s"
        time.sleep(0.1)


def test_cold_proxy_serves_clients_and_keeps_serving_without_upstream(minilm_hub, minilm, cold, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the server's own token, for upstream
    expected = {name: sha256(path) for name, path in minilm.items()}
    with proxy(cold, minilm_hub) as server:
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "a",
                                      token=CLIENT_TOKEN)
        assert tree(folder) == expected
        path = hf.hf_hub_download(MINILM_REPO_ID, "config.json", endpoint=server.url, cache_dir=tmp_path / "b")
        assert Path(path).read_bytes() == minilm["config.json"].read_bytes()
        seen = {r["authorization"] for r in minilm_hub.requests}
        assert f"Bearer {CLIENT_TOKEN}" not in seen and f"Bearer {TOKEN}" in seen
        metrics = requests.get(f"{server.url}/metrics").text
        assert 'hubmirror_proxy_requests_total{outcome="miss"}' in metrics
        fetched = f'hubmirror_upstream_fetches_total{{status="ok"}} {len(minilm) + 1}.0'  # the resolution, each file
        assert fetched in metrics
        minilm_hub.stop()  # from here on, only what the proxy cached answers
        asked = len(minilm_hub.requests)
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "c")
        assert tree(folder) == expected
        path = hf.hf_hub_download(MINILM_REPO_ID, "modules.json", endpoint=server.url, cache_dir=tmp_path / "d")
        assert Path(path).read_bytes() == minilm["modules.json"].read_bytes()
        assert len(minilm_hub.requests) == asked
        wait_catalogued(cold, MINILM_REPO_ID)
    run = Cli(cold)  # a normal catalog revision: searchable, verifiable
    assert [m["key"] for m in run.json("search", "MiniLM")] == [f"hf:{MINILM_REPO_ID}"]
    assert run.json("verify")["ok"] is True


def test_concurrent_cold_clients_cause_one_upstream_download_per_file(hub, cold, tmp_path):
    files = {"config.json": b'{"a": 1}', "weights.bin": noise(200_000), "sub/vocab.txt": b"a\nb\n"}
    hub.create_repo("org/many", files)
    hub.faults.throttle["weights.bin"] = 400_000  # half a second: the clients all arrive during the pull
    with proxy(cold, hub) as server:
        results, errors = {}, []

        def client(i):
            try:
                results[i] = tree(hf.snapshot_download("org/many", endpoint=server.url, cache_dir=tmp_path / str(i)))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        wait_catalogued(cold, "org/many")
    assert errors == [] and len(results) == 16
    assert all(r == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
               for r in results.values())
    downloads = [r["path"].split("?")[0] for r in hub.requests if r["method"] == "GET"
                 and ("/resolve/" in r["path"] or r["path"].startswith("/repos/"))]
    fetched = [p for p in downloads if not p.endswith("/README.md")]  # the pull reads the card too
    assert sorted(p.rsplit("/", 1)[-1] for p in fetched if "/resolve/" in p) == ["config.json", "vocab.txt",
                                                                              "weights.bin"]
    assert len([p for p in fetched if p.startswith("/repos/")]) <= 1  # weights.bin's CDN GET, if LFS
    catalog = Catalog(cold / "catalog.db", create=False)
    assert len(catalog.revisions("hf:org/many")) == 1  # catalogued once
    catalog.close()


def test_a_malicious_pickle_upstream_is_quarantined_and_never_served(hub, cold, tmp_path):
    evil = HOSTILE_PICKLES["os.system"]
    hub.create_repo("org/evil", {"config.json": b"{}", "pytorch_model.bin": evil})
    with proxy(cold, hub) as server:
        url = f"{server.url}/org/evil/resolve/main"
        refused = requests.get(f"{url}/pytorch_model.bin")
        assert refused.status_code == 403 and "quarantined" in refused.headers["X-Error-Message"]
        assert evil not in refused.content
        assert requests.get(f"{url}/config.json").content == b"{}"
        with pytest.raises(hf.errors.LocalEntryNotFoundError) as raised:  # huggingface_hub's wrapping of the 403
            hf.hf_hub_download("org/evil", "pytorch_model.bin", endpoint=server.url, cache_dir=tmp_path / "c")
        assert raised.value.__cause__.response.status_code == 403
    catalog = Catalog(cold / "catalog.db", create=False)
    assert catalog.is_quarantined(hashlib.sha256(evil).hexdigest())
    catalog.close()


def test_a_file_of_a_fetch_that_failed_before_its_request_looked_gets_the_fetchs_error(hub, cold, tmp_path):
    """A request resolved upstream whose fetch then fails before the request asks for its file (a gated repo's file
    fails at once) gets that failure as the Hub says it (GatedRepo), not a RevisionNotFound: the failed fetch stays
    the revision's answer until it is resolved afresh."""
    hub.create_repo("org/gated", {"config.json": b"{}"}, gated=True)
    with proxy(cold, hub) as server:
        view = server.app.state.view
        view.upstream.ensure(view, "org/gated", None)  # resolved, the fetch started
        deadline = time.monotonic() + 30
        while view.upstream._fetches and time.monotonic() < deadline:  # ...and failed: nothing is fetching now
            time.sleep(0.02)
        fetch = view.upstream.fetch("org/gated", None)
        assert fetch is not None and view.commit(view.repos()["org/gated"], None) == (fetch.commit, fetch.commit)
        with pytest.raises(HubError) as raised:
            view.upstream.landed(fetch, "org/gated", "config.json")
        assert raised.value.status == 401 and raised.value.code == "GatedRepo"
        from huggingface_hub.errors import GatedRepoError

        with pytest.raises(GatedRepoError):  # and from the client, resolved afresh
            hf.hf_hub_download("org/gated", "config.json", endpoint=server.url, cache_dir=tmp_path / "c")


def test_hub_errors_pass_through_and_allow_deny(hub, cold, tmp_path):
    hub.create_repo("org/ok", {"config.json": b"{}"})
    hub.create_repo("other/no", {"config.json": b"{}"})
    hub.create_repo("org/gated", {"config.json": b"{}"}, gated=True)
    with proxy(cold, hub, allow=("org/*",), deny=("org/secret*",)) as server:
        api = hf.HfApi(endpoint=server.url)
        with pytest.raises(hf.errors.RepositoryNotFoundError):
            api.model_info("org/nothing")
        with pytest.raises(hf.errors.RevisionNotFoundError):
            api.model_info("org/ok", revision="nope")
        with pytest.raises(hf.errors.EntryNotFoundError):
            hf.hf_hub_download("org/ok", "nope.bin", endpoint=server.url, cache_dir=tmp_path / "c")
        with pytest.raises(hf.errors.GatedRepoError):  # the server's token (none here) may not read it
            hf.hf_hub_download("org/gated", "config.json", endpoint=server.url, cache_dir=tmp_path / "c")
        for denied in ("other/no", "org/secret-model", "Org/Secret-Model", "ORG/SECRET-x", "Other/No"):
            answer = requests.get(f"{server.url}/api/models/{denied}")  # the Hub resolves ids whatever their case
            assert answer.headers["X-Error-Code"] == "RepoNotFound" and "--allow/--deny" in answer.headers[
                "X-Error-Message"], denied
        assert not [r for r in hub.requests if "other/no" in r["path"].lower() or "secret" in r["path"].lower()]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with MirrorServer(cold, upstream={"endpoint": dead}) as server:  # nothing cached, upstream down: 502
        missing = requests.get(f"{server.url}/api/models/org/elsewhere")
        assert missing.status_code == 502 and "cannot reach" in missing.headers["X-Error-Message"]


def test_refs_are_rechecked_after_the_ttl_and_commits_never(hub, cold):
    repo = hub.create_repo("org/moving", {"config.json": b'{"v": 1}'})
    first = repo.branches["main"]

    def infos():
        return len([r for r in hub.requests if r["path"].startswith("/api/models/org/moving/revision/")])

    with proxy(cold, hub, ref_ttl=3600) as server:
        url = f"{server.url}/org/moving/resolve"
        assert requests.get(f"{url}/main/config.json").content == b'{"v": 1}'
        asked = infos()
        second = repo.commit({"config.json": b'{"v": 2}'})
        assert requests.get(f"{url}/main/config.json").content == b'{"v": 1}'  # within the ttl: the known commit
        assert requests.get(f"{url}/{first}/config.json").content == b'{"v": 1}'
        assert infos() == asked
    with proxy(cold, hub, ref_ttl=0) as server:
        url = f"{server.url}/org/moving/resolve"
        assert requests.get(f"{url}/main/config.json").content == b'{"v": 2}'  # re-resolved
        assert requests.get(f"{url}/{second}/config.json").content == b'{"v": 2}'
        asked = infos()
        for _ in range(3):
            assert requests.get(f"{url}/{first}/config.json").content == b'{"v": 1}'
        assert infos() == asked  # a catalogued commit is never asked about again
        hub.stop()  # upstream down: the last known commit of main is still served
        assert requests.get(f"{url}/main/config.json").content == b'{"v": 2}'


def test_a_file_waits_for_itself_only_and_a_slow_one_is_a_504_not_a_hang(hub, cold, tmp_path):
    hub.create_repo("org/slow", {"config.json": b"{}", "weights.bin": noise(100_000)})
    hub.faults.throttle["weights.bin"] = 20_000  # five seconds, past the proxy's timeout
    with proxy(cold, hub, timeout=2) as server:
        path = hf.hf_hub_download("org/slow", "config.json", endpoint=server.url, cache_dir=tmp_path)
        assert Path(path).read_bytes() == b"{}"  # served without waiting for weights.bin
        listed = hf.HfApi(endpoint=server.url).list_repo_tree("org/slow", recursive=True)
        assert {f.path: f.size for f in listed} == {"config.json": 2, "weights.bin": 100_000}  # from the upstream's
        answer = requests.get(f"{server.url}/org/slow/resolve/main/weights.bin", timeout=30)
        assert answer.status_code == 504 and "did not deliver" in answer.headers["X-Error-Message"]
        catalog = Catalog(cold / "catalog.db", create=False)
        assert catalog.models(cached_only=True) == []  # not catalogued before every file is in
        catalog.close()


def test_sentence_transformers_loads_through_a_cold_proxy(minilm_hub, minilm, cold, tmp_path):
    pytest.importorskip("sentence_transformers")
    direct = in_client(EMBED, minilm_hub.url, tmp_path / "direct", MINILM_REPO_ID)
    with proxy(cold, minilm_hub) as server:
        assert in_client(EMBED, server.url, tmp_path / "cold", MINILM_REPO_ID) == direct
        minilm_hub.stop()
        asked = len(minilm_hub.requests)
        assert in_client(EMBED, server.url, tmp_path / "fresh", MINILM_REPO_ID) == direct
        assert len(minilm_hub.requests) == asked


def test_timm_create_model_pretrained_loads_through_a_cold_proxy(hub, cold, tmp_path):
    pytest.importorskip("timm")
    files = timm_hub_repo(TIMM_NAME, tmp_path / "repo")
    hub.create_repo(f"timm/{TIMM_NAME}", files)
    weights = str(files["model.safetensors"])
    with proxy(cold, hub) as server:
        assert in_client(TIMM_LOAD, server.url, tmp_path / "cold", TIMM_NAME, weights) == "True"
        hub.stop()
        assert in_client(TIMM_LOAD, server.url, tmp_path / "fresh", TIMM_NAME, weights) == "True"
        wait_catalogued(cold, f"timm/{TIMM_NAME}")


def test_serve_upstream_options(run, monkeypatch, cold):
    got = {}
    monkeypatch.setattr("hubmirror.serving.app.serve", lambda *a, **kw: got.update(kw))
    monkeypatch.setattr("hubmirror.writer.CatalogWriter.start_refresher", lambda *a: None)
    assert run("serve", "--upstream", "--allow", "org/*", "--deny", "org/x", "--ref-ttl", "5").exit_code == 0
    assert got["upstream"] == {"endpoint": run.endpoint, "ref_ttl": 5.0, "timeout": 300.0, "allow": ("org/*",),
                               "deny": ("org/x",)}
    assert run("serve", "--upstream", "http://hub.example").exit_code == 0
    assert got["upstream"]["endpoint"] == "http://hub.example"
    assert run("serve").exit_code == 0 and got["upstream"] is None


def test_serve_upstream_starts_a_mirror_from_nothing_and_plain_serve_does_not(run, monkeypatch, root):
    monkeypatch.setattr("hubmirror.serving.app.serve", lambda *a, **kw: None)
    assert not root.exists()
    plain = run("serve")
    assert plain.exit_code != 0 and "no mirror at" in plain.output and not root.exists()
    assert run("serve", "--upstream").exit_code == 0
    assert (root / "catalog.db").is_file()
    Catalog(root / "catalog.db", create=False).close()


def test_clients_that_give_up_do_not_hold_the_server(hub, cold):
    """40 clients ask for a file still crawling in from upstream and hang up after a second: their worker threads
    are free again at once (not at --upstream-timeout), so a cached file is answered as fast as ever."""
    hub.create_repo("org/cached", {"config.json": b"{}"})
    hub.create_repo("org/slow", {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
                                 "w.bin": noise(2_000_000)})
    hub.faults.throttle["w.bin"] = 50_000  # forty seconds
    with proxy(cold, hub, timeout=120) as server:
        assert requests.get(f"{server.url}/org/cached/resolve/main/config.json", timeout=30).status_code == 200
        wait_catalogued(cold, "org/cached")

        def give_up():
            try:
                requests.get(f"{server.url}/org/slow/resolve/main/w.bin", timeout=1)
            except requests.RequestException:
                pass

        clients = [threading.Thread(target=give_up) for _ in range(40)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=30)
        time.sleep(1)  # the server notices within its poll
        started = time.monotonic()
        assert requests.get(f"{server.url}/org/cached/resolve/main/config.json", timeout=30).status_code == 200
        assert time.monotonic() - started < 3
