"""Plugins load from the entry-point group (built-ins too) and from --plugins-dir; hooks are checked and tested."""

import inspect
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubmirror import hookspecs
from hubmirror.cli import cli
from hubmirror.errors import UsageError
from hubmirror.plugins import PluginRegistry

SITE_PLUGIN = '''
from hubmirror.hookspecs import hookimpl
from hubmirror.records import ModelMetadata, RemoteFile, ResolvedRevision
from hubmirror.sources import Download, Source

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
    assert described["huggingface"]["hooks"] == ["register_sources"]
    result = CliRunner().invoke(cli, ["--root", str(run.root), "--plugins-dir", str(plugin_dir), "pull", "local:thing"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["--root", str(run.root), "search", "thing", "--json"])
    assert json.loads(result.stdout)[0]["key"] == "local:thing"


def test_builtin_source_is_registered_through_the_entry_point_group():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="hubmirror")}
    assert eps["huggingface"] == "plugins.huggingface"
    assert "huggingface" not in [p["name"] for p in PluginRegistry(load_entry_points=False).describe()]
    assert "hf" in PluginRegistry().sources()


def test_a_misspelled_hook_fails_fast(tmp_path):
    (tmp_path / "typo.py").write_text(textwrap.dedent('''
        from hubmirror.hookspecs import hookimpl

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


def test_every_hook_has_a_test_and_is_documented():
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "hubmirror_spec")]
    assert hooks
    tests = Path(__file__).read_text()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for hook in hooks:
        assert f"def test_hook_{hook}(" in tests
        assert hook in readme


LOADER_PLUGIN = '''
from hubmirror.bench.loaders import Loaded, Loader
from hubmirror.hookspecs import hookimpl


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
    assert [lo.name for lo in registry.loaders()][0] == "numbers"
    hub.create_repo("org/n", {"w.numbers": b"1 2 3"})
    assert run("pull", "hf:org/n").exit_code == 0
    result = CliRunner().invoke(cli, ["--root", str(run.root), "--plugins-dir", str(plugin_dir), "bench", "hf:org/n",
                                      "--device", "cpu", "--min-iters", "2", "--min-seconds", "0", "--json"])
    row = json.loads(result.stdout)[0]
    assert row["status"] == "ok" and row["parameters"] == 3
    assert json.loads(row["environment"])["loader"] == "numbers"
