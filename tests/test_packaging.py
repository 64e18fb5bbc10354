"""What the wheel holds: every hubmirror package (the built-in plugins as hubmirror.plugins), and no test imitation."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_installed_and_the_imitations_are_not():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hubmirror").rglob("__init__.py")}
    assert on_disk | {"hubmirror.plugins"} == declared
    assert config["package-dir"] == {"hubmirror.plugins": "plugins"}
    assert not [p for p in declared if p.startswith("tests") or p == "plugins"]
    assert "entry-points" not in config and "hubmirror" not in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"].get("entry-points", {})


def test_the_console_script_names_a_function_that_runs_the_command_line():
    import importlib

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["hubmirror"]
    module, _, name = target.partition(":")
    main = getattr(importlib.import_module(module), name)
    assert callable(main) and main.__module__ == "hubmirror.console"
