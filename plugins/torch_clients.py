"""PyTorch's own cache (`TORCH_HOME`): the `torch-home` layout `hubmirror materialize` writes and the adopter that
brings a torch cache's checkpoints into the mirror.

The layout holds `hub/{owner}_{repo}_{ref}/…` for PyTorch Hub repositories (plus `hub/trusted_list`) and
`hub/checkpoints/<name>` for weight files (a hub repo's `checkpoints/`, single files pulled by URL or from this
machine), for `TORCH_HOME=TARGET`.

Adopting takes each file of `hub/checkpoints/` through the `file:` source, checked against the hash prefix of its
name (`name-<hex>.pth`, as torch.hub's `check_hash` does). A hub checkout records no digests and is only reported.
"""

from __future__ import annotations

from pathlib import Path

from hubmirror.plugins.local_files import LocalFileSource
from hubmirror.plugins.torchhub import TorchHubSource
from hubmirror.plugins.urls import UrlSource, hash_prefix

from hubmirror.api import Adopter, Adoption, AdoptReport, Layout, Placer, hookimpl

CHECKPOINTS = "checkpoints"
WEIGHT_FILE_SOURCES = (UrlSource.name, LocalFileSource.name)  # what torch.hub would fetch into hub/checkpoints


class TorchHomeLayout(Layout):
    name = "torch-home"
    description = "a TORCH_HOME (hub repositories, hub/checkpoints weight files)"

    def write(self, placer: Placer, model: dict, commit: str) -> None:
        catalog = placer.mirror.catalog
        rows = catalog.files(model["key"], commit)
        if model["source"] == TorchHubSource.name:
            owner, name = model["model_id"].split("/")[:2]
            refs = [r["name"] for r in catalog.refs(model["key"]) if r["commit_id"] == commit] or [commit]
            for ref in refs:
                folder = f"hub/{owner}_{name}_{ref.replace('/', '_')}"
                for row in rows:
                    if not row["path"].startswith(f"{CHECKPOINTS}/"):
                        placer.place(row["sha256"], f"{folder}/{row['path']}")
            trusted = placer.inside("hub/trusted_list")
            listed = set(trusted.read_text().split()) if trusted.exists() else set()
            placer.write_text("hub/trusted_list", "\n".join(sorted(listed | {f"{owner}_{name}"})) + "\n")
        for row in rows:
            if row["path"].startswith(f"{CHECKPOINTS}/") or model["source"] in WEIGHT_FILE_SOURCES:
                placer.place(row["sha256"], f"hub/{CHECKPOINTS}/{row['path'].rsplit('/', 1)[-1]}")


def _hub_checkouts(hub_dir: Path) -> list[Path]:
    """The torch hub repository checkouts (`owner_repo_ref/hubconf.py`) in a `hub` folder."""
    return sorted(p for p in hub_dir.glob("*_*_*") if (p / "hubconf.py").is_file())


class TorchHomeAdopter(Adopter):
    name = "torch-home"
    description = "a TORCH_HOME's hub/checkpoints weight files"

    def find(self, path: Path) -> list[Path]:
        """`path` and `path/hub`, where either holds checkpoints or hub checkouts."""
        return [d for d in (path, path / "hub") if (d / CHECKPOINTS).is_dir() or (d.is_dir() and _hub_checkouts(d))]

    def adopt(self, found: Path, adoption: Adoption) -> AdoptReport:
        report = AdoptReport()
        checkpoints = found / CHECKPOINTS
        files = checkpoints.iterdir() if checkpoints.is_dir() else []
        for file in sorted(p for p in files if p.is_file() and not p.is_symlink()):
            if not hash_prefix(file.name):
                report.unverified.append(str(file))
                if not adoption.allow_unverified:
                    report.skipped.append(f"{file}: its name carries no hash prefix")
                    continue
            ref = adoption.registry.source(LocalFileSource.name)[0].parse(str(file.resolve()))
            adoption.pull(ref, str(file), report)
        for checkout in _hub_checkouts(found):
            report.skipped.append(f"{checkout}: a torch hub checkout records no digests; pull "
                                  f"{TorchHubSource.name}:OWNER/REPO:REF")
        return report


@hookimpl
def register_layouts(register):
    register(TorchHomeLayout())


@hookimpl
def register_adopters(register):
    register(TorchHomeAdopter())
