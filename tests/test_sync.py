"""Mirror specs: `hubmirror sync SPEC` pulls what is missing, idempotently, and reports what changed."""

import pytest

SPEC = """
[[model]]
ref = "hf:org/a"

[[model]]
ref = "hf:org/b@v1"
include = ["*.json"]
"""


@pytest.fixture
def spec(tmp_path, hub):
    hub.create_repo("org/a", {"config.json": b'{"a": 1}', "w.bin": b"a weights"})
    b = hub.create_repo("org/b", {"config.json": b'{"b": 1}', "w.bin": b"b weights"})
    b.tags["v1"] = b.branches["main"]
    path = tmp_path / "site.toml"
    path.write_text(SPEC)
    return path


def statuses(changes):
    return {(c["model"], c["requested"]): c["status"] for c in changes}


def test_sync_adds_then_changes_nothing_then_follows_a_moved_branch(spec, hub, run):
    assert statuses(run.json("sync", str(spec), "--dry-run")) == {("hf:org/a", "main"): "added",
                                                                  ("hf:org/b", "v1"): "added"}
    assert run.json("list") == []  # a dry run pulls nothing
    assert set(statuses(run.json("sync", str(spec))).values()) == {"added"}
    assert {f["path"] for f in run.json("show", "hf:org/b")["files"]} == {"config.json"}
    before = len(hub.requests)
    assert set(statuses(run.json("sync", str(spec))).values()) == {"unchanged"}
    assert not [r for r in hub.requests[before:] if "/resolve/" in r["path"]]  # nothing downloaded
    hub.repos["org/a"].commit({"config.json": b'{"a": 2}', "w.bin": b"a weights"})
    changes = run.json("sync", str(spec))
    assert statuses(changes) == {("hf:org/a", "main"): "updated", ("hf:org/b", "v1"): "unchanged"}
    moved = next(c for c in changes if c["model"] == "hf:org/a")
    assert moved["before"] != moved["after"] == hub.repos["org/a"].branches["main"]


def test_widening_include_is_an_update(spec, run):
    run.json("sync", str(spec))
    spec.write_text(SPEC.replace('include = ["*.json"]', 'include = ["*.json", "*.bin"]'))
    assert statuses(run.json("sync", str(spec)))[("hf:org/b", "v1")] == "updated"
    assert {f["path"] for f in run.json("show", "hf:org/b")["files"]} == {"config.json", "w.bin"}


@pytest.mark.parametrize("bad", ["[[model]]\ninclude = ['x']\n", "[[model]]\nref = 'hf:a/b'\nincludes = []\n",
                                 "[[model]]\nref = 'hf:a/b'\ninclude = 'x'\n", "not toml [", ""])
def test_malformed_specs_are_usage_errors(tmp_path, run, bad):
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    result = run("sync", str(path))
    assert result.exit_code == 2 and result.output.startswith("error: ")
