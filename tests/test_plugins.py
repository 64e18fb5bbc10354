"""Built-in plugins load by name, third-party ones from the entry-point group, site-local ones from --plugins-dir;
hooks are checked and tested."""

import hashlib
import inspect
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubmirror import hookspecs
from hubmirror.bench.loader_contract import registered_loaders
from hubmirror.cli import cli
from hubmirror.errors import UsageError
from hubmirror.plugin_manager import DEFAULT_PLUGINS, PluginRegistry
from tests.conftest import noise

SITE_PLUGIN = '''
from hubmirror.api import Download, hookimpl, ModelMetadata, RemoteFile, ResolvedRevision, Source

FILES = {"weights.bin": b"local weights"}


class LocalSource(Source):
    name = "local"
    description = "files from a dict"

    def resolve(self, ref, ctx):
        import hashlib
        files = [RemoteFile(p, len(d), {"sha256": hashlib.sha256(d).hexdigest()}) for p, d in FILES.items()]
        return ResolvedRevision(ref, "v1", ref.revision or "v1", ModelMetadata("local", ref.model_id, task="demo"), files)

    def open_file(self, revision, file, ctx, offset=0):
        return Download(offset, iter([FILES[file.path][offset:]]))


@hookimpl
def register_sources(register):
    register(LocalSource())
'''


def test_hook_register_sources(tmp_path, run):
    """A site-local plugin file registers a source that the whole pipeline then uses."""
    plugin_dir = tmp_path / "site-plugins"
    plugin_dir.mkdir()
    (plugin_dir / "localsource.py").write_text(SITE_PLUGIN)
    result = CliRunner().invoke(cli, ["--root", str(run.root), "--plugins-dir", str(plugin_dir), "plugins", "--json"])
    assert result.exit_code == 0, result.output
    described = {p["name"]: p for p in json.loads(result.stdout)}
    assert described["localsource"]["sources"] == ["local"]
    assert described["huggingface"]["sources"] == ["hf"]
    assert described["huggingface"]["hooks"] == ["register_sources", "served_repo_id"]
    result = CliRunner().invoke(cli, ["--root", str(run.root), "--plugins-dir", str(plugin_dir), "pull", "local:thing"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["--root", str(run.root), "search", "thing", "--json"])
    assert json.loads(result.stdout)[0]["key"] == "local:thing"


def test_builtins_load_by_name_without_any_entry_point():
    from importlib.metadata import entry_points

    assert not [ep for ep in entry_points(group="hubmirror") if ep.value.startswith(("plugins.", "hubmirror."))]
    registry = PluginRegistry(load_entry_points=False)
    assert {"hf", "torchhub", "timm", "url", "file", "kaggle", "ngc", "tfhub", "keras"} <= set(registry.sources())
    described = {p["name"]: p for p in registry.describe()}
    assert described["huggingface"]["builtin"] and described["huggingface"]["sources"] == ["hf"]
    assert described["model_loaders"]["loaders"]
    assert len(DEFAULT_PLUGINS) == sum(p["builtin"] for p in described.values())


def test_the_builtin_plugins_are_not_a_top_level_package(tmp_path):
    """`plugins/` is installed as `hubmirror.plugins`: nothing named `plugins` lands in site-packages."""
    import subprocess
    import sys

    code = "import importlib.util, hubmirror.plugins; print(importlib.util.find_spec('plugins'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


THIRD_PARTY = '''
from hubmirror.api import hookimpl, Source


class Elsewhere(Source):
    name, description = "elsewhere", "a third-party source"

    def resolve(self, ref, ctx):
        raise NotImplementedError

    def open_file(self, revision, file, ctx, offset=0):
        raise NotImplementedError


@hookimpl
def register_sources(register):
    register(Elsewhere())
'''


def test_third_party_plugins_load_from_the_entry_point_group(tmp_path, monkeypatch):
    """A distribution with a `hubmirror` entry point is loaded; HUBMIRROR_LOAD_PLUGINS limits which ones."""
    (tmp_path / "elsewhere_plugin.py").write_text(THIRD_PARTY)
    dist = tmp_path / "hubmirror_elsewhere-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hubmirror-elsewhere\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hubmirror]\nelsewhere = elsewhere_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    described = {p["name"]: p for p in PluginRegistry().describe()}
    assert described["elsewhere"]["sources"] == ["elsewhere"] and not described["elsewhere"]["builtin"]
    assert described["elsewhere"]["distribution"] == "hubmirror-elsewhere"
    monkeypatch.setenv("HUBMIRROR_LOAD_PLUGINS", "")
    assert "elsewhere" not in PluginRegistry().sources()
    assert "hf" in PluginRegistry().sources()  # built-ins are not gated
    monkeypatch.setenv("HUBMIRROR_LOAD_PLUGINS", "elsewhere")
    assert "elsewhere" in PluginRegistry().sources()


def test_a_misspelled_hook_fails_fast(tmp_path):
    (tmp_path / "typo.py").write_text(textwrap.dedent('''
        from hubmirror.api import hookimpl

        @hookimpl
        def register_sauces(register):
            pass
    '''))
    with pytest.raises(Exception, match="register_sauces"):
        PluginRegistry([tmp_path])


def test_two_plugins_claiming_one_scheme_is_an_error(tmp_path):
    (tmp_path / "dup.py").write_text(SITE_PLUGIN.replace('name = "local"', 'name = "hf"'))
    with pytest.raises(UsageError, match="registered by both"):
        PluginRegistry([tmp_path]).sources()


def test_every_hook_has_a_test_and_is_documented_with_its_signature():
    """docs/plugins.md names every hook as `name(parameters)`, exactly as hookspecs.py declares it (datasette's
    test_docs.py does this for its hooks), and each hook has a `test_hook_<name>`."""
    import re

    hooks = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "hubmirror_spec")}
    assert hooks
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    documented = dict(re.findall(r"^- `(\w+)\(([^)]*)\)`", docs, re.M))
    assert set(documented) == set(hooks)
    for name, fn in hooks.items():
        assert f"def test_hook_{name}(" in tests
        assert [p.strip() for p in documented[name].split(",")] == list(inspect.signature(fn).parameters), name


