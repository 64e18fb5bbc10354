"""Finding and loading plugins: entry points of the `hubmirror` group (built-ins included) and site-local files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pluggy

from hubmirror import hookspecs
from hubmirror.errors import UsageError
from hubmirror.sources import Source

ENTRY_POINT_GROUP = "hubmirror"


class PluginRegistry:
    """The plugin manager plus what the plugins registered."""

    def __init__(self, plugin_dirs: list[Path] | None = None, *, load_entry_points: bool = True):
        self.plugin_dirs = [str(d) for d in plugin_dirs or []]
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for directory in plugin_dirs or []:
            self._load_directory(Path(directory))
        self.pm.check_pending()
        self._sources: dict[str, tuple[Source, str]] | None = None

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

    def _collect(self, hook: str, kind: type, what: str) -> dict[str, tuple]:
        """{name: (object, plugin)} of what the plugins register through `hook`; a name claimed twice is an error."""
        found: dict[str, tuple] = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            def register(obj, _plugin=impl.plugin_name) -> None:
                if not isinstance(obj, kind) or not obj.name:
                    raise UsageError(f"plugin {_plugin} registered something that is not a named {what}")
                if obj.name in found:
                    raise UsageError(f"{what} {obj.name!r} is registered by both {found[obj.name][1]} and {_plugin}")
                found[obj.name] = (obj, _plugin)

            impl.function(register=register)
        return found

    def sources(self) -> dict[str, tuple[Source, str]]:
        """{scheme: (source, plugin name)} for every registered source."""
        if self._sources is None:
            self._sources = self._collect("register_sources", Source, "source")
        return self._sources

    def loaders_by_name(self) -> dict[str, tuple]:
        """{name: (loader, plugin name)} for every registered benchmark loader."""
        from hubmirror.bench.loaders import Loader

        return self._collect("register_loaders", Loader, "loader")

    def loaders(self) -> list:
        """Every registered benchmark loader, best first."""
        return sorted((loader for loader, _ in self.loaders_by_name().values()), key=lambda loader: -loader.priority)

    def source(self, name: str) -> tuple[Source, str]:
        try:
            return self.sources()[name]
        except KeyError:
            known = ", ".join(sorted(self.sources())) or "none"
            raise UsageError(f"unknown source {name!r} (known: {known})") from None

    def describe(self) -> list[dict]:
        """One entry per plugin: name, version, hooks it implements, sources and loaders it registers."""
        sources_by_plugin: dict[str, dict[str, str]] = {}
        for scheme, (source, plugin) in self.sources().items():
            sources_by_plugin.setdefault(plugin, {})[scheme] = source.description
        dists = {plugin: dist for plugin, dist in self.pm.list_plugin_distinfo()}
        loaders_by_plugin: dict[str, list[str]] = {}
        for loader_name, (_, plugin) in self.loaders_by_name().items():
            loaders_by_plugin.setdefault(plugin, []).append(loader_name)
        out = []
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin)
            dist = dists.get(plugin)
            out.append(
                {
                    "name": name,
                    "module": getattr(plugin, "__name__", repr(plugin)),
                    "distribution": dist.project_name if dist else None,
                    "version": dist.version if dist else None,
                    "hooks": sorted(h.name for h in self.pm.get_hookcallers(plugin)),
                    "sources": sorted(sources_by_plugin.get(name, {})),
                    "loaders": sorted(loaders_by_plugin.get(name, [])),
                    "source_descriptions": sources_by_plugin.get(name, {}),
                }
            )
        return sorted(out, key=lambda p: p["name"])
