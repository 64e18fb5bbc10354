"""`torchhub:` sources against the GitHub imitation, with the real silero-vad files; torch.hub itself loads the
imitation's archive to prove it faithful."""

import hashlib
import io
import os
import subprocess
import sys
import zipfile

import pytest
import requests
from hubmirror.plugins.torchhub import parse_hubconf

from tests.conftest import noise
from tests.fakes.model_files import SILERO_HUBCONF, silero_hub_repo

REPO = "snakers4/silero-vad"
# what torch.hub.list() answers for this hubconf: every public callable, imported ones included
SILERO_ENTRYPOINTS = ["OnnxWrapper", "VADIterator", "collect_chunks", "get_speech_timestamps", "init_jit_model",
                      "read_audio", "save_audio", "silero_vad", "versiontuple"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def silero(github):
    return github.create_repo(REPO, silero_hub_repo())


def test_pull_makes_one_model_per_entrypoint_with_every_repo_file(github, silero, run, root):
    out = run.json("pull", f"torchhub:{REPO}")
    assert {r["model"] for r in out} == {f"torchhub:{REPO}/{name}" for name in SILERO_ENTRYPOINTS}
    commit = silero.branches["main"]
    assert {r["commit"] for r in out} == {commit} and {r["requested"] for r in out} == {"main"}
    shown = run.json("show", f"torchhub:{REPO}/silero_vad")
    assert shown["description"].startswith("Silero Voice Activity Detector")
    assert shown["metadata"]["dependencies"] == ["torch", "torchaudio"]
    files = {f["path"]: f for f in shown["files"]}
    assert set(files) == set(silero_hub_repo())
    jit = silero_hub_repo()["src/silero_vad/data/silero_vad.jit"].read_bytes()
    assert files["src/silero_vad/data/silero_vad.jit"]["sha256"] == sha256(jit)
    assert files["hubconf.py"]["git_sha1"] == silero.commits[commit]["hubconf.py"].git_sha1
    assert run.json("search", "voice activity detector")[0]["key"] == f"torchhub:{REPO}/silero_vad"
    # the store holds each file once although two models reference them
    assert len(list((root / "blobs" / "sha256").iterdir())) == len({f["sha256"] for f in files.values()})


def test_one_entrypoint_at_a_ref(github, silero, run):
    silero.tags["v6.2"] = silero.branches["main"]
    out = run.json("pull", f"torchhub:{REPO}:v6.2:silero_vad")
    assert [r["model"] for r in out] == [f"torchhub:{REPO}/silero_vad"]
    assert run.json("show", f"torchhub:{REPO}/silero_vad:v6.2")["commit"] == silero.tags["v6.2"]
    assert out[0]["requested"] == "v6.2"
    result = run("pull", f"torchhub:{REPO}:v6.2:nope")
    assert result.exit_code == 1 and "no entrypoint 'nope'" in result.output and "silero_vad" in result.output


def test_entrypoint_weight_urls_are_mirrored_and_hash_checked(github, run):
    weights = noise(5000)
    good = github.add_file(f"tiny-{sha256(weights)[:8]}.pth", weights)
    bad = github.add_file("other-deadbeef.pth", weights)
    hubconf = (
        "dependencies = ['torch']\n"
        "import torch\n"
        f"MODEL_URL = '{good}'\n\n"
        "def tiny(pretrained=False):\n"
        "    '''A tiny model.'''\n"
        "    return torch.hub.load_state_dict_from_url(MODEL_URL, check_hash=True)\n\n"
        "def broken():\n"
        f"    return torch.hub.load_state_dict_from_url('{bad}')\n"
    )
    github.create_repo("me/tiny", {"hubconf.py": hubconf.encode()})
    out = run.json("pull", "torchhub:me/tiny::tiny")
    assert out[0]["files"] == 2
    files = {f["path"]: f for f in run.json("show", "torchhub:me/tiny/tiny")["files"]}
    assert files[f"checkpoints/tiny-{sha256(weights)[:8]}.pth"]["sha256"] == sha256(weights)
    result = run("pull", "torchhub:me/tiny::broken")
    assert result.exit_code == 1 and "does not start with the deadbeef" in result.output


def test_hubconf_importing_a_missing_module_is_refused(github, run):
    github.create_repo("me/bad", {"hubconf.py": b"dependencies = ['torch']\nimport torch\nimport notinstalled\n\ndef m():\n    pass\n"})
    result = run("pull", "torchhub:me/bad")
    assert result.exit_code == 1 and "imports notinstalled" in result.output
    assert run.json("list") == []


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, attr in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = attr
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize("member,attr", [("me-evil-abc1234/../../escape.py", 0o644 << 16),
                                         ("/abs/escape.py", 0o644 << 16),
                                         ("me-evil-abc1234/link.py", (0o120777 << 16))])
def test_archive_with_unsafe_members_is_refused(github, run, root, tmp_path, member, attr):
    repo = github.create_repo("me/evil", {"hubconf.py": b"def m():\n    pass\n"})
    sha = repo.branches["main"]
    github.archive_override[("me/evil", sha)] = _zip([
        ("me-evil-abc1234/", b"", 0o755 << 16),
        ("me-evil-abc1234/hubconf.py", b"def m():\n    pass\n", 0o644 << 16),
        (member, b"/etc/passwd" if attr >> 16 == 0o120777 else b"evil", attr),
    ])
    before = set(tmp_path.rglob("*"))
    result = run("pull", "torchhub:me/evil")
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run.json("list") == []
    created = set(tmp_path.rglob("*")) - before
    assert all(p == root or root in p.parents for p in created), created


def test_archive_that_disagrees_with_the_tree_is_refused(github, run):
    repo = github.create_repo("me/tampered", {"hubconf.py": b"def m():\n    pass\n"})
    sha = repo.branches["main"]
    github.archive_override[("me/tampered", sha)] = _zip([("me-tampered-x/hubconf.py", b"import os\ndef m():\n    os.system('x')\n", 0o644 << 16)])
    result = run("pull", "torchhub:me/tampered")
    assert result.exit_code == 1 and "refused" in result.output


def test_unknown_repo_and_ref(github, silero, run):
    assert "not found on GitHub" in run("pull", "torchhub:nobody/nothing").output
    result = run("pull", f"torchhub:{REPO}:nobranch")
    assert result.exit_code == 1 and "not found on GitHub" in result.output
    assert run("pull", "torchhub:justonename").exit_code == 2


def test_torch_hub_loads_silero_from_the_imitation(github, silero, tmp_path):
    """torch.hub's own download, extraction and hubconf import work on what the imitation serves."""
    pytest.importorskip("torch")
    code = (
        "import sys, torch\n"
        "torch.hub._git_archive_link = lambda o, r, ref: f'{sys.argv[1]}/{o}/{r}/zipball/{ref}'\n"
        "model, utils = torch.hub.load('snakers4/silero-vad:main', 'silero_vad', trust_repo=True,"
        " skip_validation=True, verbose=False)\n"
        "prob = model(torch.zeros(512), 16000).item()\n"
        "print(sorted(torch.hub.list('snakers4/silero-vad:main', trust_repo=True, skip_validation=True)), round(prob, 3))\n"
    )
    # hubconf declares torchaudio, which torch.hub insists on; the VAD model itself does not use it
    (tmp_path / "stubs" / "torchaudio").mkdir(parents=True)
    (tmp_path / "stubs" / "torchaudio" / "__init__.py").write_text("")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home"), "PYTHONPATH": str(tmp_path / "stubs")}
    done = subprocess.run([sys.executable, "-c", code, github.web.url], capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    entrypoints, prob = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert entrypoints == repr(SILERO_ENTRYPOINTS)
    assert list(parse_hubconf(SILERO_HUBCONF).entrypoints) == SILERO_ENTRYPOINTS
    assert 0.0 <= float(prob) <= 1.0


def _requests(github, since=0):
    """(host, method, path) of what the imitation received."""
    return [(r["host"], r["method"], r["path"]) for r in github.requests[since:]]


def test_a_pull_sends_exactly_the_documented_requests(github, run, monkeypatch):
    """plugins/torchhub.py's list: torch.hub's default-branch probe and fork check (which pins the ref), GitHub's
    tree (the digests), torch.hub's zipball, then the weight URL; each with its own client's headers."""
    weights = noise(3000)
    url = github.add_file(f"tiny-{sha256(weights)[:8]}.pth", weights)
    hubconf = f"dependencies = ['torch']\ndef tiny():\n    return '{url}'\n".encode()
    repo = github.create_repo("me/tiny", {"hubconf.py": hubconf})
    sha = repo.branches["main"]
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    assert run("pull", "torchhub:me/tiny").exit_code == 0
    assert _requests(github) == [
        ("web", "GET", "/me/tiny/tree/main/"),
        ("api", "GET", "/repos/me/tiny/branches?per_page=100&page=1"),
        ("api", "GET", f"/repos/me/tiny/git/trees/{sha}?recursive=1"),
        ("web", "GET", f"/me/tiny/zipball/{sha}"),
        ("storage", "GET", f"/me/tiny/legacy.zip/{sha}"),
        ("storage", "GET", f"/models/tiny-{sha256(weights)[:8]}.pth"),
    ]
    fork_check, tree = github.requests[1], github.requests[2]
    assert (fork_check["accept"], fork_check["api_version"], fork_check["authorization"]) == \
        ("application/vnd.github.v3+json", None, "token ghp_secret")  # torch.hub's headers
    assert (tree["accept"], tree["api_version"], tree["authorization"]) == \
        ("application/vnd.github+json", "2022-11-28", "Bearer ghp_secret")  # GitHub's REST docs
    assert all(r["user_agent"].startswith("hubmirror/") for r in github.requests)
    assert all(r["authorization"] is None for r in github.requests if r["host"] != "api")
    assert github.refused == []
    # a tag: the fork check walks the branches (page 1, then an empty page 2) before the tags, as torch.hub does
    repo.tags["v1"] = sha
    start = len(github.requests)
    assert run("pull", "torchhub:me/tiny:v1").exit_code == 0
    assert _requests(github, start)[:3] == [
        ("api", "GET", "/repos/me/tiny/branches?per_page=100&page=1"),
        ("api", "GET", "/repos/me/tiny/branches?per_page=100&page=2"),
        ("api", "GET", "/repos/me/tiny/tags?per_page=100&page=1"),
    ]


def test_refs_that_head_no_branch_or_tag_are_refused_like_torch_hub_does(github, run):
    repo = github.create_repo("me/tiny", {"hubconf.py": b"def m():\n    pass\n"})
    first = repo.branches["main"]
    repo.commit({"hubconf.py": b"def m():\n    return 2\n"}, branch="main")
    assert run("pull", f"torchhub:me/tiny:{repo.branches['main'][:7]}").exit_code == 0  # a head's short sha
    result = run("pull", f"torchhub:me/tiny:{first}")  # an older commit: torch.hub's fork check refuses it
    assert result.exit_code == 1 and "no branch or tag" in result.output


def test_master_when_there_is_no_main(github, run):
    github.create_repo("me/old", {"hubconf.py": b"def m():\n    pass\n"}, branch="master")
    out = run.json("pull", "torchhub:me/old")
    assert out[0]["requested"] == "master"


def test_the_imitation_refuses_what_neither_torch_hub_nor_the_rest_docs_send(github):
    github.create_repo("me/tiny", {"hubconf.py": b"def m():\n    pass\n"})
    api = f"{github.api.url}/repos/me/tiny"
    rest = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    assert requests.get(f"{api}/branches?per_page=100&page=1", headers={"Accept": "application/vnd.github.v3+json"},
                        timeout=10).status_code == 200
    refused = [
        requests.get(f"{api}/branches?per_page=100&page=1", timeout=10),  # requests' Accept: */*
        requests.get(f"{api}/branches", headers={"Accept": "application/json"}, timeout=10),
        requests.get(f"{api}/branches?per_page=1000", headers=rest, timeout=10),  # past GitHub's 100
        requests.get(f"{api}/git/trees/main?recursive=1&ref=main", headers=rest, timeout=10),  # not a parameter
        requests.get(f"{api}/branches", headers={**rest, "X-GitHub-Api-Version": "2099-01-01"}, timeout=10),
        requests.get(f"{api}/branches", headers={**rest, "Authorization": "Basic eDp5"}, timeout=10),
        requests.get(f"{github.web.url}/me/tiny/zipball/main?token=x", timeout=10, allow_redirects=False),
        requests.get(f"{github.web.url}/me/tiny/zipball/main", headers={"Authorization": "Bearer t"}, timeout=10,
                     allow_redirects=False),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert len(github.refused) == len(refused)


def test_torch_hubs_own_fork_check_passes_the_imitation(github, silero):
    """torch.hub's `_validate_not_a_forked_repo` (its headers, its paging), aimed at the imitation's API."""
    pytest.importorskip("torch")
    code = (
        "import sys, torch.hub as hub\n"
        "read = hub._read_url\n"
        "def aimed(req):\n"
        "    req.full_url = req.full_url.replace('https://api.github.com', sys.argv[1])\n"
        "    return read(req)\n"
        "hub._read_url = aimed\n"
        "hub._validate_not_a_forked_repo('snakers4', 'silero-vad', 'main')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, github.api.url], check=False, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "GITHUB_TOKEN": "ghp_x"})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
    assert github.refused == []
    assert [(r["accept"], r["authorization"]) for r in github.requests] == \
        [("application/vnd.github.v3+json", "token ghp_x")]