def test_plugins_import_the_core_only_through_the_api():
    """Built-in plugins are written as a third party's would be: `hubmirror.api`, and each other."""
    import re

    for path in (Path(__file__).parents[1] / "plugins").glob("*.py"):
        imported = re.findall(r"^\s*(?:from|import) (hubmirror[\w.]*)", path.read_text(), re.M)
        assert [m for m in imported if m != "hubmirror.api" and not m.startswith("hubmirror.plugins")] == [], path


LOADER_PLUGIN = '''
from hubmirror.api import hookimpl, Loaded, Loader


class NumbersLoader(Loader):
    name, priority = "numbers", 50

    def matches(self, model, paths):
        return any(p.endswith(".numbers") for p in paths)

    def load(self, directory, model, device, dtype):
        values = [float(v) for v in next(directory.glob("*.numbers")).read_text().split()]
        return Loaded(lambda x: [v * 2 for v in values], lambda b: None, len(values), f"{len(values)} values")


@hookimpl
def register_loaders(register):
    register(NumbersLoader())
'''


def test_hook_register_loaders(tmp_path, hub, run):
    """A site-local loader is chosen for the models it matches and runs in the benchmark child."""
    plugin_dir = tmp_path / "loader-plugins"
    plugin_dir.mkdir()
    (plugin_dir / "numbers.py").write_text(LOADER_PLUGIN)
    registry = PluginRegistry([plugin_dir])
    assert [lo.name for lo in registered_loaders(registry)][0] == "numbers"
    hub.create_repo("org/n", {"w.numbers": b"1 2 3"})
    assert run("pull", "hf:org/n").exit_code == 0
    result = CliRunner().invoke(cli, ["--root", str(run.root), "--plugins-dir", str(plugin_dir), "bench", "hf:org/n",
                                      "--device", "cpu", "--min-iters", "2", "--min-seconds", "0", "--json"])
    row = json.loads(result.stdout)[0]
    assert row["status"] == "ok" and row["parameters"] == 3
    assert json.loads(row["environment"])["loader"] == "numbers"


