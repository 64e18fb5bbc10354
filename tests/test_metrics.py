"""Operations: /metrics (parsed with prometheus-client's own parser), the access log, /healthz, and `--token`."""

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hubmirror.serving import metrics as metrics_module
from hubmirror.serving.app import create_app
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID

ROUTES = {"metrics", "healthz", "api_models", "api_model", "api_revision", "api_tree", "api_paths_info", "api_refs",
          "checkpoint", "resolve", "web_home", "web_models", "web_login", "web_logout", "web_static", "web_tree",
          "web_model"}


@pytest.fixture
def pulled(minilm_hub, run, root):
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    minilm_hub.stop()  # from here on, only the mirror answers
    return root


@pytest.fixture
def served(pulled):
    with MirrorServer(pulled) as server:
        yield server


def samples(url: str, headers: dict | None = None) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of the server's /metrics."""
    answer = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_requests_bytes_and_latency_by_route(served, minilm):
    base = f"{served.url}/{MINILM_REPO_ID}/resolve/main"
    config = requests.get(f"{base}/config.json", timeout=10)
    assert config.status_code == 200
    assert requests.head(f"{base}/config.json", timeout=10).status_code == 200
    missing = requests.get(f"{base}/nope.bin", timeout=10)
    assert missing.status_code == 404
    assert requests.get(f"{served.url}/api/models/{MINILM_REPO_ID}", timeout=10).status_code == 200
    for i in range(30):  # many distinct paths, a bounded set of route labels
        requests.get(f"{served.url}/api/models/org{i}/x{i}/tree/main", timeout=10)
    seen = samples(served.url)

    def count(route, method, status):
        return seen.get(("hubmirror_http_requests_total", (("method", method), ("route", route), ("status", status))))

    assert count("resolve", "GET", "200") == 1 and count("resolve", "HEAD", "200") == 1
    assert count("resolve", "GET", "404") == 1 and count("api_model", "GET", "200") == 1
    assert count("api_tree", "GET", "404") == 30
    assert seen[("hubmirror_http_response_bytes_total", (("route", "resolve"),))] == len(config.content) + len(
        missing.content) == minilm["config.json"].stat().st_size + len(missing.content)
    assert seen[("hubmirror_http_request_duration_seconds_count", (("route", "resolve"),))] == 3
    assert seen[("hubmirror_http_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "resolve")))] == 3
    assert seen[("hubmirror_http_request_duration_seconds_sum", (("route", "resolve"),))] > 0
    routes = {dict(labels)["route"] for (name, labels) in seen if name == "hubmirror_http_requests_total"}
    assert routes == {"resolve", "api_model", "api_tree"}  # /metrics counts itself once its answer is sent
    assert routes <= ROUTES


def test_store_errors_are_counted(served, pulled, minilm):
    from hubmirror.mirror import Mirror

    with Mirror.open(pulled) as mirror:
        digest = mirror.catalog.conn.execute("SELECT sha256 FROM files WHERE path = 'config.json'").fetchone()[0]
        blob = mirror.store.local_path(digest)
    blob.unlink()  # a store that lost a blob the catalog names
    answer = requests.get(f"{served.url}/{MINILM_REPO_ID}/resolve/main/config.json", timeout=10)
    assert answer.status_code == 404 and "missing from the store" in answer.headers["X-Error-Message"]
    assert samples(served.url)[("hubmirror_store_errors_total", ())] == 1


def test_access_log_has_one_line_per_request_and_no_secret(served, caplog):
    caplog.set_level(logging.INFO, logger="hubmirror.serving.access")
    secret = "hf_secretsecretsecret"
    url = f"{served.url}/{MINILM_REPO_ID}/resolve/main/config.json"
    requests.get(url, params={"token": secret}, headers={"Authorization": f"Bearer {secret}",
                                                         "Cookie": f"session={secret}"}, timeout=10)
    requests.get(f"{served.url}/api/models/{MINILM_REPO_ID}", timeout=10)
    deadline = time.monotonic() + 5  # the server thread logs after its last byte is sent
    while len(caplog.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "hubmirror.serving.access"]
    assert len(lines) == 2
    size = len(requests.get(url, timeout=10).content)
    assert lines[0].startswith(f'127.0.0.1 "GET /{MINILM_REPO_ID}/resolve/main/config.json" 200 {size} ')
    assert lines[0].endswith("ms") and lines[1].startswith(f'127.0.0.1 "GET /api/models/{MINILM_REPO_ID}" 200 ')
    assert not any(secret in line for line in lines)


def test_healthz_follows_the_catalog(served, pulled):
    answer = requests.get(f"{served.url}/healthz", timeout=10)
    assert (answer.status_code, answer.text) == (200, "ok\n")
    shutil.move(pulled / "catalog.db", pulled / "elsewhere.db")
    try:
        answer = requests.get(f"{served.url}/healthz", timeout=10)
        assert answer.status_code == 503 and answer.text == "catalog unreadable\n"
    finally:
        shutil.move(pulled / "elsewhere.db", pulled / "catalog.db")
    assert requests.get(f"{served.url}/healthz", timeout=10).status_code == 200


def test_list_models_through_the_official_client(served):
    import huggingface_hub

    api = huggingface_hub.HfApi(endpoint=served.url)
    found = list(api.list_models(search="minilm", limit=5))
    assert [m.id for m in found] == [MINILM_REPO_ID] and found[0].pipeline_tag == "sentence-similarity"
    assert list(api.list_models(search="no such words here")) == []
    assert [m.id for m in api.list_models(pipeline_tag="sentence-similarity", sort="downloads")] == [MINILM_REPO_ID]
    assert requests.get(f"{served.url}/api/models", params={"sort": "trending"}, timeout=10).status_code == 400


def test_proxy_and_upstream_records_go_to_the_active_app(pulled):
    first, second = create_app(pulled), create_app(pulled)  # two apps, two registries: no collision
    with first.state.metrics.activate():
        metrics_module.record_proxy("hit")
        metrics_module.record_proxy("miss")
        metrics_module.record_proxy("miss")
        metrics_module.record_upstream_fetch("ok")
        metrics_module.record_upstream_fetch(502)
        with pytest.raises(ValueError, match="proxy outcome"):
            metrics_module.record_proxy("maybe")
    metrics_module.record_proxy("hit")  # outside any request or activation: recorded nowhere
    registry = first.state.metrics.registry
    assert registry.get_sample_value("hubmirror_proxy_requests_total", {"outcome": "miss"}) == 2
    assert registry.get_sample_value("hubmirror_proxy_requests_total", {"outcome": "hit"}) == 1
    assert registry.get_sample_value("hubmirror_upstream_fetches_total", {"status": "502"}) == 1
    assert second.state.metrics.registry.get_sample_value("hubmirror_proxy_requests_total", {"outcome": "hit"}) is None


def test_serve_with_a_token_keeps_healthz_open_and_metrics_closed(pulled, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "secret-token-123"
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        server = subprocess.Popen([str(Path(sys.executable).parent / "hubmirror"), "--root", str(pulled), "serve", "--port",
                                   str(port), "--token", token], stderr=err, env={**os.environ, "HF_HUB_OFFLINE": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.1)
        assert health.status_code == 200
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert samples(url, auth)[("hubmirror_http_requests_total",
                                   (("method", "GET"), ("route", "metrics"), ("status", "401")))] == 1
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log.read_text()
    assert '"GET /healthz" 200' in text and '"GET /metrics" 401' in text and token not in text


def test_made_up_methods_add_no_series(root, run, hub):
    """Every label's values are bounded: 300 requests with methods nobody defined leave /metrics the size it was."""
    import random

    hub.create_repo("org/m", {"config.json": b"{}"})
    assert run("pull", "hf:org/m").exit_code == 0
    with MirrorServer(root) as server:
        host, port = server.url.split("//")[1].split(":")

        def send(method: str) -> None:
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(f"{method} /api/models/org/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                while s.recv(65536):
                    pass

        rng = random.Random(7)
        send("BREW")
        before = len(requests.get(f"{server.url}/metrics").text)
        for _ in range(300):
            send("".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(12)))
        after = requests.get(f"{server.url}/metrics").text
    assert len(after) < before + 2000  # counts grow, series do not
    assert 'method="other"' in after and "BREW" not in after
