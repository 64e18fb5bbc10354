"""CLI behaviour a user meets first: fast --help, one-line errors, exit codes."""

import json
import subprocess
import sys

from click.testing import CliRunner

from hubmirror.cli import cli

HEAVY = ["torch", "requests", "sqlite_utils", "pluggy", "tqdm", "huggingface_hub", "numpy", "ray"]


def test_help_imports_nothing_heavy():
    for command in ([], ["bench"], ["sync"]):  # --executor ray: the cluster engine only when a run asks for it
        code = (
            "import sys\n"
            "from hubmirror.cli import cli\n"
            f"try:\n    cli({command + ['--help']!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "[]", command


def test_every_command_is_where_the_lazy_group_looks_for_it():
    """Commands load on first use from the module COMMAND_MODULES names: the table and the modules agree."""
    import importlib

    from hubmirror.cli import COMMAND_MODULES

    defined = {c.name: module for module in set(COMMAND_MODULES.values())
               for c in importlib.import_module(f"hubmirror.cli.{module}").COMMANDS}
    assert defined == COMMAND_MODULES


def test_a_command_loads_only_its_own_module():
    code = (
        "import sys\n"
        "from hubmirror.cli import cli\n"
        "try:\n    cli(['search', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('hubmirror.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['hubmirror.cli.browsing', 'hubmirror.cli.state']"


def test_search_and_list_do_not_import_torch_network_clients_or_sqlite_utils(tmp_path, hub):
    hub.create_repo("org/m", {"a.txt": b"a"})
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "pull", "hf:org/m", "--endpoint", hub.url]).exit_code == 0
    code = (
        "import sys\n"
        "from hubmirror.cli import cli\n"
        f"for args in (['--root', {str(tmp_path)!r}, 'search', 'x'], ['--root', {str(tmp_path)!r}, 'list']):\n"
        "    try:\n        cli(args)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ['torch', 'requests', 'huggingface_hub', 'sqlite_utils', 'ray'] if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_commands_on_a_directory_without_a_mirror_say_so(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(tmp_path / "empty"), "list"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no mirror at {tmp_path / 'empty'} (catalog.db not found): pull something first or pass --root"
    ]
    assert not (tmp_path / "empty").exists()


def test_usage_errors_exit_2(tmp_path):
    assert CliRunner().invoke(cli, ["pull"]).exit_code == 2
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "nosuchcommand"]).exit_code == 2
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "pull", "hf"])
    assert result.exit_code == 2 and "expected SOURCE:ID" in result.output


def test_root_comes_from_hubmirror_home(tmp_path, monkeypatch, hub):
    hub.create_repo("org/m", {"a.txt": b"a"})
    monkeypatch.setenv("HUBMIRROR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert CliRunner().invoke(cli, ["pull", "hf:org/m"]).exit_code == 0
    assert (tmp_path / "home" / "catalog.db").is_file()
    assert (tmp_path / "home" / "oci-layout").is_file()
    assert json.loads((tmp_path / "home" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_unreachable_endpoint_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "pull", "hf:org/m", "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach http://127.0.0.1:9/api/models/org/m")


def test_pull_imports_no_ml_framework_nor_the_cluster_engine_nor_an_async_runtime(tmp_path, hub):
    """Nor what its libraries would load for nothing (hubmirror.imports): trio for huggingface_hub's httpx, numpy and
    pandas for sqlite-utils (all installed with the test extras)."""
    hub.create_repo("org/m", {"model.safetensors": b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "a.txt": b"a"})
    code = (
        "import sys\n"
        "from hubmirror.cli import cli\n"
        f"try:\n    cli(['--root', {str(tmp_path)!r}, '--quiet', 'pull', 'hf:org/m', '--endpoint', {hub.url!r}])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ['torch', 'numpy', 'pandas', 'ray', 'timm', 'transformers', 'trio']"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_command_leaves_its_objects_to_no_last_collection(tmp_path):
    """`hubmirror` freezes what it made once it is done, so the interpreter's teardown does not walk it again (its
    last collections cost every command 50-70 ms); whatever a command opened is closed by then."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
            "from hubmirror.cli import main\n"
            f"sys.argv = ['hubmirror', '--root', {str(tmp_path)!r}, 'search', 'x']\n"
            "main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "no mirror at" in result.stderr  # a failing command is frozen too
    (line,) = [out for out in result.stdout.splitlines() if out.startswith("frozen")]
    assert int(line.split()[1]) > 10_000


def test_the_collector_sleeps_through_start_up_and_wakes_once_the_mirror_is_open(tmp_path):
    """The console script pauses the cyclic collector while a command imports and opens its mirror (tens of
    thousands of long-lived objects, no garbage: ~80 walks of them, ~10 ms of a pull), then freezes what start-up
    made and turns the collector back on for the command's real work."""
    from hubmirror.catalog import Catalog

    Catalog(tmp_path / "catalog.db", create=True).close()
    code = ("import gc, sys\n"
            "import hubmirror.cli.state as state\n"
            "walks = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and walks.append(info['generation']))\n"
            "opened = state.State.mirror\n"
            "def mirror(self, **kw):\n"
            "    m = opened(self, **kw)\n"
            "    print('open', len(walks), gc.isenabled(), gc.get_freeze_count(), flush=True)\n"
            "    return m\n"
            "state.State.mirror = mirror\n"
            "from hubmirror.console import main\n"
            f"sys.argv = ['hubmirror', '--root', {str(tmp_path)!r}, 'list', '--all']\n"
            "walks.clear()\n"
            "main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (line,) = [out for out in result.stdout.splitlines() if out.startswith("open")]
    _, walks, enabled, frozen = line.split()
    assert (int(walks), enabled) == (0, "True") and int(frozen) > 10_000