CLIENTS_PLUGIN = '''
import hashlib

from hubmirror.api import Adopter, AdoptReport, hookimpl, Layout, ModelMetadata, ModelRef, RemoteFile, ResolvedRevision


class FlatLayout(Layout):
    """Every file in one folder, named <model id>--<path>, '/' turned into '--'."""

    name = "flat"

    def write(self, placer, model, commit):
        for row in placer.mirror.catalog.files(model["key"], commit):
            placer.place(row["sha256"], f"{model['model_id']}/{row['path']}".replace("/", "--"))

    def finish(self, placer):
        placer.write_text("FLAT", "written by the flat layout\\n")


class Sha256SumsAdopter(Adopter):
    """A folder holding a SHA256SUMS (sha256sum's output) is one model, its files checked against it."""

    name = "sha256sums"

    def find(self, path):
        return sorted(p.parent for p in path.rglob("SHA256SUMS"))

    def adopt(self, found, adoption):
        report = AdoptReport()
        listing = (found / "SHA256SUMS").read_text()
        files = []
        for line in listing.splitlines():
            digest, name = line.split(None, 1)
            path = found / name.lstrip("*")
            files.append(RemoteFile(path.name, path.stat().st_size, {"sha256": digest}, location=path))
        ref = ModelRef("sums", found.name)
        commit = hashlib.sha1(listing.encode()).hexdigest()
        adoption.store(ResolvedRevision(ref, commit, "sums", ModelMetadata("sums", found.name), files), report)
        return report


@hookimpl
def register_layouts(register):
    register(FlatLayout())


@hookimpl
def register_adopters(register):
    register(Sha256SumsAdopter())
'''


def plugin_folder(tmp_path: Path, module: str, text: str) -> Path:
    """A --plugins-dir holding one plugin module, `module`.py."""
    folder = tmp_path / f"{module}-plugins"
    folder.mkdir()
    (folder / f"{module}.py").write_text(text)
    return folder


@pytest.fixture
def clients_plugin(tmp_path):
    return plugin_folder(tmp_path, "sitecaches", CLIENTS_PLUGIN)


def test_hook_register_layouts(clients_plugin, hub, run, tmp_path):
    """A site-local layout is offered by `materialize --layout` and writes through the core's placer."""
    described = {p["name"]: p for p in run.json("--plugins-dir", str(clients_plugin), "plugins")}
    assert described["sitecaches"]["layouts"] == ["flat"]
    assert {n: described[n]["layouts"] for n in ("materialize", "hf_clients", "torch_clients")} == \
        {"materialize": ["dir"], "hf_clients": ["hf-cache"], "torch_clients": ["torch-home"]}
    hub.create_repo("org/m", {"config.json": b"{}", "sub/w.bin": b"weights"})
    assert run("pull", "hf:org/m").exit_code == 0
    help_text = run("--plugins-dir", str(clients_plugin), "materialize", "--help").output
    assert "[dir|flat|hf-cache|torch-home]" in help_text
    out = run.json("--plugins-dir", str(clients_plugin), "materialize", "--layout", "flat", str(tmp_path / "flat"))
    assert out["files"] == 2 and out["linked"] == 2
    assert (tmp_path / "flat" / "org--m--sub--w.bin").read_bytes() == b"weights"
    assert (tmp_path / "flat" / "FLAT").is_file()
    result = run("materialize", "--layout", "flat", str(tmp_path / "elsewhere"))  # the plugin is not loaded
    assert result.exit_code == 2 and "'flat' is not one of 'dir', 'hf-cache', 'torch-home'" in result.output


