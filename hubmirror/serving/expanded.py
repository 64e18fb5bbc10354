"""The fields tree and paths-info entries carry with `expand=true` (HfFileSystem's `info`, `modified`, `ls(detail)`):
`lastCommit` (the newest revision the mirror holds in which the path changed, among its history as the mirror knows
it) and, for files, `securityFileStatus` from the mirror's own admission verdict (docs/serving.md says what stands
where the Hub's own value is unknown: no antivirus scan is run here, so `avScan` is null)."""

from __future__ import annotations

import json

from hubmirror.serving import hf_api
from hubmirror.serving.hub_ids import hub_commit, hub_time

MAX_HISTORY = 50  # revisions looked back through for a path's last change


def expand(entries: list[dict], view, model: dict, commit: str) -> list[dict]:
    """`entries` (tree or paths-info) with `lastCommit` on each and `securityFileStatus` on each file."""
    key = model["key"]
    history = view.history(model, commit)[:MAX_HISTORY]
    with view.catalog() as catalog:
        contents = [{f["path"]: f["sha256"] for f in catalog.files(key, r["commit_id"])} for r in history]
        verdicts = catalog.file_verdicts(key, commit)
    commits = [{"id": hub_commit(key, r["commit_id"]), "title": _title(r), "date": hf_api.commit_date(r)}
               for r in history] or [{"id": hub_commit(key, commit), "title": "",
                                      "date": hub_time(model["last_modified"]) or hf_api.created_at(model)}]
    changed = {path: _changed_at(path, contents) for path in (contents[0] if contents else {})}
    for entry in entries:
        path = entry["path"]
        if entry["type"] == "directory":
            below = [i for p, i in changed.items() if p.startswith(f"{path}/")]
            entry["lastCommit"] = commits[min(below, default=0)]
        else:
            entry["lastCommit"] = commits[changed.get(path, 0)]
            verdict = verdicts.get(path)
            if verdict is not None:
                entry["securityFileStatus"] = {"status": _status(verdict), "avScan": None, "pickleImportScan": None}
    return entries


def _changed_at(path: str, contents: list[dict[str, str]]) -> int:
    """The index in the history (newest first) of the revision in which `path` last got its present bytes."""
    now = contents[0].get(path)
    index = 0
    while index + 1 < len(contents) and contents[index + 1].get(path) == now:
        index += 1
    return index


def _title(revision: dict) -> str:
    return json.loads(revision.get("commit_info") or "{}").get("title", "")


def _status(verdict: dict) -> str:
    """The Hub's word for a file's scan: safe, unsafe (quarantined here) or caution (flagged, but served)."""
    if verdict["quarantined"]:
        return "unsafe"
    return "safe" if verdict["verdict"] == "clean" or verdict["allowed"] else "caution"
