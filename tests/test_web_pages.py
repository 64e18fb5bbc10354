"""The web catalog over HTTP (a real `serve` on 127.0.0.1, a mirror of real pulled models): what `/`, `/models`,
model and tree pages show, that hostile cards and catalog strings execute nothing, the snippets work as printed,
and the `--token` login."""

import hashlib
import os
import pickle
import re
import subprocess
import sys
import time
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from hubmirror.catalog import Catalog
from hubmirror.upstream import ModelMetadata
from tests.conftest import Cli
from tests.fakes.hf_hub import FakeHub
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID, facenet_files, minilm_files

EVIL_REPO = "org/evil-card"
HOSTILE_CARD = b"""---
license: mit
pipeline_tag: text-classification
library_name: transformers
---
# A friendly model

<script>window.__pwned = "script"</script>
<img src="x" onerror="window.__pwned = 'onerror'">
<a href="javascript:window.__pwned='link'">click me</a> [md link](javascript:window.__pwned='md')
<a href="data:text/html,<script>alert(1)</script>">data link</a>
<iframe src="/"></iframe><svg onload="window.__pwned='svg'"><circle r="1"/></svg>
<div onclick="window.__pwned='click'" style="background:url(javascript:alert(1))">styled</div>
<form action="/login" method="post"><input name="token"></form>
"""
HOSTILE_DEVICE = "cpu</text><script>window.__pwned='plot'</script><text>"
LISTED = 35  # models indexed but not cached: more than one page of /models


class _Pickled:
    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.fixture(scope="module")
def web_mirror(tmp_path_factory):
    """A mirror with MiniLM (real files, benchmark rows), a repo with a hostile card and a quarantined pickle, a real
    torch state dict from a `file:` pull, and LISTED catalogued-only models."""
    root = tmp_path_factory.mktemp("web") / "mirror"
    with pytest.MonkeyPatch.context() as env, FakeHub(xet=False) as hub:
        for name in ("HF_TOKEN", "HF_ENDPOINT", "HUBMIRROR_HOME"):
            env.delenv(name, raising=False)
        env.setenv("HF_HOME", str(root.parent / "hf-home"))
        env.setenv("HF_HUB_DISABLE_XET", "1")
        hub.create_repo(MINILM_REPO_ID, minilm_files())
        hub.create_repo(EVIL_REPO, {"README.md": HOSTILE_CARD, "config.json": b"{}",
                                    "pytorch_model.bin": pickle.dumps(_Pickled())})
        run = Cli(root, hub.url)
        assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
        assert run("pull", f"hf:{EVIL_REPO}").exit_code == 1  # the pickle is quarantined, the rest catalogued
        assert run("pull", f"file:{facenet_files()['pnet.pt']}").exit_code == 0
    catalog = Catalog(root / "catalog.db")
    commit = catalog.model(f"hf:{MINILM_REPO_ID}")["latest_commit"]
    for device, batch, p50, throughput in (("cpu", 1, 4.2, 238.0), ("cpu", 8, 19.5, 410.0),
                                           (HOSTILE_DEVICE, 2, 7.0, 280.0)):
        catalog.record_benchmark({"model_key": f"hf:{MINILM_REPO_ID}", "commit_id": commit, "status": "ok",
                                  "device": device, "dtype": "fp32", "batch_size": batch, "latency_p50_ms": p50,
                                  "latency_p90_ms": p50 * 1.2, "latency_p99_ms": p50 * 1.5,
                                  "throughput": throughput, "peak_memory_bytes": 300 << 20, "parameters": 22_713_216,
                                  "environment": "{}"})
    catalog.record_index([ModelMetadata("hf", f"acme/widget-{i:02d}", task="image-classification", library="timm",
                                        license="apache-2.0", description="a widget detector", downloads=1000 + i,
                                        likes=LISTED - i)
                          for i in range(LISTED)], "hubmirror.plugins.huggingface")
    catalog.close()
    return root


@pytest.fixture(scope="module")
def site(web_mirror):
    with MirrorServer(web_mirror) as server:
        yield server


