"""`hubmirror materialize`: client cache layouts written from the store, so clients load with no server at all.

A plugin registers `Layout` objects through the `register_layouts` hook; each writes a revision through a `Placer`,
which puts store blobs inside the target only (hard-linked where the file system allows, read-only like the store;
copied otherwise or with `copy=True`, and from a store with no local files, a bucket, through `store.open`) and
leaves out the files the admission scan quarantined. The core registers the plain `dir` layout (`<repo id>/<path>`,
repo ids as hubmirror.serving.hub_ids serves them); the client caches (`hf-cache`, `torch-home`, ...) come from the
plugins.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hubmirror.errors import UsageError
from hubmirror.hookspecs import hookimpl
from hubmirror.safepath import check_relative_path
from hubmirror.serving.hub_ids import repo_id

if TYPE_CHECKING:  # imported by the commands that materialise, not by every plugin that registers a layout
    from hubmirror.mirror import Mirror
    from hubmirror.plugin_manager import PluginRegistry


COPY_CHUNK = 4 * 1024 * 1024  # a copy from a store with no local file reads this much at a time


@dataclass
class MaterializeReport:
    files: int = 0
    linked: int = 0
    copied: int = 0
    quarantined: list[str] = field(default_factory=list)  # files left out: the admission scan quarantined them


class Placer:
    """Puts store blobs at paths inside the target, refusing any path that would leave it. Layouts read the catalog
    through `mirror` and the plugins through `registry`."""

    def __init__(self, mirror: Mirror, registry: PluginRegistry, target: Path, copy: bool,
                 report: MaterializeReport):
        self.mirror, self.registry, self.copy, self.report = mirror, registry, copy, report
        self.target = target.resolve()

    def inside(self, relative: str) -> Path:
        """The path of `relative` in the target; UsageError if it would leave the target."""
        path = self.target / check_relative_path(relative)
        if self.target not in path.parent.resolve().parents and path.parent.resolve() != self.target:
            raise UsageError(f"{relative} would leave {self.target}")
        return path

    def place(self, sha256: str, relative: str) -> Path | None:
        """Put the blob at `relative` (linked, or copied); None if it is quarantined and so left out."""
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
            if not self.copy and source is not None and _hard_link(source, temp):
                self.report.linked += 1
            else:
                if source is not None:
                    shutil.copyfile(source, temp)
                else:  # a store with no local files (a bucket): copy what its reader streams
                    with self.mirror.store.open(sha256) as blob, open(temp, "wb") as out:
                        shutil.copyfileobj(blob, out, COPY_CHUNK)
                self.report.copied += 1
            os.replace(temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)  # no half-written file stays behind
            raise
        self.report.files += 1
        return dest

    def link(self, relative: str, placed: Path) -> None:
        """A relative symlink at `relative` to a file already placed; a copy of it where symlinks fail or with copy."""
        link = self.inside(relative)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            if self.copy:
                raise OSError("copy requested")
            link.symlink_to(os.path.relpath(placed, link.parent))
        except OSError:
            shutil.copyfile(placed, link)

    def write_text(self, relative: str, text: str) -> None:
        """Write a small file of the layout's own (a ref, a listing) atomically."""
        dest = self.inside(relative)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.tmp")
        temp.write_text(text)
        os.replace(temp, dest)


class Layout(ABC):
    """A client cache layout. Subclasses set `name` (the `--layout` value) and implement `write`."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def write(self, placer: Placer, model: dict, commit: str) -> None:
        """Write one revision (`model` a catalog `models` row) into the target through `placer`."""

    def finish(self, placer: Placer) -> None:
        """Called once after every revision is written (a marker file, say). Nothing by default."""


class PlainDirLayout(Layout):
    name = "dir"
    description = "plain trees: <repo id>/<path>"

    def write(self, placer: Placer, model: dict, commit: str) -> None:

        repo = repo_id(model, placer.registry)
        for row in placer.mirror.catalog.files(model["key"], commit):
            placer.place(row["sha256"], f"{repo}/{row['path']}")


def _hard_link(source: Path, link: Path) -> bool:
    """Hard-link `link` to `source`; False where the file system refuses (another device, no links)."""
    try:
        os.link(source, link)
    except OSError:
        return False
    return True


@hookimpl
def register_layouts(register):
    register(PlainDirLayout())


def registered_layouts(registry: PluginRegistry) -> dict[str, Layout]:
    """{name: layout} for every layout the plugins register (`register_layouts`)."""
    return {name: layout for name, (layout, _) in registry.collect("register_layouts", Layout, "layout").items()}


def materialize(mirror: Mirror, registry: PluginRegistry, layout: str, target: Path,
                selection: list[tuple[str, str]], *, copy: bool = False) -> MaterializeReport:
    """Write `selection` ((model key, commit) pairs) into `target` in the registered layout named `layout`."""
    layouts = registered_layouts(registry)
    if layout not in layouts:
        raise UsageError(f"unknown layout {layout!r} (registered: {', '.join(sorted(layouts))})")
    target.mkdir(parents=True, exist_ok=True)
    report = MaterializeReport()
    placer = Placer(mirror, registry, target, copy, report)
    for key, commit in selection:
        layouts[layout].write(placer, mirror.catalog.model(key), commit)
    layouts[layout].finish(placer)
    return report
