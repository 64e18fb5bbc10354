"""timm's pretrained models: `timm:<arch>[.<tag>]`, e.g. `timm:resnet50.a1_in1k` (a bare arch takes its default tag).

Metadata comes from timm's own registry (`list_pretrained()` and each `PretrainedCfg`), read once per installed timm
version in a child process (so the CLI never imports torch itself) and kept as JSON in the user's cache. Weights come
through the Hugging Face source (`hf_hub_id`, timm's first choice) or the `url` (with its hash prefix) otherwise.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hubmirror.plugins.urls import url_file

from hubmirror.api import (
    Delegated,
    Download,
    HubmirrorError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    delegate_files,
    hookimpl,
    open_range,
)

# timm's own order of preference for weight files in a Hugging Face repo (timm/models/_hub.py)
HF_WEIGHT_FILES = ["model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]

_EXTRACT = r"""
import json, sys, timm
from timm.models import get_pretrained_cfg
names = timm.list_pretrained()
cfgs = {n: get_pretrained_cfg(n).to_dict() for n in names}
defaults = {}
for n in names:
    arch = n.split(".", 1)[0]
    if arch not in defaults:
        cfg = get_pretrained_cfg(arch)
        defaults[arch] = f"{arch}.{cfg.tag}" if cfg is not None and cfg.tag else n
json.dump({"version": timm.__version__, "models": cfgs, "defaults": defaults}, sys.stdout)
"""


def _cache_dir() -> Path:
    base = os.environ.get("HUBMIRROR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hubmirror")
    return Path(base)


def timm_registry() -> dict:
    """{"version", "models": {name: pretrained cfg}, "defaults": {arch: name}} of the installed timm."""
    try:
        installed = version("timm")
    except PackageNotFoundError:
        raise HubmirrorError("the timm source needs timm installed (pip install timm)") from None
    cache = _cache_dir() / f"timm-registry-{installed}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    done = subprocess.run([sys.executable, "-c", _EXTRACT], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise HubmirrorError(f"reading timm's registry failed: {done.stderr.strip().splitlines()[-1:]}")
    registry = json.loads(done.stdout)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temp = cache.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(json.dumps(registry))
    os.replace(temp, cache)
    return registry


def model_metadata(name: str, cfg: dict) -> ModelMetadata:
    """Catalog metadata of one pretrained config."""
    arch, _, tag = name.partition(".")
    paper_ids = [p.strip() for p in str(cfg.get("paper_ids") or "").split(",") if p.strip()]
    description = cfg.get("description") or cfg.get("paper_name") or f"timm {arch} pretrained weights ({tag or 'default'})"
    return ModelMetadata(
        source="timm",
        model_id=name,
        task="image-classification" if cfg.get("num_classes") else "image-feature-extraction",
        library="timm",
        architecture=arch,
        license=cfg.get("license"),
        tags=[t for t in (tag, *tag.split("_"), *(p.lower() for p in paper_ids)) if t],
        description=description,
        extra=cfg,
    )


class TimmSource(Source):
    name = "timm"
    description = "timm pretrained models (metadata from timm's registry; weights via hf or url)"

    def parse(self, spec: str) -> ModelRef:
        if not spec or "/" in spec or any(c.isspace() for c in spec):
            raise UsageError(f"malformed reference timm:{spec}: expected timm:ARCH[.TAG], e.g. timm:resnet50.a1_in1k")
        return super().parse(spec)

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        models = timm_registry()["models"]
        names = [n for n in models if not query or query.lower() in n.lower()]
        for name in names[:limit]:
            yield model_metadata(name, models[name])

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        registry = timm_registry()
        name = registry["defaults"].get(ref.model_id, ref.model_id)
        cfg = registry["models"].get(name)
        if cfg is None:
            close = difflib.get_close_matches(ref.model_id, list(registry["models"]) + list(registry["defaults"]), n=5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotFoundError(f"timm {registry['version']} has no pretrained model {ref.model_id!r}{hint}")
        meta = model_metadata(name, cfg)
        model_ref = ModelRef(self.name, name, ref.revision)
        if cfg.get("hf_hub_id"):
            return self._through_hf(model_ref, cfg["hf_hub_id"], meta, ctx)
        if cfg.get("url"):
            file = url_file(cfg["url"] if isinstance(cfg["url"], str) else cfg["url"][0], ctx)
            return ResolvedRevision(model_ref, file.sha256, ref.revision or "default", meta, [file])
        raise NotFoundError(f"timm:{name} has no downloadable pretrained weights")

    def _through_hf(self, ref: ModelRef, hf_id: str, meta: ModelMetadata, ctx: SourceContext) -> ResolvedRevision:
        hf = ctx.source_for("hf")
        hf_revision = hf.resolve(ModelRef("hf", hf_id, ref.revision), ctx)
        by_path = {f.path: f for f in hf_revision.files}
        weights = next((by_path[p] for p in HF_WEIGHT_FILES if p in by_path), None)
        if weights is None:
            raise NotFoundError(f"{hf_id} holds none of the weight files timm loads ({', '.join(HF_WEIGHT_FILES)})")
        chosen = [f for f in (by_path.get("config.json"), weights) if f is not None]
        meta.extra = {**meta.extra, "hf_revision": hf_revision.commit}
        return ResolvedRevision(ref, hf_revision.commit, hf_revision.requested, meta,
                                delegate_files(hf, hf_revision, chosen))

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        if isinstance(file.location, Delegated):
            return file.location.open(ctx, offset)
        return open_range(ctx.session(), file.location, offset, timeout=ctx.timeout)


@hookimpl
def register_sources(register):
    register(TimmSource())


@hookimpl
def served_repo_id(model):
    """timm models are served under their `hf_hub_id`, where `timm.create_model(..., pretrained=True)` asks."""
    if model["source"] != TimmSource.name:
        return None
    return json.loads(model.get("metadata") or "{}").get("hf_hub_id") or None
