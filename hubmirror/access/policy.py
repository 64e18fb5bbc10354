"""What a principal (a token's holder, the operator, or anyone on an open mirror) may read and do.

A principal reads the repos its globs match (none: every repo), and gated or private repos only where its `gated`
globs match them as well; `admin` reads everything and may act as an operator. Globs match repo ids whatever their
case, as the Hub resolves them; plain names are a set lookup, the rest one compiled regex, so a check costs about
the same with a thousand rules as with one.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str  # read, write or admin
    repos: tuple[str, ...] = ()  # globs of the repos it may read; empty: every repo
    gated: tuple[str, ...] = ()  # globs of the gated or private repos it may read too
    kind: str = "user"  # user (a token), operator (`serve --token`), anonymous (a mirror with no tokens)
    token_id: str | None = None

    @property
    def admin(self) -> bool:
        return self.scope == "admin"

    def may_read(self, repo_id: str, restricted: bool) -> bool:
        """Whether this principal may see `repo_id` at all (`restricted`: gated upstream, or private)."""
        return self.reader(repo_id, restricted)

    @cached_property
    def reader(self) -> Callable[[str, bool], bool]:
        """`may_read` as one function with its tests bound, built once per principal (hashing 1,000 globs is not
        free; a search calls it for every candidate)."""
        if self.admin:
            return lambda repo_id, restricted: True
        repos = matcher(self.repos) if self.repos else None
        gated = matcher(self.gated)

        def read(repo_id: str, restricted: bool) -> bool:
            repo = repo_id.lower()
            if repos is not None and not repos(repo):
                return False
            return not restricted or gated(repo)

        return read

    def everything(self) -> bool:
        """Whether no repo is hidden from it (so listings need no filter)."""
        return self.admin or (not self.repos and "*" in self.gated)


OPEN = Principal("anonymous", "read", gated=("*",), kind="anonymous")  # a mirror with no tokens: today's behaviour
OPERATOR = Principal("operator", "admin", kind="operator")  # whoever holds `serve --token`


@lru_cache(maxsize=4096)
def matcher(globs: tuple[str, ...]) -> Callable[[str], bool]:
    """A test of a lower-cased repo id against `globs` (case-insensitive fnmatch). Plain names are a set; a glob is
    filed under its literal head (`team-a/` of `team-a/*`), so a check is one dict lookup per distinct head length,
    then the tail's own pattern (none for a bare `*`): a thousand rules cost about what one does."""
    exact = frozenset(g.lower() for g in globs if not _GLOB_CHARS.search(g))
    namespaces = set()  # `org/*`: the commonest rule, one slice and one set lookup
    heads: dict[int, dict[str, list[re.Pattern | None]]] = {}
    for glob in (g.lower() for g in globs if _GLOB_CHARS.search(g)):
        cut = _GLOB_CHARS.search(glob).start()
        head, tail = glob[:cut], glob[cut:]
        if tail == "*" and head.endswith("/") and head.count("/") == 1:
            namespaces.add(head)
            continue
        heads.setdefault(cut, {}).setdefault(head, []).append(None if tail == "*" else
                                                               re.compile(fnmatch.translate(tail)))
    lengths = sorted(heads)

    def test(repo: str) -> bool:
        if repo in exact or repo[:repo.find("/") + 1] in namespaces:
            return True
        for length in lengths:
            tails = heads[length].get(repo[:length])
            if tails is not None and any(t is None or t.match(repo, length) for t in tails):
                return True
        return False

    return test


def restricted(model: dict) -> bool:
    """Whether a catalog model row is gated upstream or private (its `gated` column, its metadata's `private`)."""
    if model.get("gated"):
        return True
    metadata = model.get("metadata")
    if isinstance(metadata, str) and '"private"' in metadata:  # as catalog.search.restricted_sql decides it too
        try:
            return bool(json.loads(metadata).get("private"))
        except (ValueError, AttributeError, RecursionError):
            return True  # unreadable: not known to be public
    return False
