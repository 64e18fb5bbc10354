"""The HF source sends what huggingface_hub sends (plugins/hf_requests.py builds the requests without importing the
client): recorded at the same imitation, hubmirror's requests and the official client's are compared — paths,
queries and headers — and the user-agent it builds is the client's own under every environment that shapes it."""

import json
import subprocess
import sys

import pytest

from hubmirror import __version__
from tests.conftest import TOKEN, noise

hf = pytest.importorskip("huggingface_hub")

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
HF_HEADERS = ("authorization", "x-hf-download-counter", "accept-encoding", "range")


def _ours_ua() -> str:
    return hf.utils.build_hf_headers(token=False, library_name="hubmirror", library_version=__version__)["user-agent"]


def _hf_view(request: dict, *, library_ua: str) -> dict:
    """What of a request's headers the comparison looks at: the Hub's own headers, the trace id's presence, and the
    user-agent with the calling library's name (hubmirror's, or `unknown/None` for a bare client call) set aside."""
    headers = request["headers"]
    agent = headers.get("user-agent", "")
    return {**{name: headers.get(name) for name in HF_HEADERS}, "trace id": bool(headers.get("x-amzn-trace-id")),
            "user-agent": agent.replace(library_ua, "LIBRARY", 1)}


def _sent(hub, since: int, until: int | None = None, *, method: str = "GET", where: str = "/api/") -> list[dict]:
    return [r for r in hub.requests[since:until] if r["method"] == method and where in r["path"]]


