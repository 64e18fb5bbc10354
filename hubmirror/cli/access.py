"""Commands for who may read the mirror's server: token (create, list, revoke) and audit."""

from __future__ import annotations

import re

import click

from hubmirror.cli.state import json_option, pass_state
from hubmirror.errors import UsageError

_DURATION = re.compile(r"(\d{1,6})([mhdw])\Z")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds_of(text: str, option: str) -> float:
    """`90d`, `12h`, `30m`, `2w` in seconds; anything else is a usage error naming `option`."""
    match = _DURATION.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise UsageError(f"{option} {text!r}: a positive duration such as 90d, 12h, 30m or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@click.group()
def token():
    """Tokens of the people and services `serve` answers (once one exists, every request needs one)."""


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="read", show_default=True,
              help="read: download what the globs allow; admin: everything, and /metrics.")
@click.option("--repos", "repos", multiple=True, metavar="GLOB",
              help="Only repos matching GLOB (e.g. 'team-a/*'; repeatable; any case). Default: every repo.")
@click.option("--gated", "gated", multiple=True, metavar="GLOB",
              help="Gated or private repos matching GLOB as well (repeatable; '*' for all).")
@click.option("--expires", metavar="DURATION", default="90d", show_default=True,
              help="Lifetime: 90d, 12h, 30m, 2w, or 'never'.")
@json_option
@pass_state
def create(state, name, scope, repos, gated, expires, as_json):
    """Make a token for NAME and print it once (only a slow hash of it is kept)."""
    from hubmirror.access.tokens import issue

    lifetime = None if expires.strip().lower() == "never" else seconds_of(expires, "--expires")
    try:
        secret, record = issue(name, scope, repos, gated, lifetime)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with state.mirror() as mirror:
        mirror.writer.put_token(record)  # every host's catalog, on a bucket
    if as_json:
        from hubmirror.cli.output import emit_json

        emit_json({"token": secret, **{k: v for k, v in record.as_json().items() if k != "hash"}})
        return
    click.echo(secret)
    click.echo(f"token {record.id} for {name} ({scope}), expires {record.expires_at or 'never'}: shown once; "
               "clients set it as HF_TOKEN", err=True)


@token.command("list")
@json_option
@pass_state
def list_tokens(state, as_json):
    """The tokens (never the tokens themselves): id, name, scope, globs, expiry, revocation."""
    import json

    with state.mirror() as mirror:
        rows = mirror.catalog.token_rows()
    for row in rows:
        row["repos"], row["gated"] = json.loads(row["repos"] or "[]"), json.loads(row["gated"] or "[]")
    if as_json:
        from hubmirror.cli.output import emit_json

        emit_json(rows)
        return
    for r in rows:
        state_ = f"revoked {r['revoked_at']}" if r["revoked_at"] else f"expires {r['expires_at'] or 'never'}"
        click.echo(f"{r['id']}  {r['name'] or '?':<20} {r['scope'] or '?':<6} repos={','.join(r['repos']) or '*'} "
                   f"gated={','.join(r['gated']) or '-'}  {state_}")


@token.command("revoke")
@click.argument("which")
@pass_state
def revoke(state, which):
    """Revoke a token by its id, or every token of a name; refused at once by every server of the mirror."""
    with state.mirror() as mirror:
        live = [r for r in mirror.catalog.token_rows() if not r["revoked_at"]]
        chosen = [r["id"] for r in live if which in (r["id"], r["name"])]
        if not chosen:
            raise UsageError(f"no live token has the id or name {which!r} (see `hubmirror token list`)")
        for token_id in chosen:
            mirror.writer.revoke_token(token_id)
    click.echo(f"revoked {len(chosen)} token(s): {', '.join(chosen)}")


@click.command()
@click.argument("log", type=click.Path(dir_okay=False, exists=True))
@click.option("--repo", metavar="GLOB", help="Only reads of repos matching GLOB (any case).")
@click.option("--who", metavar="NAME", help="Only what NAME did.")
@click.option("--since", metavar="DURATION", help="Only the last DURATION (30d, 12h, ...).")
@json_option
def audit(log, repo, who, since, as_json):
    """Answer from an audit log (`serve --audit-log`): who read what, how often, how many bytes."""
    from hubmirror.access.audit import summarise

    cutoff = None if since is None else seconds_of(since, "--since")
    rows = summarise(log, repo=repo, who=who, within=cutoff)
    if as_json:
        from hubmirror.cli.output import emit_json

        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['who']:<20} {r['repo']:<40} {r['requests']:>6} requests {r['bytes']:>14} bytes  "
                   f"last {r['last']}")


COMMANDS = [token, audit]
