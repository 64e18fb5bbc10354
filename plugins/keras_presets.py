"""KerasHub presets: `keras:<preset>` (e.g. `keras:bert_tiny_en_uncased`), `keras:kaggle://…` or `keras:hf://…`.

Built-in preset names resolve to their `kaggle_handle` from the installed keras-hub package's `*_presets.py` tables,
read with `ast` (keras-hub is never imported, so no Keras or backend is needed), and are mirrored whole through the
Kaggle source (keeping the framework segment as written) or the Hugging Face source. `index keras` catalogues every
built-in preset offline.

The requests a pull sends are the delegate source's, and no others: for a `kaggle://` handle (every built-in preset)
those of `hubmirror.plugins.kaggle` (kagglesdk's GetModelInstance, ListModelInstanceVersionFiles, one
DownloadModelInstanceVersion per file and the signed storage GETs), which is what keras-hub's `get_file` makes
kagglehub send, `model_download(handle, path)` once per file; for an `hf://` handle those of
`hubmirror.plugins.huggingface` (what `hf_hub_download` sends). Where keras-hub probes optional files one by one (a
404 meaning absent), hubmirror takes the version's file list and fetches what is there. `index keras` sends nothing:
it reads keras-hub's preset tables from the installed package.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path

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
)


@lru_cache(maxsize=1)
def builtin_presets() -> dict[str, dict]:
    """{preset name: {"handle": kaggle://… or hf://…, "metadata": {...}}} from keras-hub's preset tables."""
    spec = importlib.util.find_spec("keras_hub")
    if spec is None or not spec.submodule_search_locations:
        raise HubmirrorError("built-in KerasHub presets need the keras-hub package (pip install --no-deps keras-hub)")
    presets: dict[str, dict] = {}
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*_presets.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                try:
                    table = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for name, entry in table.items():
                    if isinstance(entry, dict) and isinstance(entry.get("kaggle_handle"), str):
                        presets[name] = {"handle": entry["kaggle_handle"], "metadata": entry.get("metadata") or {}}
    return presets


def upstream_ref(handle: str, ctx: SourceContext) -> tuple[Source, ModelRef]:
    """The source and reference a `kaggle://` or `hf://` preset handle names."""
    scheme, sep, rest = handle.partition("://")
    if not sep or scheme not in ("kaggle", "hf"):
        raise UsageError(f"preset handle {handle!r} is neither kaggle:// nor hf://")
    source = ctx.source_for(scheme)
    return source, source.parse(rest)


class KerasPresetSource(Source):
    name = "keras"
    description = "KerasHub presets (built-in names from the keras-hub package, kaggle:// and hf:// handles)"

    def parse(self, spec: str) -> ModelRef:
        if not spec or any(c.isspace() for c in spec):
            raise UsageError(f"malformed reference keras:{spec}: expected keras:PRESET, keras:kaggle://… or keras:hf://…")
        return ModelRef(self.name, spec)

    def _preset(self, name: str) -> tuple[str, dict]:
        if "://" in name:
            return name, {}
        presets = builtin_presets()
        if name not in presets:
            close = difflib.get_close_matches(name, list(presets), n=5)
            raise NotFoundError(f"no built-in KerasHub preset {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
        return presets[name]["handle"], presets[name]["metadata"]

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        handle, preset_meta = self._preset(ref.model_id)
        source, upstream = upstream_ref(handle, ctx)
        revision = source.resolve(upstream, ctx)
        meta = ModelMetadata(
            self.name, ref.model_id, library="keras-hub", architecture=preset_meta.get("path"),
            license=revision.metadata.license, tags=["keras", *([preset_meta["path"]] if preset_meta.get("path") else [])],
            description=preset_meta.get("description") or revision.metadata.description,
            extra={"handle": handle, "params": preset_meta.get("params"), "upstream_commit": revision.commit},
        )
        return ResolvedRevision(ref, f"{upstream.source}-{revision.commit}", revision.requested, meta,
                                delegate_files(source, revision, revision.files))

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None):
        names = [n for n in builtin_presets() if not query or query.lower() in n.lower()]
        for name in names[:limit]:
            entry = builtin_presets()[name]
            meta = entry["metadata"]
            yield ModelMetadata(self.name, name, library="keras-hub", architecture=meta.get("path"),
                                tags=["keras", *([meta["path"]] if meta.get("path") else [])],
                                description=meta.get("description"),
                                extra={"handle": entry["handle"], "params": meta.get("params")})

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        if not isinstance(file.location, Delegated):
            raise HubmirrorError(f"{revision.ref}: {file.path} has no upstream")
        return file.location.open(ctx, offset)


@hookimpl
def register_sources(register):
    register(KerasPresetSource())
