"""Commands that check and protect what is stored: verify, gc, scan, allow."""

from __future__ import annotations

import sys

import click

from hubmirror.cli.state import json_option, pass_state
from hubmirror.errors import UsageError


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--workers", type=click.IntRange(1, 256), help="Blobs hashed in parallel (default: one per core).")
@json_option
@pass_state
def verify(state, refs, workers, as_json):
    """Re-hash every stored byte (of REFS, or of the whole mirror) offline; exit 1 on any mismatch."""
    from hubmirror.cli.output import emit_json, human_size
    from hubmirror.verify import verify as do_verify

    with state.mirror() as mirror:
        report = do_verify(mirror.store, mirror.catalog.file_rows(state.revisions(mirror, refs)), workers=workers)
    if as_json:
        emit_json({"ok": report.ok, "blobs": report.blobs_checked, "bytes": report.bytes_checked,
                   "problems": [p.__dict__ for p in report.problems]})
    else:
        for p in report.problems:
            users = ", ".join(f"{f['model_key']}@{f['commit_id'][:12]}:{f['path']}" for f in p.files)
            click.echo(f"BAD {p.digest} ({p.problem}: {p.detail}) used by {users}")
        click.echo(f"{report.blobs_checked} blobs, {human_size(report.bytes_checked)} checked, "
                   f"{len(report.problems)} problem(s)")
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option("--grace", default=3600.0, show_default=True, type=click.FloatRange(min=0),
              help="Spare unreferenced blobs younger than this (seconds).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--wait", default=600.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for running pulls to finish.")
@json_option
@pass_state
def gc(state, grace, dry_run, wait, as_json):
    """Delete blobs that no catalog row references, and abandoned partial downloads."""
    from hubmirror.cli.output import emit_json, human_size

    with state.mirror() as mirror:
        with mirror.exclusive_lock("gc", timeout=wait):  # this host's pulls; the bucket's leases guard the others
            report = mirror.writer.collect(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        emit_json(report.__dict__)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {report.blobs_removed} blobs ({human_size(report.bytes_freed)}), "
               f"kept {report.blobs_kept_young} young ones, {report.temporaries_removed} partial downloads removed")


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--force", is_flag=True, help="Re-scan blobs even when the scanners have not changed.")
@json_option
@pass_state
def scan(state, refs, force, as_json):
    """Re-run the admission scan (on REFS or the whole mirror) where rules or engines changed; list quarantined files
    and the files in formats the scanner does not inspect (`unscanned`), admitted or not."""
    from hubmirror.cli.output import emit_json
    from hubmirror.scanning.judge import judge

    with state.mirror() as mirror:
        rows = mirror.catalog.file_rows(state.revisions(mirror, refs))
        scans = judge(mirror.store, mirror.catalog, [(r["sha256"], r["path"]) for r in rows], force=force)
        mirror.writer.record_scans(scans)  # every host's catalog, on a bucket
        flagged = mirror.catalog.flagged()
    quarantined = [q for q in flagged if q["quarantined"]]
    admitted = [q for q in flagged if q["verdict"] == "unscanned" and not q["quarantined"]]
    if as_json:
        emit_json({"scanned": len(scans), "quarantined": quarantined,
                   "unscanned": [q for q in flagged if q["verdict"] == "unscanned"]})
        return
    click.echo(f"scanned {len(scans)} blobs; {len(quarantined)} quarantined file(s), "
               f"{len(admitted)} unscanned file(s) admitted")
    for label, group in (("quarantined", quarantined), ("admitted", admitted)):
        for q in group:
            click.echo(f"{label}: {q['model_key']}@{q['commit_id'][:12]}:{q['path']} {q['sha256']} ({q['verdict']})")


@click.command()
@click.argument("sha256")
@click.option("--reason", help="Why this one file may be served, exported and loaded (required to allow).")
@click.option("--revoke", is_flag=True, help="Withdraw an earlier allowance.")
@pass_state
def allow(state, sha256, reason, revoke):
    """Admit ONE quarantined file (by its sha256) after review, or revoke that."""
    from hubmirror.store import check_digest

    check_digest(sha256)
    if not revoke and not reason:
        raise UsageError("allow needs --reason: say why this file may be trusted")
    with state.mirror() as mirror:
        mirror.writer.allow(sha256, None if revoke else reason)  # every host's catalog, on a bucket
    click.echo(f"{'revoked' if revoke else 'allowed'} {sha256}")


COMMANDS = [verify, gc, scan, allow]
