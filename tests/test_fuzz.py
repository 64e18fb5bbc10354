"""Property and fuzz tests (hypothesis): reference parsing, file names, hostile Hub metadata, hostile bundles. The
property in each: hubmirror either accepts the input sanely or answers a one-line error — never a traceback, never
a write outside the mirror, never a catalog row."""

import json
import posixpath
import sqlite3
import string

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubmirror.cli import cli
from hubmirror.errors import HubmirrorError, UnsafePathError
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.safepath import check_relative_path

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=30,
)
hostile_text = st.text(alphabet=string.printable + "\x00é/\\:@#", max_size=60)


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry()


@SETTINGS
@given(spec=hostile_text)
def test_every_source_parses_or_refuses_cleanly(registry, spec):
    for name, (source, _) in registry.sources().items():
        try:
            ref = source.parse(spec)
        except HubmirrorError:
            continue
        assert ref.source == name and ref.model_id
        if name in ("hf", "kaggle", "ngc", "torchhub", "timm"):
            assert ".." not in ref.model_id.split("/")


@SETTINGS
@given(path=hostile_text)
def test_accepted_file_names_stay_inside(path, tmp_path_factory):
    try:
        check_relative_path(path)
    except UnsafePathError:
        return
    root = tmp_path_factory.getbasetemp() / "root"
    assert not path.startswith("/") and ".." not in path.split("/") and posixpath.normpath(path) == path
    assert (root / path).resolve().is_relative_to(root.resolve())


def _pull(hub, root):
    return CliRunner().invoke(cli, ["--root", str(root), "--quiet", "pull", "hf:org/m", "--endpoint", hub.url],
                              catch_exceptions=False)


def _fresh_repo(hub) -> None:
    hub.repos.pop("org/m", None)
    hub.create_repo("org/m", {"a.txt": b"a"})


def _catalogued(root) -> int:
    if not (root / "catalog.db").exists():
        return 0
    return sqlite3.connect(root / "catalog.db").execute("SELECT count(*) FROM files").fetchone()[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=json_values | st.lists(st.fixed_dictionaries(
    {"type": st.just("file"), "path": hostile_text, "size": st.integers(-5, 10**12) | st.text(max_size=3),
     "oid": st.text(alphabet="0123456789abcdefg", max_size=41)},
    optional={"lfs": st.fixed_dictionaries({"oid": st.text(alphabet="0123456789abcdef", max_size=64),
                                            "size": st.integers(-1, 10**6)})}), max_size=4))
def test_hostile_tree_listings(hub, tmp_path_factory, tree):
    _fresh_repo(hub)
    hub.faults.tree_override = tree
    root = tmp_path_factory.mktemp("m")
    result = _pull(hub, root)
    assert result.exit_code in (0, 1, 2)
    if result.exit_code:
        assert result.output.startswith("error: ") and _catalogued(root) == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(info=json_values)
def test_hostile_model_info(hub, tmp_path_factory, info):
    _fresh_repo(hub)
    hub.faults.info_override = info
    root = tmp_path_factory.mktemp("m")
    result = _pull(hub, root)
    assert result.exit_code in (1, 2) and result.output.startswith("error: ")
    assert _catalogued(root) == 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=json_values, manifest=json_values, config=json_values)
def test_hostile_bundle_metadata(tmp_path_factory, index, manifest, config):
    import hashlib

    bundle = tmp_path_factory.mktemp("bundle")
    blobs = bundle / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (bundle / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors = []
    for value in (manifest, config):
        data = json.dumps(value).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        descriptors.append({"digest": f"sha256:{digest}", "size": len(data)})
    if isinstance(index, dict):
        index.setdefault("manifests", [descriptors[0]])
    (bundle / "index.json").write_text(json.dumps(index))
    root = tmp_path_factory.mktemp("target")
    result = CliRunner().invoke(cli, ["--root", str(root), "import", str(bundle)], catch_exceptions=False)
    assert result.exit_code in (1, 2) and result.output.startswith("error: ")
    assert _catalogued(root) == 0
