"""`ngc:` sources against the NGC imitation (auth, API and storage hosts) with silero-vad's real ONNX files."""

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.fakes.model_files import silero_onnx_files
from tests.fakes.ngc import FakeNgc

KEY = "nvapi-secret-key-value"  # a scoped key: the ngc CLI sends it as the bearer token itself
LEGACY_KEY = "legacy-secret-key-value"  # a legacy key: exchanged for a token first


@pytest.fixture
def ngc(monkeypatch):
    with FakeNgc(api_keys={KEY, LEGACY_KEY}) as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        for name in ("NGC_CLI_API_KEY", "NGC_API_KEY", "NGC_APP_KEY", "NGC_CLI_ORG"):
            monkeypatch.delenv(name, raising=False)
        fake.add_model("silero/vad/silero-vad", {"6.2.3": silero_onnx_files(), "5.1": {"README.md": b"old release notes"}},
                       description="Silero voice activity detector, ONNX exports.", application="Speech",
                       labels=["vad", "audio"])
        fake.add_model("acme/private-net", {"1.0": {"weights.bin": b"private weights"}}, public=False)
        yield fake


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_public_model_latest_version_every_sha256_checked(ngc, run):
    out = run.json("pull", "ngc:silero/vad/silero-vad")
    assert out[0]["commit"] == "6.2.3" and out[0]["files"] == len(silero_onnx_files())
    shown = run.json("show", "ngc:silero/vad/silero-vad")
    files = {f["path"]: f for f in shown["files"]}
    assert {p: f["sha256"] for p, f in files.items()} == {p: sha256(f) for p, f in silero_onnx_files().items()}
    assert all(json.loads(f["upstream_digests"]) == {"sha256": f["sha256"]} for f in files.values())
    assert shown["task"] == "Speech" and "vad" in shown["tags"]
    # the listing is paged (two files a page in the imitation) and no token was needed or sent: a guest
    assert len([r for r in ngc.requests if "/files?page-size" in r["path"]]) >= 3
    assert all(r["authorization"] is None and r["guest_token"] for r in ngc.requests if r["host"] == "api")
    assert run.json("pull", "ngc:silero/vad/silero-vad:5.1")[0]["commit"] == "5.1"


def test_private_model_needs_a_key_used_as_the_cli_uses_it(ngc, run, monkeypatch, root):
    result = run("pull", "ngc:acme/private-net")
    assert result.exit_code == 1 and "NGC_CLI_API_KEY" in result.output
    monkeypatch.setenv("NGC_API_KEY", "nvapi-wrong")
    result = run("pull", "ngc:acme/private-net")
    assert result.exit_code == 1 and "refused access" in result.output and "nvapi-wrong" not in result.output
    monkeypatch.setenv("NGC_API_KEY", "legacy-wrong")
    result = run("pull", "ngc:acme/private-net")
    assert result.exit_code == 1 and "refused the API key" in result.output and "legacy-wrong" not in result.output
    # a scoped key goes to the API as it is: no token exchange
    monkeypatch.setenv("NGC_API_KEY", KEY)
    start = len(ngc.requests)
    assert run("pull", "ngc:acme/private-net:1.0").exit_code == 0
    assert [r for r in ngc.requests[start:] if r["host"] == "auth"] == []
    assert {r["authorization"] for r in ngc.requests[start:] if r["host"] == "api"} == {f"Bearer {KEY}"}
    # a legacy key is exchanged once, with the CLI's unencoded scope
    monkeypatch.setenv("NGC_API_KEY", LEGACY_KEY)
    run("rm", "ngc:acme/private-net")
    start = len(ngc.requests)
    assert run("pull", "ngc:acme/private-net:1.0").exit_code == 0
    assert [r["path"] for r in ngc.requests[start:] if r["host"] == "auth"] == \
        ["/token?service=ngc&scope=group/ngc:acme"]
    assert ngc.storage_violations == [] and ngc.refused == []
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes() and LEGACY_KEY.encode() not in path.read_bytes()


def test_digest_mismatch_and_unknown_model(ngc, run):
    ngc.corrupt = {"silero_vad_half.onnx"}
    result = run("pull", "ngc:silero/vad/silero-vad")
    assert result.exit_code == 1 and "silero_vad_half.onnx" in result.output and "refused" in result.output
    assert run.json("list") == []
    result = run("pull", "ngc:silero/vad/nothing")
    assert result.exit_code == 1 and "not found on NGC" in result.output
    result = run("pull", "ngc:silero/vad/silero-vad:9.9")
    assert result.exit_code == 1 and "not found" in result.output
    for bad in ("ngc:justone", "ngc:a/b/c/d", "ngc:a/../b"):
        assert run("pull", bad).exit_code == 2


def test_malformed_published_digest_is_refused(ngc, run, monkeypatch):
    import tests.fakes.ngc as fake_module

    monkeypatch.setattr(fake_module, "_b64", lambda hex_digest: "not-base64!")
    result = run("pull", "ngc:silero/vad/silero-vad")
    assert result.exit_code == 1 and "malformed sha256_base64" in result.output


def test_index_uses_the_search_api(ngc, run):
    out = run.json("index", "ngc")
    assert out["models"] == 1  # the private model is not listed
    assert run.json("search", "voice activity", "--source", "ngc")[0]["key"] == "ngc:silero/vad/silero-vad"


def _api_paths(ngc, since=0):
    return [r["path"] for r in ngc.requests[since:] if r["host"] != "storage"]


