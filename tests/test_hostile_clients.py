"""What a client, or an upstream's answer quoted to a client, can make `serve` say: never a secret, never a 500."""

from __future__ import annotations

import socket

import pytest
import requests

from hubmirror.errors import HubmirrorError, redact
from hubmirror.mirror import Mirror
from tests.fakes.mirror_server import MirrorServer

SECRETS = [
    ("http://user:hunter2@hub.example:8080/api/models/x", "http://hub.example:8080/api/models/x"),
    ("see https://bucket.s3.example/blob?X-Amz-Signature=abc123&X-Amz-Credential=k, then",
     "see https://bucket.s3.example/blob then"),
    ("https://h.example/p#token=abc", "https://h.example/p"),
    ("no url here: user:pass@host", "no url here: user:pass@host"),
    ("two: s3://k:s@b/x?y=1 and http://a/b", "two: s3://b/x and http://a/b"),
]


@pytest.mark.parametrize("text,shown", SECRETS)
def test_one_redaction_for_every_url_in_a_message(text, shown):
    assert redact(text) == shown
    assert str(HubmirrorError(f"failed: {text}")) == f"failed: {shown}"


@pytest.fixture
def cold(root):
    Mirror.open(root, create=True).close()
    return root


def test_upstream_credentials_never_reach_a_client(cold):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    endpoint = f"http://mirror-user:hunter2@127.0.0.1:{port}"
    with MirrorServer(cold, upstream={"endpoint": endpoint}) as server:
        answer = requests.get(f"{server.url}/api/models/org/anything")
    assert answer.status_code == 502
    assert "hunter2" not in answer.headers["X-Error-Message"] and "hunter2" not in answer.text
    assert f"127.0.0.1:{port}" in answer.headers["X-Error-Message"]  # where it failed is still said


@pytest.mark.parametrize("path", ["/api/models/org/caf\u00e9\u2713", "/api/models/org/%E2%9C%93/revision/main",
                                  "/org/x%0d%0aSet-Cookie:%20a=b/resolve/main/f", "/api/models/%FF%FE/tree/main"])
def test_request_text_echoed_in_an_error_is_a_clean_4xx(cold, path):
    with MirrorServer(cold) as server:
        host, port = server.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("utf-8"))
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    assert 400 <= status < 500, head
    assert "Set-Cookie" not in head


@pytest.mark.parametrize("path,declared", [("/login", 300 << 20), ("/api/models/org/m/paths-info/main", 300 << 20),
                                           ("/login", None), ("/api/models/org/m/paths-info/main", None)])
