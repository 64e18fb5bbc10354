"""Finding and loading plugins: the built-ins by module name (DEFAULT_PLUGINS, as llm and datasette do), third-party
plugins from the `hubmirror` entry-point group, and site-local files (`--plugins-dir`).

`HUBMIRROR_LOAD_PLUGINS` limits entry-point plugins: unset loads them all, `""` none, `a,b` only those distributions.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pluggy

from hubmirror import hookspecs
from hubmirror.errors import UsageError
from hubmirror.sources import Source

ENTRY_POINT_GROUP = "hubmirror"
LOAD_PLUGINS_ENV = "HUBMIRROR_LOAD_PLUGINS"
DEFAULT_PLUGINS = [
    "hubmirror.exchange.materialize",  # the core's own `dir` layout
    "hubmirror.store.s3",  # the s3:// store backend
    "hubmirror.plugins.huggingface",
    "hubmirror.plugins.urls",
    "hubmirror.plugins.torchhub",
    "hubmirror.plugins.timm_models",
    "hubmirror.plugins.local_files",
    "hubmirror.plugins.kaggle",
    "hubmirror.plugins.ngc",
    "hubmirror.plugins.tfhub",
    "hubmirror.plugins.keras_presets",
    "hubmirror.plugins.oci",
    "hubmirror.plugins.model_loaders",
    "hubmirror.plugins.hf_clients",
    "hubmirror.plugins.torch_clients",
]


class PluginRegistry:
    """The plugin manager plus what the plugins registered."""

    def __init__(self, plugin_dirs: list[Path] | None = None, *, load_entry_points: bool = True):
        self.plugin_dirs = [str(d) for d in plugin_dirs or []]
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(module_name), name=module_name.rsplit(".", 1)[-1])
        if load_entry_points:
            self._load_entry_points()
        for directory in plugin_dirs or []:
            self._load_directory(Path(directory))
        self.pm.check_pending()
        self._sources: dict[str, tuple[Source, str]] | None = None
        self._stores: dict[str, tuple] | None = None

    def _load_entry_points(self) -> None:
        wanted = os.environ.get(LOAD_PLUGINS_ENV)
        if wanted is None:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            return
        for name in filter(None, (n.strip() for n in wanted.split(","))):
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name)

    def _load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            raise UsageError(f"plugins directory {directory} does not exist")
        for path in sorted(directory.glob("*.py")):
            name = f"hubmirror_site_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            if self.pm.get_plugin(path.stem) is None:
                self.pm.register(module, name=path.stem)

    def each_plugin(self, hook: str):
        """(plugin name, caller) for each plugin implementing `hook`, in the order they were registered: the caller
        calls the hook through pluggy for that plugin alone, so that what it registers is known to be its own."""
        implementing = [impl.plugin for impl in getattr(self.pm.hook, hook).get_hookimpls()]
        for plugin in implementing:
            others = [p for p in implementing if p is not plugin]
            yield self.pm.get_name(plugin), self.pm.subset_hook_caller(hook, remove_plugins=others)

    def collect(self, hook: str, kind: type, what: str) -> dict[str, tuple]:
        """{name: (object, plugin)} of what the plugins register through `hook`; a name claimed twice is an error."""
        found: dict[str, tuple] = {}
        for plugin, call in self.each_plugin(hook):
            def register(obj, _plugin=plugin) -> None:
                if not isinstance(obj, kind) or not getattr(obj, "name", None):
                    raise UsageError(f"plugin {_plugin} registered something that is not a named {what}")
                if obj.name in found:
                    raise UsageError(f"{what} {obj.name!r} is registered by both {found[obj.name][1]} and {_plugin}")
                found[obj.name] = (obj, _plugin)

            call(register=register)
        return found

    def sources(self) -> dict[str, tuple[Source, str]]:
        """{scheme: (source, plugin name)} for every registered source."""
        if self._sources is None:
            self._sources = self.collect("register_sources", Source, "source")
        return self._sources

    def source(self, name: str) -> tuple[Source, str]:
        try:
            return self.sources()[name]
        except KeyError:
            known = ", ".join(sorted(self.sources())) or "none"
            raise UsageError(f"unknown source {name!r} (known: {known})") from None

    def stores(self) -> dict[str, tuple]:
        """{URL scheme: (store backend, plugin name)} for every registered store backend."""
        if self._stores is None:
            from hubmirror.store.base import StoreBackend  # the store package is not needed to load plugins

            self._stores = self.collect("register_stores", StoreBackend, "store backend")
        return self._stores

    def store_backend(self, url: str):
        """The store backend registered for `url`'s scheme."""
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        try:
            return self.stores()[scheme][0]
        except KeyError:
            known = ", ".join(f"{name}://" for name in sorted(self.stores())) or "none"
            raise UsageError(f"store URL {url!r}: unknown scheme (known: {known})") from None

    def describe(self) -> list[dict]:
        """One entry per plugin: name, version, the hooks it implements, and the names of what it registers through
        each `register_<kind>` hook (`sources`, `loaders`, ...)."""
        registered: dict[str, dict[str, list[str]]] = {}
        for hook in sorted(h for h in vars(self.pm.hook) if h.startswith("register_")):
            for obj_name, (_, plugin) in self.collect(hook, object, hook[len("register_"):]).items():
                registered.setdefault(plugin, {}).setdefault(hook[len("register_"):], []).append(obj_name)
        descriptions: dict[str, dict[str, str]] = {}
        for scheme, (source, plugin) in self.sources().items():
            descriptions.setdefault(plugin, {})[scheme] = source.description
        dists = {plugin: dist for plugin, dist in self.pm.list_plugin_distinfo()}
        out = []
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin)
            dist = dists.get(plugin)
            kinds = registered.get(name, {})
            out.append(
                {
                    "name": name,
                    "module": getattr(plugin, "__name__", repr(plugin)),
                    "builtin": getattr(plugin, "__name__", "") in DEFAULT_PLUGINS,
                    "distribution": dist.project_name if dist else None,
                    "version": dist.version if dist else None,
                    "hooks": sorted(h.name for h in self.pm.get_hookcallers(plugin)),
                    **{kind: sorted(kinds.get(kind, [])) for kind in ("sources", "loaders", "stores")},
                    **{kind: sorted(names) for kind, names in kinds.items()},
                    "source_descriptions": descriptions.get(name, {}),
                }
            )
        return sorted(out, key=lambda p: p["name"])