class _Page(HTMLParser):
    """Every tag with its attributes, and the page's text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def get(site, path: str, status: int = 200, **kwargs) -> requests.Response:
    response = requests.get(site.url + path, timeout=30, **kwargs)
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    return response


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_home_shows_what_the_mirror_holds(site, web_mirror):
    response = get(site, "/")
    assert response.headers["content-type"].startswith("text/html")
    catalog = Catalog(web_mirror / "catalog.db")
    stored = sum(r["size_bytes"] for r in catalog.models(cached_only=True, source="hf"))
    catalog.close()
    page = response.text
    row = re.search(r'<tr><td><a href="/models\?source=hf">hf</a></td><td>(\d+)</td>\s*<td>([^<]+)</td><td>(\d+)</td>',
                    page)
    assert row and row.group(1) == "2" and row.group(3) == str(2 + LISTED)
    assert row.group(2) == f"{stored / 1024 / 1024:.1f} MiB"
    latest = page[page.index('id="latest"'):page.index('id="awaiting"')]
    assert f'href="/{EVIL_REPO}"' in latest and f'href="/{MINILM_REPO_ID}"' in latest
    awaiting = page[page.index('id="awaiting"'):]
    assert f'href="/{EVIL_REPO}"' in awaiting and "pytorch_model.bin" in awaiting
    assert MINILM_REPO_ID not in awaiting


def test_search_filters_sorting_and_paging(site):
    def results(query: str) -> list[str]:
        page = get(site, "/models?" + query).text
        return re.findall(r'<li class="result">\s*(?:<a class="model" href="/([^"]+)">|<span class="model">([^<]+))',
                          page)

    assert results("search=minilm") == [(MINILM_REPO_ID, "")]
    assert results("search=evil&pipeline_tag=text-classification") == [(EVIL_REPO, "")]
    assert results("search=evil&pipeline_tag=image-classification") == []
    assert results("license=license:mit&cached=true") == [(EVIL_REPO, "")]
    first = get(site, "/models?search=widget&library=timm&cached=false").text
    listed = re.findall(r'<span class="model">hf:acme/widget-(\d\d)</span>', first)
    assert listed == [f"{i:02d}" for i in range(LISTED - 1, LISTED - 31, -1)]  # most downloaded first, 30 a page
    nxt = re.search(r'<a rel="next" id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = get(site, nxt).text
    assert re.findall(r'<span class="model">hf:acme/widget-(\d\d)</span>', second) == \
        [f"{i:02d}" for i in range(LISTED - 31, -1, -1)]
    assert 'rel="next"' not in second and 'rel="prev"' in second
    assert set(results("sort=fastest")) == {(MINILM_REPO_ID, "")}  # once per device it ran on
    assert re.search(r"<strong>410.0/s</strong> on cpu\s", get(site, "/models?sort=fastest").text)  # its best run
    assert results("benchmarked=true") == [(MINILM_REPO_ID, "")]
    assert results("benchmarked=true&search=evil") == []
    widgets = [f"hf:acme/widget-{i:02d}" for i in range(LISTED)]
    assert results("search=widget&sort=downloads") == [("", w) for w in reversed(widgets)][:30]
    assert results("search=widget&sort=likes&p=1") == [("", w) for w in widgets][30:]


@pytest.mark.parametrize("query, message", [("sort=trending", "sort='trending' is not one of"),
                                            ("p=x", "p must be a page number"), ("cached=maybe", "cached must be")])
def test_bad_search_parameters_are_a_clear_400(site, query, message):
    page = get(site, "/models?" + query, status=400).text
    assert message in page.replace("&#39;", "'")


def test_model_page_digests_verdicts_card_benchmarks(site, web_mirror):
    files = minilm_files()
    response = get(site, f"/{MINILM_REPO_ID}")
    page = response.text
    for path, source in files.items():  # every file, its size and its sha256, a link to its bytes
        row = page[page.index(f'data-path="{path}"'):].split("</tr>")[0]
        assert sha256(source) in row and '<span class="verdict">clean</span>' in row
    assert "sentence-similarity" in page and "sentence-transformers" in page
    assert re.search(r'<article class="card" id="card">\s*<h1>', page)  # the real card, rendered
    commit = Catalog(web_mirror / "catalog.db").model(f"hf:{MINILM_REPO_ID}")["latest_commit"]
    assert f'<code id="commit">{commit}</code>' in page
    assert f'href="/{MINILM_REPO_ID}/tree/main"' in page
    plots = page[page.index('id="plots"'):page.index('id="benchmarks"')]
    assert plots.count("<svg") == 2 and "<script" not in plots and "batch 8" in plots
    assert "&lt;script&gt;" in page  # the hostile device name, as text
    assert "410.0" in page and "19.50" in page
    _assert_self_contained(response, site)


def test_quarantined_file_and_hostile_card(site):
    response = get(site, f"/{EVIL_REPO}")
    page = response.text
    row = page[page.index('data-path="pytorch_model.bin"'):].split("</tr>")[0]
    assert 'class="verdict quarantined"' in row and "posix.system" in row and "<a href" not in row
    card = page[page.index('id="card"'):page.index("</article>")]
    assert "A friendly model" in card and "click me" in card
    tags = _Page(card).tags
    assert {t for t, _ in tags} <= {"article", "h1", "p", "img", "a", "div"}
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on") or a == "style"]
    assert not [v for _, attrs in tags for v in attrs.values() if v and re.match(r"\s*(javascript|data):", v, re.IGNORECASE)]
    assert "<script" not in page and "<iframe" not in page and "<form" not in card
    assert requests.get(f"{site.url}/{EVIL_REPO}/resolve/main/pytorch_model.bin", timeout=30).status_code == 403
    _assert_self_contained(response, site)


def _assert_self_contained(response: requests.Response, site) -> None:
    """A strict CSP, and nothing on the page that loads from anywhere but this server (a card's links to other sites
    stay links)."""
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "'unsafe-inline'" not in csp
    for tag, attrs in _Page(response.text).tags:
        for name in ("src", "action") + (("href",) if tag != "a" else ()):
            value = attrs.get(name)
            assert value is None or value.startswith(site.url) or not re.match(r"[a-z][a-z0-9+.-]*:", value, re.IGNORECASE), \
                (tag, name, value)


def test_tree_pages(site, web_mirror):
    files = minilm_files()
    top = get(site, f"/{MINILM_REPO_ID}/tree/main").text
    assert f'href="/{MINILM_REPO_ID}/tree/main/1_Pooling">1_Pooling/</a>' in top
    assert sha256(files["config.json"]) in top and sha256(files["1_Pooling/config.json"]) not in top
    inner = get(site, f"/{MINILM_REPO_ID}/tree/main/1_Pooling").text
    assert sha256(files["1_Pooling/config.json"]) in inner
    commit = Catalog(web_mirror / "catalog.db").model(f"hf:{MINILM_REPO_ID}")["latest_commit"]
    assert sha256(files["config.json"]) in get(site, f"/{MINILM_REPO_ID}/tree/{commit}").text
    assert "does not exist" in get(site, f"/{MINILM_REPO_ID}/tree/main/nope", status=404).text
    get(site, f"/{MINILM_REPO_ID}/tree/v9", status=404)
    get(site, "/org/unknown", status=404)
    assert get(site, f"/api/models/{MINILM_REPO_ID}").json()["id"] == MINILM_REPO_ID  # the API is untouched


def _snippets(page: str) -> dict[str, tuple[str, str | None]]:
    found = {}
    for kind, body in re.findall(r'<section class="snippet" data-kind="([^"]+)">(.*?)</section>', page, re.DOTALL):
        code = re.search(r"<pre><code>(.*?)</code></pre>", body, re.DOTALL).group(1)
        url = re.search(r'class="snippet-url" href="([^"]+)"', body)
        found[kind] = (unescape(code), url and unescape(url.group(1)))
    return found


def test_snippets_load_the_model_from_this_server(site, tmp_path):
    files = minilm_files()
    snippets = _snippets(get(site, f"/{MINILM_REPO_ID}").text)
    assert set(snippets) == {"huggingface_hub", "sentence-transformers", "transformers", "hubmirror materialize", "URL"}
    code, _ = snippets["huggingface_hub"]
    assert code.startswith(f"HF_ENDPOINT={site.url} ")
    done = subprocess.run(["bash", "-c", code], env=_client_env(tmp_path), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert {p.relative_to(folder).as_posix(): sha256(p) for p in folder.rglob("*") if p.is_file()} == \
        {name: sha256(path) for name, path in files.items()}
    _, url = snippets["URL"]
    name = url.rsplit("/", 1)[1]
    assert hashlib.sha256(requests.get(url, timeout=30).content).hexdigest() == sha256(files[name])



def test_torch_hub_snippet_loads_the_state_dict(site, tmp_path):
    listed = get(site, "/models?source=file").text
    repo = re.findall(r'<a class="model" href="/([^"]+)">', listed)
    assert len(repo) == 1
    code, url = _snippets(get(site, f"/{repo[0]}").text)["torch.hub"]
    assert url.startswith(site.url) and url.endswith("/pnet.pt")
    done = subprocess.run(["bash", "-c", code], env=_client_env(tmp_path), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert sha256(tmp_path / "torch" / "hub" / "checkpoints" / "pnet.pt") == sha256(facenet_files()["pnet.pt"])


def _client_env(tmp_path: Path) -> dict:
    """A client's environment: its own caches, this venv's python first on PATH."""
    return {**os.environ, "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch"),
            "HF_HUB_DISABLE_XET": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_token_login_sets_a_session_cookie_and_the_api_keeps_the_bearer(web_mirror):
    token = "web-login-secret-token"
    with MirrorServer(web_mirror, token=token) as server:
        page = requests.get(f"{server.url}/models?search=minilm", allow_redirects=False, timeout=30)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fmodels%3Fsearch%3Dminilm"
        api = f"{server.url}/api/models/{MINILM_REPO_ID}"
        assert requests.get(api, timeout=30).status_code == 401
        assert requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
        session = requests.Session()
        form = session.get(f"{server.url}/login?next=/models%3Fsearch%3Dminilm", timeout=30)
        assert 'type="password" name="token"' in form.text
        wrong = session.post(f"{server.url}/login", data={"token": "guess", "next": "/"}, allow_redirects=False)
        assert wrong.status_code == 401 and "guess" not in wrong.text and not session.cookies
        escape = session.post(f"{server.url}/login", data={"token": token, "next": "//evil.example/"},
                              allow_redirects=False)
        assert escape.status_code == 303 and escape.headers["location"] == "/"
        cookie = escape.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
        done = session.post(f"{server.url}/login", data={"token": token, "next": "/models?search=minilm"})
        assert done.status_code == 200 and done.url == f"{server.url}/models?search=minilm"
        assert f'href="/{MINILM_REPO_ID}"' in done.text and token not in done.text
        for path in ("/", f"/{MINILM_REPO_ID}", f"/{MINILM_REPO_ID}/tree/main"):
            shown = session.get(server.url + path, timeout=30)
            assert shown.status_code == 200 and token not in shown.text
        assert session.get(f"{server.url}/{MINILM_REPO_ID}/resolve/main/config.json").content == \
            minilm_files()["config.json"].read_bytes()  # a download from the page works with the cookie
        assert session.get(api, timeout=30).status_code == 200
        session.post(f"{server.url}/logout")
        assert session.get(f"{server.url}/", allow_redirects=False, timeout=30).status_code == 303


def test_a_session_expires_logout_revokes_it_and_secure_follows_a_trusted_proxy(web_mirror, monkeypatch):
    """A stolen cookie is not a key for ever: it expires, and logging out refuses it even if it was copied; behind a
    TLS-terminating proxy the server trusts, the cookie is marked Secure."""
    token = "session-token"
    api = f"/api/models/{MINILM_REPO_ID}"
    with MirrorServer(web_mirror, token=token) as server:
        session = requests.Session()
        login = session.post(f"{server.url}/login", data={"token": token, "next": "/"}, allow_redirects=False,
                             headers={"X-Forwarded-Proto": "https"})  # from 127.0.0.1: the default trusted proxy
        assert "Secure" in login.headers["set-cookie"] and "Max-Age=43200" in login.headers["set-cookie"]
        copied = dict(session.cookies)
        assert requests.get(server.url + api, cookies=copied, timeout=30).status_code == 200
        requests.post(f"{server.url}/logout", cookies=copied, timeout=30)  # (a Secure cookie: sent here by hand)
        assert requests.get(server.url + api, cookies=copied, timeout=30).status_code == 401  # revoked, copy too
        monkeypatch.setenv("HUBMIRROR_SESSION_HOURS", str(2 / 3600))  # two seconds
        again = requests.post(f"{server.url}/login", data={"token": token, "next": "/"}, allow_redirects=False)
        fresh = dict(again.cookies)
        assert requests.get(server.url + api, cookies=fresh, timeout=30).status_code == 200
        time.sleep(3.5)
        assert requests.get(server.url + api, cookies=fresh, timeout=30).status_code == 401  # expired
