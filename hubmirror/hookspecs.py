"""The hooks a hubmirror plugin can implement.

Every extension point follows one pattern (as in `llm`): the hook receives a `register` callback and calls it once per
object it contributes. Sources come first; benchmark loaders and serving backends are added the same way, as
`register_<kind>(register)` hooks, without changing how plugins are found or loaded.
"""

import pluggy

PROJECT = "hubmirror"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_sources(register):
    """Call `register(source)` for each `hubmirror.sources.Source` this plugin provides."""


@hookspec
def register_loaders(register):
    """Call `register(loader)` for each `hubmirror.bench.loader_contract.Loader` this plugin provides (benchmark runner)."""


@hookspec(firstresult=True)
def served_repo_id(model):
    """The Hugging Face repo id a catalog model (a `models` row as a dict) is served and materialised under, or None
    to leave it to other plugins and, failing them, to `<source>/<id>` (hubmirror.serving.hub_ids)."""


@hookspec
def register_layouts(register):
    """Call `register(layout)` for each `hubmirror.exchange.materialize.Layout` (a client cache layout `hubmirror
    materialize --layout NAME` writes) this plugin provides."""


@hookspec
def register_adopters(register):
    """Call `register(adopter)` for each `hubmirror.adopt.Adopter` (a kind of client cache `hubmirror adopt` brings
    into the mirror) this plugin provides."""