def test_a_pull_sends_snapshot_download_s_requests_with_its_headers(hub, run, tmp_path):
    hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "config.json": b"{}", "w.bin": noise(5000),
                              "sub/a.txt": b"a", "sub/b.txt": b"b", "README.md": b"# m\n\nA model.\n"}, private=True)
    result = run("pull", "hf:org/m", env={"HF_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    mark = len(hub.requests)
    hf.snapshot_download("org/m", endpoint=hub.url, cache_dir=tmp_path / "c", token=TOKEN)
    unknown = hf.utils.build_hf_headers(token=False)["user-agent"].split(";")[0]
    ours, theirs = _sent(hub, 0, mark), _sent(hub, mark)
    assert [r["path"] for r in ours] == [r["path"] for r in theirs]  # model info, then every tree page
    assert len(ours) >= 3
    for mine, official in zip(ours, theirs, strict=True):
        view = _hf_view(mine, library_ua=f"hubmirror/{__version__}")
        assert view == _hf_view(official, library_ua=unknown), mine["path"]
        assert view["authorization"] == f"Bearer {TOKEN}" and view["x-hf-download-counter"] == "1"
        assert mine["headers"]["user-agent"] == _ours_ua()
    # each file GET as the client's request of the same resolve URL: its GET, or for an LFS file, whose bytes it
    # fetches from the redirect's target, its HEAD (hubmirror follows the redirect of its GET instead)
    official = {r["path"]: r for r in _sent(hub, mark, method="HEAD", where="/resolve/")}
    official.update({r["path"]: r for r in _sent(hub, mark, where="/resolve/")})
    file_gets = _sent(hub, 0, mark, where="/resolve/")
    assert file_gets and {r["path"] for r in file_gets} <= set(official)
    for mine in file_gets:
        view = _hf_view(mine, library_ua=f"hubmirror/{__version__}")
        theirs_view = _hf_view(official[mine["path"]], library_ua=unknown)
        # hubmirror asks for the bytes as stored, as the client's HEAD does (`identity`), so that a broken transfer
        # resumes at a file offset; the client's GET takes them compressed too (and cannot resume those)
        assert view.pop("accept-encoding") == "identity"
        theirs_view.pop("accept-encoding")
        assert view == theirs_view, mine["path"]
    asked = [r for r in hub.requests[:mark] if not r["path"].startswith("/repos/")]  # (the CDN's: a redirect's)
    assert len({r["headers"]["x-amzn-trace-id"] for r in asked}) == len(asked)  # one id per request
    assert hub.refused == []


def test_refs_and_the_listing_carry_the_clients_headers_without_the_download_counter(hub, run):
    repo = hub.create_repo("org/m", {"a.txt": b"a"})
    repo.tags["v1"] = repo.branches["main"]
    assert run("pull", "hf:org/m@v1").exit_code == 0  # a tag: the refs say which kind of ref it is
    assert run.json("index", "hf", "--query", "m", "--limit", "3")["models"] == 1
    ours = [r for r in _sent(hub, 0) if "/refs" in r["path"] or r["path"].startswith("/api/models?")]
    mark = len(hub.requests)
    api = hf.HfApi(endpoint=hub.url, token=False, library_name="hubmirror", library_version=__version__)
    assert [ref.name for ref in api.list_repo_refs("org/m", include_pull_requests=True).tags] == ["v1"]
    list(api.list_models(search="m", sort="downloads", limit=3, full=True))
    theirs = _sent(hub, mark)
    assert [r["path"] for r in ours] == [r["path"] for r in theirs] == [
        "/api/models/org/m/refs?include_prs=1", "/api/models?search=m&sort=downloads&limit=3&full=true"]
    for mine, official in zip(ours, theirs, strict=True):
        assert _hf_view(mine, library_ua="") == _hf_view(official, library_ua="")
        assert mine["headers"].get("x-hf-download-counter") is None


UA_CHECK = """
import json
from hubmirror.plugins import hf_requests
ours = hf_requests.user_agent("hubmirror", "9.9")
import sys
loaded = "huggingface_hub.utils._headers" in sys.modules
from huggingface_hub.utils import build_hf_headers
print(json.dumps([ours, build_hf_headers(token=False, library_name="hubmirror", library_version="9.9")["user-agent"],
                  loaded]))
"""


@pytest.mark.parametrize("env", [
    {"HF_HUB_DISABLE_TELEMETRY": "1"},
    {"DO_NOT_TRACK": "1", "HF_HUB_USER_AGENT_ORIGIN": "site-a"},
    {"DISABLE_TELEMETRY": "true", "HF_HUB_USER_AGENT_ORIGIN": "hubmirror/9.9"},  # deduplicated, as the client does
], ids=["telemetry-off", "do-not-track-with-origin", "origin-repeating-a-part"])
def test_the_user_agent_is_the_clients_own_and_built_without_importing_it(env):
    base = {k: v for k, v in __import__("os").environ.items()
            if k not in ("HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK", "DISABLE_TELEMETRY", "HF_HUB_USER_AGENT_ORIGIN")}
    out = subprocess.run([sys.executable, "-c", UA_CHECK], env={**base, **env}, capture_output=True, text=True,
                         check=True).stdout
    ours, official, loaded = json.loads(out.strip().splitlines()[-1])
    assert ours == official
    assert not loaded  # telemetry off: nothing of the client's HTTP stack is imported for it


def test_hf_hub_offline_sends_nothing(hub, run):
    hub.create_repo("org/m", {"a.txt": b"a"})
    code = ("import sys\nfrom hubmirror.cli import cli\n"
            f"cli(['--root', {str(run.root)!r}, 'pull', 'hf:org/m', '--endpoint', {hub.url!r}])")
    result = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip().splitlines()[-1] == (
        "error: hf:org/m: HF_HUB_OFFLINE is set, so huggingface_hub sends no request: unset it to pull")
    assert hub.requests == []


@pytest.mark.parametrize("date", ["yesterday", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", 20240101,
                                  "2024-13-01T00:00:00Z", ["2024-01-01"]])
def test_a_date_that_is_not_one_is_a_one_line_error(hub, run, date):
    """Dates are rewritten in the Hub's form (UTC, milliseconds, Z) or refused in one line, never a traceback: a
    date past year 9999 once converted to UTC overflows."""
    hub.create_repo("org/m", {"a.txt": b"a"})
    hub.faults.info_override = {"id": "org/m", "sha": "0" * 40, "lastModified": date}
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: hf:org/m: the Hub answered something hubmirror cannot read: a date that is not one")


def test_dates_are_written_as_the_hub_writes_them(hub, run):
    hub.create_repo("org/m", {"a.txt": b"a"})
    info = hf.HfApi(endpoint=hub.url).model_info("org/m")
    hub.faults.info_override = {"id": "org/m", "sha": info.sha, "lastModified": "2024-11-01T02:00:00.123456+02:00",
                                "createdAt": "2021-08-30T00:00:00Z"}
    assert run("pull", "hf:org/m").exit_code == 0
    shown = run.json("show", "hf:org/m")
    assert shown["last_modified"] == "2024-11-01T00:00:00.123Z"
