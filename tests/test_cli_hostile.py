"""Every command, given odd and hostile arguments as a new user (or a script gone wrong) would: a one-line error and
exit 2 for what it cannot use, never a traceback."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubmirror.cli import COMMAND_MODULES, cli
from hubmirror.cli.state import State


def commands() -> list[click.Command]:
    return [cli.get_command(None, name) for name in COMMAND_MODULES]


NUMERIC = (click.types.IntParamType, click.types.FloatParamType)


def test_every_numeric_option_says_its_bounds():
    """A number a command takes has a range (a negative grace, a port of 99999, zero workers are usage errors)."""
    loose = [f"{c.name} {p.opts[0]}" for c in commands() for p in c.params
             if isinstance(p, click.Option) and isinstance(p.type, NUMERIC)
             and not isinstance(p.type, (click.IntRange, click.FloatRange))]
    assert loose == []


@pytest.mark.parametrize("args", [["search"], ["search", "--sort", "relevance"], ["list"], ["gc", "--dry-run"],
                                  ["scan"], ["verify"]])
def test_the_obvious_first_calls_work_on_an_empty_mirror(tmp_path, args):
    from hubmirror.mirror import Mirror

    Mirror.open(tmp_path, create=True).close()
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), *args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args", [["gc", "--grace", "-5"], ["serve", "--port", "99999"], ["pull", "--workers", "0",
                                  "hf:a/b"], ["bench", "--timeout", "-1", "--all"], ["search", "--limit", "-3"]])
def test_out_of_range_numbers_are_usage_errors(tmp_path, args):
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


# What a shell can pass: any text but NUL (argv entries are C strings), and undecodable bytes as Python sees them
# (surrogate escapes, as in `hubmirror search $'\xff'`).
ARGV_TEXT = st.text(st.one_of(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                              st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)), max_size=40)
ODD = st.one_of(ARGV_TEXT, st.sampled_from(["-1", "0", "99999999999999999999999", "nan", "inf", "-inf", "1e309", "",
                                            " ", "--", "é", "../../etc", "%s%n", "\udcff"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_option_value_parses_or_is_a_usage_error(data):
    """Each option of each command, with any value: the command line parses, or click says why (exit 2)."""
    command = data.draw(st.sampled_from(commands()))
    options = [p for p in command.params if isinstance(p, click.Option) and not p.is_flag and p.opts[0] != "--help"]
    if not options:
        return
    option = data.draw(st.sampled_from(options))
    value = data.draw(ODD)
    ctx = click.Context(cli, info_name="hubmirror", obj=State(Path("."), (), quiet=True))  # what the group sets up
    try:
        command.make_context(command.name, [option.opts[0], value], parent=ctx, resilient_parsing=False)
    except (click.UsageError, click.BadParameter):
        pass  # exit 2, one line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=ARGV_TEXT, sort=st.sampled_from(["relevance", "downloads", "likes", "lastModified", "fastest"]),
       limit=st.integers(min_value=0, max_value=10**6), offset=st.integers(min_value=0, max_value=10**12))
def test_search_answers_any_query(tmp_path_factory, query, sort, limit, offset):
    from hubmirror.mirror import Mirror

    root = tmp_path_factory.getbasetemp() / "hostile-search"
    if not (root / "catalog.db").exists():
        Mirror.open(root, create=True).close()
    result = CliRunner().invoke(cli, ["--root", str(root), "search", query, "--sort", sort, "--limit", str(limit),
                                      "--offset", str(offset)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 2), result.output
