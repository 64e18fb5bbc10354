"""`hubmirror materialize`: client cache layouts written from the store, so clients load with no server at all.

- `hf-cache`: `models--org--name/{blobs,snapshots,refs,trees}` as huggingface_hub ≥ 1.22 writes it (blobs named by
  sha256 or git blob id, snapshot entries as relative symlinks, refs written atomically, `trees/<commit>.json`), for
  `HF_HUB_OFFLINE=1` clients with `HF_HUB_CACHE` pointing at TARGET. Repo ids follow hubmirror.serving.hub_ids (timm models
  appear under their `hf_hub_id`).
- `torch-home`: `hub/{owner}_{repo}_{ref}/…` for PyTorch Hub repos (plus `hub/trusted_list`) and `hub/checkpoints/<name>`
  for weight files, for `TORCH_HOME=TARGET`.
- `dir`: `<repo id>/<path>` plain trees.
Blobs are hard-linked from the store where the file system allows (read-only, like the store), copied otherwise or
with `copy=True`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror.errors import UsageError
from hubmirror.mirror import Mirror
from hubmirror.safepath import check_relative_path
from hubmirror.serving.hub_ids import hub_commit, repo_id, served_file

LAYOUTS = ("hf-cache", "torch-home", "dir")
CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# hubmirror: a Hugging Face cache materialised from a mirror\n"


@dataclass
class MaterializeReport:
    files: int = 0
    linked: int = 0
    copied: int = 0
    quarantined: list[str] = field(default_factory=list)  # files left out: the admission scan quarantined them


class _Placer:
    """Puts store blobs at paths inside the target, refusing any path that would leave it."""

    def __init__(self, mirror: Mirror, target: Path, copy: bool, report: MaterializeReport, registry):
        self.mirror, self.target, self.copy, self.report = mirror, target.resolve(), copy, report
        self.registry = registry

    def inside(self, relative: str) -> Path:
        path = self.target / check_relative_path(relative)
        if self.target not in path.parent.resolve().parents and path.parent.resolve() != self.target:
            raise UsageError(f"{relative} would leave {self.target}")
        return path

    def place(self, sha256: str, relative: str) -> Path | None:
        if self.mirror.catalog.is_quarantined(sha256):
            self.report.quarantined.append(relative)
            return None
        dest = self.inside(relative)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and dest.stat().st_size == self.mirror.store.stat(sha256).size:
            return dest
        source = self.mirror.store.local_path(sha256)
        temp = dest.with_name(f".{dest.name}.tmp")
        temp.unlink(missing_ok=True)
        try:
            if self.copy:
                raise OSError("copy requested")
            os.link(source, temp)
            self.report.linked += 1
        except OSError:
            shutil.copyfile(source, temp)
            self.report.copied += 1
        os.replace(temp, dest)
        self.report.files += 1
        return dest

    def write_text(self, relative: str, text: str) -> None:
        dest = self.inside(relative)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.tmp")
        temp.write_text(text)
        os.replace(temp, dest)


def materialize(mirror: Mirror, registry, layout: str, target: Path, selection: list[tuple[str, str]], *,
                copy: bool = False) -> MaterializeReport:
    """Write `selection` ((model key, commit) pairs) into `target` in `layout`."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    target.mkdir(parents=True, exist_ok=True)
    report = MaterializeReport()
    placer = _Placer(mirror, target, copy, report, registry)
    write = {"hf-cache": _hf_cache, "torch-home": _torch_home, "dir": _plain_dir}[layout]
    for key, commit in selection:
        write(mirror, placer, mirror.catalog.model(key), commit)
    if layout == "hf-cache":
        placer.write_text("CACHEDIR.TAG", CACHEDIR_TAG)
    return report


def _hf_cache(mirror: Mirror, placer: _Placer, model: dict, commit: str) -> None:
    repo = repo_id(model, placer.registry)
    folder = f"models--{repo.replace('/', '--')}"
    sha = hub_commit(model["key"], commit)
    tree = {}
    for row in mirror.catalog.files(model["key"], commit):
        served = served_file(row)
        blob = placer.place(served.sha256, f"{folder}/blobs/{served.etag}")
        if blob is None:
            continue
        link = placer.inside(f"{folder}/snapshots/{sha}/{served.path}")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            if placer.copy:
                raise OSError("copy requested")
            link.symlink_to(os.path.relpath(blob, link.parent))
        except OSError:
            shutil.copyfile(blob, link)
        entry = {"size": served.size, "blob_id": served.oid}
        if served.lfs:
            entry.update(lfs_sha256=served.sha256, lfs_size=served.size)
        tree[served.path] = entry
    placer.write_text(f"{folder}/trees/{sha}.json", json.dumps({"format_version": 1, "files": tree}))
    names = {r["name"] for r in mirror.catalog.refs(model["key"]) if r["commit_id"] == commit}
    if model["latest_commit"] == commit:
        names.add("main")
    for name in names:
        placer.write_text(f"{folder}/refs/{name}", sha)


def _torch_home(mirror: Mirror, placer: _Placer, model: dict, commit: str) -> None:
    rows = mirror.catalog.files(model["key"], commit)
    if model["source"] == "torchhub":
        owner, name = model["model_id"].split("/")[:2]
        refs = [r["name"] for r in mirror.catalog.refs(model["key"]) if r["commit_id"] == commit] or [commit]
        for ref in refs:
            folder = f"hub/{owner}_{name}_{ref.replace('/', '_')}"
            for row in rows:
                if not row["path"].startswith("checkpoints/"):
                    placer.place(row["sha256"], f"{folder}/{row['path']}")
        trusted = placer.inside("hub/trusted_list")
        listed = set(trusted.read_text().split()) if trusted.exists() else set()
        placer.write_text("hub/trusted_list", "\n".join(sorted(listed | {f"{owner}_{name}"})) + "\n")
    for row in rows:
        if row["path"].startswith("checkpoints/") or model["source"] in ("url", "file"):
            placer.place(row["sha256"], f"hub/checkpoints/{row['path'].rsplit('/', 1)[-1]}")


def _plain_dir(mirror: Mirror, placer: _Placer, model: dict, commit: str) -> None:
    repo = repo_id(model, placer.registry)
    for row in mirror.catalog.files(model["key"], commit):
        placer.place(row["sha256"], f"{repo}/{row['path']}")
