"""The hooks a hubmirror plugin can implement (documented in docs/plugins.md, which a test keeps in step).

Every extension point follows one pattern (as in `llm`): a `register_<kind>(register)` hook receives a `register`
callback and calls it once per object it contributes; the core calls each plugin's implementation through pluggy.
Plugins import what they need from `hubmirror.api`.
"""

import pluggy

PROJECT = "hubmirror"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_sources(register):
    """Call `register(source)` for each `hubmirror.api.Source` this plugin provides."""


@hookspec
def register_loaders(register):
    """Call `register(loader)` for each `hubmirror.api.Loader` this plugin provides (benchmark runner)."""


@hookspec(firstresult=True)
def served_repo_id(model):
    """The Hugging Face repo id a catalog model (a `models` row as a dict) is served and materialised under, or None
    to leave it to other plugins and, failing them, to `<source>/<id>` (hubmirror.serving.hub_ids)."""


@hookspec
def register_layouts(register):
    """Call `register(layout)` for each `hubmirror.api.Layout` (a client cache layout `hubmirror materialize --layout
    NAME` writes) this plugin provides."""


@hookspec
def register_adopters(register):
    """Call `register(adopter)` for each `hubmirror.api.Adopter` (a kind of client cache `hubmirror adopt` brings into
    the mirror) this plugin provides."""


@hookspec
def register_stores(register):
    """Call `register(backend)` for each `hubmirror.api.StoreBackend` (a blob store named by a URL scheme, for
    `--store SCHEME://...`) this plugin provides."""
