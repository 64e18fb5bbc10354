"""Pulls over a hostile network: 429 with Retry-After, 5xx, connections reset or stalled mid-file, throttling, a
full disk. Each pull completes with the right bytes (resuming within the pull with a Range request from the bytes
held), or fails with one line naming the file, keeping what arrived for the next pull. Waits are tiny here
(HUBMIRROR_RETRY_BASE), except where a test checks that a Retry-After was honoured."""

import email.utils
import hashlib
import itertools
import json
import os
import sqlite3
import time

import pytest

from hubmirror.errors import HubmirrorError
from hubmirror.fetch.retries import Retrier, RetryPolicy, retry_after_seconds
from tests.conftest import noise
from tests.fakes.httpserver import Handler
from tests.fakes.invariants import mirror_problems

LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
BIG = 3_000_000


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRY_BASE", "0.01")
    monkeypatch.setenv("HUBMIRROR_RETRY_MAX_WAIT", "0.05")


@pytest.fixture
def repo(hub):
    files = {".gitattributes": LFS, "big.bin": noise(BIG), "other.bin": noise(700_000), "config.json": b'{"a": 1}'}
    hub.create_repo("org/m", files)
    return files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def downloads(hub, data: bytes) -> list[dict]:
    """The imitation's log of GETs of one LFS file on its CDN."""
    return [r for r in hub.requests if r["method"] == "GET" and r["path"].startswith(f"/repos/{sha(data)[:2]}/{sha(data)}")]


def range_start(request: dict) -> int:
    return int(request["range"].split("=")[1].rstrip("-")) if request["range"] else 0


def stored(root, data: bytes) -> bool:
    path = root / "blobs" / "sha256" / sha(data)
    return path.is_file() and path.read_bytes() == data


def retry_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("retry ")]


def partials(root) -> dict[str, int]:
    tmp = root / "tmp"
    return {p.name: p.stat().st_size for p in tmp.iterdir() if p.name.startswith("partial-") and
            not p.name.endswith(".lock")} if tmp.is_dir() else {}


def assert_complete(run, root, repo):
    assert all(stored(root, data) for data in repo.values())
    assert [m["key"] for m in run.json("list")] == ["hf:org/m"]
    assert mirror_problems(root) == []


@pytest.mark.parametrize("how", ["seconds", "http-date"])
def test_429_with_retry_after_is_honoured(hub, run, root, repo, how):
    after = "1" if how == "seconds" else email.utils.formatdate(time.time() + 3, usegmt=True)
    hub.faults.status_queue = {"big.bin": [(429, {"Retry-After": after})]}
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert_complete(run, root, repo)
    first, second = downloads(hub, repo["big.bin"])[:2]
    assert second["at"] - first["at"] >= 0.9  # the wait the server asked for (an HTTP date has 1 s resolution)
    [line] = retry_lines(result.stderr)
    assert line.startswith("retry 2/6 in ") and line.endswith(f": hf:org/m: big.bin: HTTP 429 (Retry-After: {after})")


def test_429_and_503_on_the_api_and_5xx_on_files(hub, run, root, repo):
    hub.faults.status_queue = {
        "api": [(429, {"Retry-After": "0"}), (503, {})],
        "config.json": [(503, {}), (502, {})],
        "big.bin": [(500, {}), (504, {}), (503, {"Retry-After": "0"})],
    }
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert_complete(run, root, repo)
    assert hub.faults.status_queue == {}  # every scripted answer was sent, and retried past
    lines = retry_lines(result.stderr)
    assert len(lines) == 7
    api = [line for line in lines if "big.bin" not in line and "config.json" not in line]
    assert len(api) == 2 and "hf:org/m" in api[0] and "HTTP 429" in api[0] and "HTTP 503" in api[1]
    assert sum(": hf:org/m: big.bin: HTTP 5" in line for line in lines) == 3


def test_a_reset_mid_file_resumes_with_a_range_request_from_the_bytes_held(hub, run, root, repo):
    hub.faults.reset_after = {"big.bin": 1_000_000}
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert_complete(run, root, repo)
    first, second = downloads(hub, repo["big.bin"])
    assert first["range"] is None
    held = range_start(second)
    assert 0 < held <= 1_000_000  # not from zero: from what had arrived (all of it, on loopback)
    [line] = retry_lines(result.stderr)
    assert "hf:org/m: big.bin: the transfer broke off" in line and line.endswith(f"resuming from byte {held}")