def test_hook_register_adopters(clients_plugin, run, tmp_path):
    """A site-local adopter recognises its folders and brings them in through the core's verified store."""
    described = {p["name"]: p for p in run.json("--plugins-dir", str(clients_plugin), "plugins")}
    assert described["sitecaches"]["adopters"] == ["sha256sums"]
    assert described["hf_clients"]["adopters"] == ["hf-cache"]
    assert described["torch_clients"]["adopters"] == ["torch-home"]
    drive = tmp_path / "drive"
    for name in ("weights", "broken"):
        (drive / name).mkdir(parents=True)
        data = {"a.bin": noise(100), "b.bin": noise(200)}
        for path, content in data.items():
            (drive / name / path).write_bytes(content)
        sums = "".join(f"{hashlib.sha256(c).hexdigest()}  {p}\n" for p, c in data.items())
        (drive / name / "SHA256SUMS").write_text(sums)
    (drive / "broken" / "b.bin").write_bytes(noise(200))
    out = run.json("adopt", str(drive))  # without the plugin nothing recognises these folders
    assert out["adopted"] == [] and "no adopter recognises anything here" in out["skipped"][0]
    result = run("--plugins-dir", str(clients_plugin), "adopt", str(drive), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 1
    assert len(out["adopted"]) == 1 and out["adopted"][0].startswith("sums:weights@")
    assert len(out["corrupt"]) == 1 and out["corrupt"][0].startswith("sums:broken@") and "b.bin" in out["corrupt"][0]
    assert [m["key"] for m in run.json("list")] == ["sums:weights"]  # the broken revision: whole or not at all
    assert run.json("verify")["ok"] is True


STORE_PLUGIN = '''
from pathlib import Path
from urllib.parse import urlsplit

from hubmirror.api import StoreBackend, hookimpl
from hubmirror.store import LocalBlobStore


def open_shelf(url):
    """shelf:///ABS/PATH: blobs in a directory outside the mirror (an NFS share, say)."""
    path = urlsplit(url).path
    if not path.startswith("/"):
        raise ValueError(f"{url}: expected shelf:///ABSOLUTE/PATH")
    store = LocalBlobStore(Path(path))
    store.initialise()
    return store


@hookimpl
def register_stores(register):
    register(StoreBackend("shelf", open_shelf, "blobs in a directory elsewhere"))
'''


@pytest.fixture
def store_plugin(tmp_path):
    return plugin_folder(tmp_path, "shelfstore", STORE_PLUGIN)


def test_hook_register_stores(store_plugin, hub, run, tmp_path):
    """A site-local store backend serves `--store SCHEME://...` for every command: the core names no scheme."""
    described = {p["name"]: p for p in run.json("--plugins-dir", str(store_plugin), "plugins")}
    assert described["shelfstore"]["stores"] == ["shelf"] and described["s3"]["stores"] == ["s3"]
    shelf = tmp_path / "shelf"
    url = f"shelf://{shelf}"
    weights = noise(3000)
    hub.create_repo("org/m", {"config.json": b"{}", "w.bin": weights})
    result = run("--store", url, "pull", "hf:org/m")  # without the plugin the scheme is unknown
    assert result.exit_code == 2 and "unknown scheme (known: s3://)" in result.output
    with_plugin = ["--plugins-dir", str(store_plugin), "--store", url]
    assert run(*with_plugin, "pull", "hf:org/m").exit_code == 0
    digest = hashlib.sha256(weights).hexdigest()
    assert (shelf / "blobs" / "sha256" / digest).read_bytes() == weights
    assert not (run.root / "blobs" / "sha256" / digest).exists()  # nothing in the mirror's own directory
    assert run.json(*with_plugin, "verify")["ok"] is True
    assert run(*with_plugin, "rm", "hf:org/m").exit_code == 0
    assert run.json(*with_plugin, "gc", "--grace", "0")["blobs_removed"] == 2
    assert not (shelf / "blobs" / "sha256" / digest).exists()


def test_sqlite_utils_plugins_installed_beside_hubmirror_never_touch_the_catalog(tmp_path, monkeypatch):
    """An installed sqlite-utils plugin (its `prepare_connection` hook) is not run on catalog.db's connection:
    the catalog needs none, and it is not a third party's to change."""
    import sys
    import types

    from sqlite_utils import hookimpl, plugins

    from hubmirror.catalog import Catalog

    calls = []
    plugin = types.ModuleType("a_sqlite_utils_plugin")
    plugin.prepare_connection = hookimpl(lambda conn: calls.append(conn))
    monkeypatch.delattr(sys, "_called_from_test", raising=False)  # as outside a test run: plugins would load
    plugins.pm.register(plugin)
    try:
        catalog = Catalog(tmp_path / "catalog.db", create=True)
        catalog.db["probe"].insert({"x": 1})
        catalog.close()
    finally:
        plugins.pm.unregister(plugin)
    assert calls == []