def test_a_body_over_its_bound_is_refused_before_it_is_read(cold, path, declared):
    """300 MiB announced (or streamed chunked, with no length): a 413 once the bound is passed, not a body held."""
    with MirrorServer(cold, token="t") as server:
        host, port = server.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=30) as s:
            length = f"Content-Length: {declared}" if declared else "Transfer-Encoding: chunked"
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{length}\r\nAuthorization: Bearer t\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            chunk = b"a" * 65536
            try:
                for _ in range(64):  # 4 MiB, more than either bound
                    s.sendall(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass  # the server answered and closed: what we want
            answer = s.recv(65536)
    assert answer.split(b" ", 2)[1] == b"413", answer[:200]


@pytest.mark.parametrize("query", ["?cursor=" + "9" * 23, "?cursor=%C2%B2", "?limit=" + "9" * 4400, "?limit=-1"])
def test_odd_paging_parameters_are_a_400(cold, query):
    with MirrorServer(cold) as server:
        assert requests.get(f"{server.url}/api/models{query}").status_code == 400


def test_a_range_of_thousands_of_digits_is_ignored_not_a_500(root, run, hub):
    hub.create_repo("org/m", {"w.bin": b"0123456789"})
    assert run("pull", "hf:org/m").exit_code == 0
    with MirrorServer(root) as server:
        for header in ("bytes=" + "9" * 4400 + "-", "bytes=-" + "9" * 4400, "bytes=1-" + "9" * 30):
            answer = requests.get(f"{server.url}/org/m/resolve/main/w.bin", headers={"Range": header})
            assert answer.status_code in (200, 206, 400, 416), header[:40]


HOSTILE_IDS = ['x/y"; touch PWNED; "', "x/$(touch PWNED)", "x/`touch PWNED`", "x/y'; touch PWNED; '", "x/a\\\"b"]


@pytest.mark.parametrize("repo", HOSTILE_IDS)
def test_snippets_pasted_into_a_real_shell_run_nothing_but_python(repo, tmp_path):
    """Whatever an id holds, each snippet is one `python -c CODE` whose CODE names the id as a literal: bash runs
    a stub `python` that records its arguments, and nothing else."""
    import shutil
    import subprocess
    from urllib.parse import quote

    from hubmirror.serving.web.snippets import snippets

    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$2" > "$ARGS"\n')
    stub.chmod(0o755)
    files = [{"path": "config.json"}, {"path": "w.bin"}]
    for model in ({"key": "hf:x", "library": "timm"}, {"key": "hf:x", "library": "sentence-transformers"}):
        for snippet in snippets("http://127.0.0.1:1", repo, "c" * 40, model, files):
            if "python -c" not in snippet.code:
                continue
            env = {"PATH": f"{stub.parent}:/usr/bin:/bin", "ARGS": str(tmp_path / "args")}
            done = subprocess.run(["bash", "-c", snippet.code], cwd=tmp_path, env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert not (tmp_path / "PWNED").exists(), snippet.code
            code = (tmp_path / "args").read_text()
            compile(code, "<snippet>", "exec")  # one Python program, the id a literal in it
            assert repr(repo) in code or repr("hf-hub:" + repo) in code or quote(repo) in code, snippet.code
    assert shutil.which("bash")


@pytest.mark.parametrize("model_id", ['x/y"; touch a', "x/../../etc", "a b/c", "x/\x1b[31m", "x/$(id)", "x/`id`",
                                      "x/<script>", ""])
def test_one_validator_refuses_hostile_ids_wherever_they_enter(model_id):
    """check_listing runs on every way in (pull, bundle and registry import, adopt, bucket records, the proxy)."""
    from hubmirror.errors import IntegrityError
    from hubmirror.upstream import ModelMetadata, ModelRef, ResolvedRevision, check_listing

    revision = ResolvedRevision(ModelRef("hf", model_id), "c" * 40, "main", ModelMetadata("hf", model_id), [])
    with pytest.raises(IntegrityError, match="is not allowed"):
        check_listing(revision)


@pytest.mark.parametrize("claimed", ["/evil.example/phish", "//evil.example", "org/../x", "a/b/c", "org/na me"])
def test_a_served_repo_id_is_the_hubs_format_or_the_default(claimed):
    """An `hf:` model imported from a bundle or a bucket as `/evil.example/phish` is not served under an id that makes
    a protocol-relative link (`//evil.example/phish`): only a repo id as the Hub writes them is served as claimed."""
    from hubmirror.plugin_manager import PluginRegistry
    from hubmirror.serving.hub_ids import repo_id

    model = {"key": f"hf:{claimed}", "source": "hf", "model_id": claimed}
    served = repo_id(model, PluginRegistry(load_entry_points=False))
    assert served.startswith("hf/") and not served.startswith("/")
    assert repo_id({"key": "hf:org/ok", "source": "hf", "model_id": "org/ok"},
                   PluginRegistry(load_entry_points=False)) == "org/ok"


def test_a_client_that_trickles_its_head_is_cut_off(cold, monkeypatch):
    """50 connections sending a request head one line at a time are closed once the head's time is up (here 1 s);
    the server answers everyone else meanwhile."""
    import time

    monkeypatch.setenv("HUBMIRROR_HEADER_TIMEOUT", "1")
    with MirrorServer(cold) as server:
        host, port = server.url.split("//")[1].split(":")
        slow = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        for s in slow:
            s.sendall(b"X-Slow: 1\r\n")  # still trickling, never the blank line
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        started = time.monotonic()
        closed = 0
        for s in slow:
            s.settimeout(max(0.1, 5 - (time.monotonic() - started)))
            try:
                closed += s.recv(1024) == b""
            except OSError:
                pass
            s.close()
    assert closed == 50
    with MirrorServer(cold) as server:  # a whole head in time, then a kept-alive second request: both answered
        with requests.Session() as session:
            assert session.get(f"{server.url}/healthz").status_code == 200
            time.sleep(1.5)  # longer than the bound, between requests: uvicorn's keep-alive rule, not the head's
            assert session.get(f"{server.url}/healthz").status_code == 200