def test_repeated_resets_complete_while_each_one_makes_progress(hub, run, root, repo, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRIES", "1")  # progress resets the count of failures in a row
    hub.faults.reset_after = {"big.bin": [600_000] * 4}
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert_complete(run, root, repo)
    starts = [range_start(r) for r in downloads(hub, repo["big.bin"])]
    assert len(starts) == 5 and starts[0] == 0 and all(a < b for a, b in itertools.pairwise(starts))


def test_a_stalled_connection_times_out_and_resumes(hub, run, root, repo, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_TIMEOUT", "0.5")
    hub.faults.stall_after = {"big.bin": 1_000_000}
    started = time.monotonic()
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 20
    assert_complete(run, root, repo)
    first, second = downloads(hub, repo["big.bin"])
    assert 0 < range_start(second) <= 1_000_000 and second["at"] - first["at"] >= 0.5
    [line] = retry_lines(result.stderr)
    assert "big.bin: the transfer broke off (read timeout: the connection stalled)" in line


def test_a_throttled_connection_completes(hub, run, root, repo):
    hub.faults.throttle = {"big.bin": 6_000_000, "other.bin": 2_000_000}
    started = time.monotonic()
    assert run("pull", "hf:org/m").exit_code == 0
    assert time.monotonic() - started >= 0.3
    assert_complete(run, root, repo)


def test_a_spent_budget_is_one_line_naming_the_file_keeps_the_partial_and_spares_the_others(hub, run, root, repo,
                                                                                              monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRIES", "2")
    hub.faults.reset_after = {"big.bin": [1_000_000] + [0] * 10}  # progress once, then none
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: hf:org/m: big.bin: the transfer broke off")
    assert "gave up after 3 attempts" in line and "bytes are kept for the next pull to resume" in line
    # nothing catalogued, the mirror sound, the partial kept; the other files stored all the same
    assert run.json("list") == []
    assert mirror_problems(root) == []
    held = max(partials(root).values())
    assert 0 < held <= 1_000_000
    assert stored(root, repo["other.bin"]) and stored(root, repo["config.json"])
    assert not stored(root, repo["big.bin"])
    # the next pull resumes from the partial and downloads nothing else again
    hub.faults.reset_after = {}
    before = len(downloads(hub, repo["other.bin"]))
    out = run.json("pull", "hf:org/m")
    assert out[0]["reused"] == 1  # other.bin, by its LFS sha256 (small git files are known by id once catalogued)
    assert range_start(downloads(hub, repo["big.bin"])[-1]) == held
    assert len(downloads(hub, repo["other.bin"])) == before
    assert_complete(run, root, repo)
    assert partials(root) == {}


def test_5xx_past_the_budget_fails_naming_the_file(hub, run, root, repo, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRIES", "2")
    hub.faults.status_queue = {"big.bin": [(503, {})] * 5}
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in result.output.splitlines() if not line.startswith(("retry ", "failed: "))]
    assert len(errors) == 1 and "hf:org/m: big.bin" in errors[0] and "HTTP 503" in errors[0]
    assert "gave up after 3 attempts" in errors[0]
    assert len(retry_lines(result.stderr)) == 2
    assert len(downloads(hub, repo["big.bin"])) == 3
    assert run.json("list") == [] and mirror_problems(root) == []


def test_other_4xx_answers_are_never_retried(hub, run, root, repo):
    hub.faults.status_queue = {"big.bin": [(403, {})] * 3}
    result = run("-v", "pull", "hf:org/m")
    assert result.exit_code == 1 and "access denied (HTTP 403)" in result.output
    assert retry_lines(result.stderr) == []
    assert len(downloads(hub, repo["big.bin"])) == 1


def test_a_retry_after_longer_than_allowed_gives_up_at_once(hub, run, repo, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRY_AFTER_MAX", "5")
    hub.faults.status_queue = {"api": [(429, {"Retry-After": "3600"})]}
    started = time.monotonic()
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1 and time.monotonic() - started < 5
    assert "HTTP 429" in result.output and "retry after 3600 s" in result.output


def test_an_unreachable_host_is_retried_then_one_line(run, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("-v", "--retries", "2", "pull", "hf:org/m", "--endpoint", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert len(retry_lines(result.stderr)) == 2
    [error] = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: cannot reach http://127.0.0.1:{port}/api/models/org/m")
    assert "gave up after 3 attempts" in error


def test_verbose_is_off_by_default(hub, run, repo):
    hub.faults.status_queue = {"big.bin": [(503, {})]}
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0 and retry_lines(result.output) == []


def test_a_full_disk_is_one_line_nothing_catalogued_and_the_next_pull_completes(hub, run, root, repo):
    """A real ENOSPC from the kernel: big.bin's resumable temp name (deterministic) is a link to /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    (root / "tmp").mkdir(parents=True)
    partial = root / "tmp" / ("partial-" + sha(sha(repo["big.bin"]).encode())[:40])
    partial.symlink_to("/dev/full")
    result = run("pull", "hf:org/m")
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: disk full while storing hf:org/m: big.bin (No space left on device)")
    assert run.json("list") == []
    db = sqlite3.connect(root / "catalog.db")
    assert db.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    db.close()
    assert mirror_problems(root) == []
    assert not stored(root, repo["big.bin"])
    partial.unlink()  # space freed
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert_complete(run, root, repo)
    assert run.json("verify")["ok"] is True


# -- the policy itself, without a network ------------------------------------------------------------------------------


def test_backoff_is_capped_full_jitter_within_the_budget():
    waits = []
    retrier = Retrier("x", RetryPolicy(retries=6, base=1.0, max_wait=4.0, budget=1000.0), sleep=waits.append)
    error = HubmirrorError("x: HTTP 503")
    for _ in range(6):
        retrier.retry(error, "HTTP 503")
    caps = [1, 2, 4, 4, 4, 4]
    assert all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True))
    with pytest.raises(HubmirrorError, match=r"x: HTTP 503 \(gave up after 7 attempts\)"):
        retrier.retry(error, "HTTP 503")


def test_retry_after_is_honoured_and_the_budget_bounds_the_total():
    waits = []
    retrier = Retrier("x", RetryPolicy(retries=10, budget=5.0, retry_after_max=60.0), sleep=waits.append)
    error = HubmirrorError("x: HTTP 429")
    retrier.retry(error, "HTTP 429", retry_after=3.0)
    assert waits == [3.0]
    with pytest.raises(HubmirrorError, match="budget of 5 s"):
        retrier.retry(error, "HTTP 429", retry_after=3.0)


def test_progress_resets_the_count_of_failures_in_a_row():
    retrier = Retrier("x", RetryPolicy(retries=1, base=0.0), sleep=lambda s: None)
    error = HubmirrorError("x: broke off")
    for held in (10, 20, 30, 40):
        retrier.retry(error, "broke off", held=held)
    with pytest.raises(HubmirrorError, match="gave up"):
        retrier.retry(error, "broke off", held=40)


def test_retry_after_values():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert 8 <= retry_after_seconds(email.utils.formatdate(time.time() + 10, usegmt=True)) <= 10


def test_bad_settings_are_usage_errors(run, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRIES", "many")
    result = run("pull", "hf:org/m")
    assert result.exit_code == 2 and "HUBMIRROR_RETRIES" in result.output


def test_an_upstream_answer_naming_another_model_never_rewrites_it(hub, run):
    """Model info whose `id` is another cached repo's (a rename, or a lie) is catalogued under the id the mirror asked
    for; the other model's row keeps its own task, tags and card."""
    hub.create_repo("org/victim", {"README.md": b"---\npipeline_tag: text-classification\n---\n# the real one\n"})
    assert run("pull", "hf:org/victim").exit_code == 0
    liar = hub.create_repo("org/liar", {"README.md": b"---\npipeline_tag: image-to-image\n---\n# overwrite!\n"})
    liar.repo_id = "org/victim"  # the upstream's model info now says id: org/victim
    result = run("pull", "hf:org/liar")
    assert result.exit_code == 0, result.output
    models = {m["key"]: m for m in run.json("list")}
    assert models["hf:org/victim"]["task"] == "text-classification"
    assert models["hf:org/liar"]["task"] == "image-to-image"
    assert run.json("show", "hf:org/liar")["metadata"]["upstreamId"] == "org/victim"


class _Redirector(Handler):
    """Answers every GET with a 302 to the owner's `target`."""

    def do_GET(self):
        self.owner.asked.append(self.path)
        self.send_response(302)
        self.send_header("Location", self.owner.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.1/internal",
                                    "file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_a_redirect_never_leads_into_a_network_the_upstream_is_not_part_of(run, target):
    """An upstream (here on loopback) that redirects a download to a cloud metadata service, a private network or
    another scheme: refused before any connection to it, with one line saying so; nothing catalogued."""
    from tests.fakes.httpserver import LoopbackServer

    class Owner:
        asked: list = []

    owner = Owner()
    owner.target = target
    server = LoopbackServer(_Redirector, owner).start()
    try:
        result = run("pull", f"url:{server.url}/weights-0123abcd.pth#sha256={'ab' * 32}")
    finally:
        server.stop()
    assert result.exit_code == 1 and "refused" in result.output and "Traceback" not in result.output, result.output
    assert run.json("list") == []


def test_redirects_within_the_upstreams_own_network_still_work(hub, run):
    """The Hub imitation on loopback redirects its LFS downloads to its storage host on loopback: allowed."""
    hub.create_repo("org/lfs", {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n", "w.bin": noise(5000)})
    assert run("pull", "hf:org/lfs").exit_code == 0


def test_upstream_metadata_is_bounded_before_it_is_catalogued(hub, run):
    """A 20 MB card and thousands of tags from an upstream: the catalog keeps bounded text, and search still works."""
    tags = "\n".join(f"  - tag{i}-{'x' * 300}" for i in range(3000))
    card = f"---\npipeline_tag: text-classification\ntags:\n{tags}\nhuge: {'y' * (2 << 20)}\n---\n".encode()
    hub.create_repo("org/big", {"README.md": card})
    assert run("pull", "hf:org/big").exit_code == 0
    shown = run.json("show", "hf:org/big")
    assert len(shown["tags"].split()) <= 1000 and max(len(t) for t in shown["tags"].split()) <= 200
    assert len(json.dumps(shown["metadata"])) <= 1 << 20
    assert run.json("search", "big")[0]["key"] == "hf:org/big"