def test_a_guest_pull_sends_exactly_the_clis_guest_requests(ngc, run):
    """plugins/ngc.py's list, guest form: model, version, the file listing page by page (page 0 without
    page-number), one download-URL request per file, then each presigned URL."""
    files = sorted(silero_onnx_files())
    assert run("pull", "ngc:silero/vad/silero-vad").exit_code == 0
    pages = -(-len(files) // ngc.page_size)
    listing = "/v2/models/silero/vad/silero-vad/versions/6.2.3/files?page-size=500"
    paths = _api_paths(ngc)
    assert paths[: 2 + pages] == ["/v2/models/silero/vad/silero-vad?resolve-labels=false",
                                  "/v2/models/silero/vad/silero-vad/versions/6.2.3",
                                  listing, *[f"{listing}&page-number={n}" for n in range(1, pages)]]
    assert sorted(paths[2 + pages:]) == sorted(  # files download in parallel: any order
        f"/v2/models/org/silero/team/vad/silero-vad/6.2.3/files?{urlencode({'path': name})}" for name in files)
    api = [r for r in ngc.requests if r["host"] == "api"]
    assert all(r["content_type"] == "application/json" and r["user_agent"].startswith("hubmirror/") for r in api)
    assert len({r["guest_token"] for r in api}) == 1  # one guest token for the run, as the CLI keeps one
    storage = [r for r in ngc.requests if r["host"] == "storage"]
    assert len(storage) == len(files) and all(r["authorization"] is None and r["range"] is None for r in storage)
    assert ngc.refused == []


def test_an_authenticated_pull_sends_exactly_the_clis_requests(ngc, run, monkeypatch):
    monkeypatch.setenv("NGC_CLI_API_KEY", LEGACY_KEY)
    monkeypatch.setenv("NGC_CLI_ORG", "silero")
    assert run("pull", "ngc:silero/vad/silero-vad:5.1").exit_code == 0
    base = "/v2/org/silero/team/vad/models/silero-vad"
    assert _api_paths(ngc) == [
        "/token?service=ngc&scope=group/ngc:silero&scope=group/ngc:silero/vad",
        f"{base}?resolve-labels=false", f"{base}/versions/5.1", f"{base}/versions/5.1/files?page-size=500",
        "/v2/org/silero/team/vad/models/silero-vad/5.1/files?path=README.md",
    ]
    api = [r for r in ngc.requests if r["host"] == "api"]
    assert len({r["authorization"] for r in api}) == 1 and api[0]["authorization"].startswith("Bearer ")
    assert all(r["guest_token"] is None for r in api) and ngc.refused == []


def test_a_version_not_completely_uploaded_is_refused(ngc, run):
    ngc.version_status["6.2.3"] = "UPLOAD_PENDING"
    result = run("pull", "ngc:silero/vad/silero-vad")
    assert result.exit_code == 1 and "not complete" in result.output


def test_index_sends_the_clis_search_query(ngc, run):
    assert run("index", "ngc", "--query", "vad").exit_code == 0
    searches = [r["path"] for r in ngc.requests if "/search/" in r["path"]]
    q = json.loads(parse_qs(urlsplit(searches[0]).query)["q"][0])
    assert q == {"fields": q["fields"], "filters": [], "orderBy": [{"field": "score", "value": "ASC"}], "page": 0,
                 "pageSize": 100, "query": "resourceId:*vad*", "queryFields": ["name", "displayName", "description",
                                                                             "all"]}
    assert "latestVersionId" in q["fields"] and ngc.refused == []


def test_the_imitation_refuses_what_the_ngc_cli_never_sends(ngc):
    api, auth = ngc.api.url, ngc.auth.url
    cli = {"Content-Type": "application/json", "User-Agent": "ngc-cli/4.37.0"}
    guest = {**cli, "X-NGC-Guest-Token": "3f2b0c9e-8a8e-4b0e-9a43-3c1f1f0c2a11"}
    basic = "Basic " + base64.b64encode(f"$oauthtoken:{LEGACY_KEY}".encode()).decode()
    assert requests.get(f"{api}/v2/models/silero/vad/silero-vad?resolve-labels=false", headers=guest,
                        timeout=10).status_code == 200
    assert requests.get(f"{auth}/token?service=ngc&scope=group/ngc:acme", headers={**cli, "Authorization": basic},
                        timeout=10).status_code == 200
    refused = [
        requests.get(f"{api}/v2/models/silero/vad/silero-vad", headers={"User-Agent": "x",
                     "X-NGC-Guest-Token": "t"}, timeout=10),  # no Content-Type: application/json
        requests.get(f"{api}/v2/models/silero/vad/silero-vad", headers=cli, timeout=10),  # neither auth header
        requests.get(f"{api}/v2/org/silero/team/vad/models/silero-vad", headers=guest, timeout=10),  # org path, guest
        requests.get(f"{api}/v2/models/silero/vad/silero-vad/versions/6.2.3/files?page-size=500&page=2",
                     headers=guest, timeout=10),  # `page` is not the CLI's parameter
        requests.get(f"{api}/v2/search/catalog/resources/MODEL?q=" + json.dumps({"query": "vad"}), headers=guest,
                     timeout=10),
        requests.get(f"{auth}/token?service=ngc&scope=group%2Fngc%3Aacme", headers={**cli, "Authorization": basic},
                     timeout=10),  # the CLI does not encode the scope
        requests.get(f"{auth}/token?service=ngc&scope=group/ngc:acme", timeout=10, headers={
            **cli, "Authorization": "Basic " + base64.b64encode(f"$oauthtoken:{KEY}".encode()).decode()}),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert len(ngc.refused) == len(refused)
