"""What a principal (hubmirror.access.policy) may see of the mirror `serve` answers for: the test a search filters
its rows with, and the check of one model by its catalog key (globs match the repo id a model is served under)."""

from __future__ import annotations

from collections.abc import Callable

from hubmirror.access.policy import Principal, restricted
from hubmirror.serving.view import MirrorView


def visibility(view: MirrorView, principal: Principal) -> Callable[[str, bool], bool] | None:
    """`visible(key, restricted)` for `Catalog.search`, or None where the principal sees everything."""
    if principal.everything():
        return None
    repo_of, read = view.repo_of(), principal.reader
    return lambda key, hidden: read(repo_of.get(key) or key.partition(":")[2], hidden)


def readable(view: MirrorView, principal: Principal, key: str) -> bool:
    """Whether the principal may read the cached model whose catalog key is `key`."""
    if principal.everything():
        return True
    repo = view.repo_of().get(key)
    model = view.repos().get(repo) if repo is not None else None
    return model is not None and principal.may_read(repo, restricted(model))
