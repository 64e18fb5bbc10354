"""The audit log of `serve --audit-log`: one JSON line per request that reads a file or changes state (a login, a
logout), saying when, who (the principal's name and token id, never the token), what (repo, revision, path), the
answer's status and bytes, and from where. Written through the standard library's `WatchedFileHandler`, so that
logrotate (or any tool that moves the file away) rotates it without a restart; `-` writes to standard output.
`summarise` (`hubmirror audit`) answers "who downloaded this model last month" from such a file.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import logging.handlers
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

_FIELDS = ("who", "kind", "token_id", "method", "repo", "revision", "path", "status", "bytes", "client", "action")


class AuditLog:
    """Where audit lines go: a file (`path`) or standard output (`-`)."""

    def __init__(self, target: str):
        self._logger = logging.getLogger(f"hubmirror.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handler = (logging.StreamHandler(sys.stdout) if target == "-"
                         else logging.handlers.WatchedFileHandler(Path(target), encoding="utf-8"))
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)

    def record(self, **fields) -> None:
        """One line of `fields` (those of _FIELDS), stamped with the time (UTC, milliseconds)."""
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        line.update((k, fields[k]) for k in _FIELDS if fields.get(k) is not None)
        self._logger.info(json.dumps(line, separators=(",", ":"), ensure_ascii=True))

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


class AuditMiddleware:
    """ASGI middleware writing the audit line of every request a handler marked (`request.state.file_request`),
    with the status and the body bytes actually sent, and who and what the handler found (`state.principal`,
    `state.read`: repo, revision, path)."""

    def __init__(self, app, audit: AuditLog):
        self.app, self.audit = app, audit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        answer = {"status": None, "bytes": 0}

        async def counted(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            state = scope.get("state") or {}
            if state.get("file_request"):
                principal, read = state.get("principal"), state.get("read") or (None, None, None)
                client = scope.get("client")
                self.audit.record(who=getattr(principal, "name", None), kind=getattr(principal, "kind", None),
                                  token_id=getattr(principal, "token_id", None), method=scope.get("method"),
                                  repo=read[0], revision=read[1], path=read[2] or scope.get("path", "")[:500],
                                  status=answer["status"], bytes=answer["bytes"], client=client[0] if client else None)


def summarise(path: str, *, repo: str | None = None, who: str | None = None,
              within: float | None = None) -> list[dict]:
    """Per (who, repo): requests, bytes and the last time, of the file reads in the audit log at `path` (repo a glob,
    any case; `within` seconds back from now), most bytes first. Lines that are not audit lines are skipped."""
    cutoff = None if within is None else time.time() - within
    pattern = None if repo is None else repo.lower()
    groups: dict[tuple[str, str], dict] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for text in lines:
            try:
                line = json.loads(text)
                at = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            except (ValueError, KeyError, TypeError):
                continue
            name, model = line.get("who"), line.get("repo")
            if not (isinstance(name, str) and isinstance(model, str)) or line.get("status") not in (200, 206):
                continue
            if (cutoff is not None and at.timestamp() < cutoff) or (who is not None and name != who) or \
                    (pattern is not None and not fnmatch.fnmatchcase(model.lower(), pattern)):
                continue
            group = groups.setdefault((name, model), {"who": name, "repo": model, "requests": 0, "bytes": 0,
                                                      "last": line["time"]})
            group["requests"] += 1
            group["bytes"] += line.get("bytes") if isinstance(line.get("bytes"), int) else 0
            group["last"] = max(group["last"], line["time"])
    return sorted(groups.values(), key=lambda g: (-g["bytes"], g["who"], g["repo"]))
