"""`hubmirror adopt PATH`: bring caches already on this machine into the mirror, with no network.

A plugin registers `Adopter` objects through the `register_adopters` hook; each recognises what it takes under a path
(an HF hub cache's `models--*` folders, a `TORCH_HOME`'s checkpoints, ...) and brings it in through an `Adoption`,
the core's verified ways in: `store` (a revision read in place, whole or not at all) and `pull` (through a registered
source that reads local files). Files that nothing vouches for are reported and left out, unless `allow_unverified`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from hubmirror.errors import HubmirrorError, IntegrityError, UsageError
from hubmirror.fetch.download import Download, local_download
from hubmirror.sources import Source, SourceContext
from hubmirror.upstream import ModelRef, RemoteFile, ResolvedRevision, check_listing

if TYPE_CHECKING:  # imported by the commands that adopt, not by every plugin that registers an adopter
    from hubmirror.mirror import Mirror
    from hubmirror.plugin_manager import PluginRegistry


@dataclass
class AdoptReport:
    adopted: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # left out (or adopted, with allow_unverified)
    corrupt: list[str] = field(default_factory=list)  # bytes that disagree with what the layout records
    skipped: list[str] = field(default_factory=list)  # things adopt does not take, and why

    def merge(self, other: "AdoptReport") -> None:
        """Add what `other` reports to this report."""
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))


class _AdoptedFiles(Source):
    """Reads files of a local cache for the store; nothing to resolve."""

    name = "adopt"
    description = "files adopted from a local cache"

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        raise UsageError("adopted files are read in place, not resolved")

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        return local_download(file.location, offset)


@dataclass
class Adoption:
    """What adopters bring files in through: the mirror's verified store, and nothing else."""

    mirror: Mirror
    registry: PluginRegistry
    ctx: SourceContext
    allow_unverified: bool

    def store(self, revision: ResolvedRevision, report: AdoptReport) -> None:
        """Store a revision whose files are read in place (`location`: a local path), checked against the digests
        they carry: adopted whole, reported corrupt, or skipped when a file carries none (unless allow_unverified)."""
        from hubmirror.admit import admit_revisions  # not at plugin load: it brings in the scanners

        label = f"{revision.ref.key}@{revision.commit}"
        if not self.allow_unverified and any(not f.digests for f in revision.files):
            report.skipped.append(f"{label} ({revision.requested}): has unverifiable files")
            return
        try:
            check_listing(revision)
            with self.mirror.shared_lock(f"adopt {label}"):
                admit_revisions(self.mirror, _AdoptedFiles(), "adopt", [(revision, revision.files)], self.ctx)
            report.adopted.append(f"{label} ({revision.requested})")
        except IntegrityError as exc:
            report.corrupt.append(f"{label}: {exc}")

    def pull(self, ref: ModelRef, what: str, report: AdoptReport) -> None:
        """Pull `ref` through its registered source (one that reads this machine's files, like `file:`); `what`
        names it in the report."""
        from hubmirror.pull import pull

        try:
            for result in pull(self.mirror, self.registry, ref, self.ctx):
                report.adopted.append(f"{result.revision.ref.key}@{result.revision.commit}")
        except IntegrityError as exc:
            report.corrupt.append(f"{what}: {exc}")
        except HubmirrorError as exc:
            report.skipped.append(f"{what}: {exc}")


class Adopter(ABC):
    """One kind of client cache `hubmirror adopt` takes. Subclasses set `name` and implement both methods."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def find(self, path: Path) -> list[Path]:
        """What this adopter takes at `path` (a cache root, or one of its folders): the folders to `adopt`, in order."""

    @abstractmethod
    def adopt(self, found: Path, adoption: Adoption) -> AdoptReport:
        """Bring one folder `find` answered into the mirror through `adoption`; report what came of each thing in it."""


def registered_adopters(registry: PluginRegistry) -> list[Adopter]:
    """Every adopter the plugins register (`register_adopters`)."""
    return [adopter for adopter, _ in registry.collect("register_adopters", Adopter, "adopter").values()]


def adopt(mirror: Mirror, registry: PluginRegistry, path: Path, *, allow_unverified: bool = False) -> AdoptReport:
    """Adopt what the registered adopters find at `path` (an HF hub cache, a `TORCH_HOME`, or one of their folders)."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    adopters = registered_adopters(registry)
    adoption = Adoption(mirror, registry, mirror.source_context(registry), allow_unverified)
    report = AdoptReport()
    found = [(adopter, folder) for adopter in adopters for folder in adopter.find(path)]
    for adopter, folder in found:
        report.merge(adopter.adopt(folder, adoption))
    if not found:
        names = ", ".join(sorted(a.name for a in adopters)) or "none registered"
        report.skipped.append(f"{path}: no adopter recognises anything here (adopters: {names})")
    return report
