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
from functools import lru_cache

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
        if self.admin:
            return True
        repo = repo_id.lower()
        if self.repos and not matcher(self.repos)(repo):
            return False
        return not restricted or matcher(self.gated)(repo)

    def everything(self) -> bool:
        """Whether no repo is hidden from it (so listings need no filter)."""
        return self.admin or (not self.repos and "*" in self.gated)


OPEN = Principal("anonymous", "read", gated=("*",), kind="anonymous")  # a mirror with no tokens: today's behaviour
OPERATOR = Principal("operator", "admin", kind="operator")  # whoever holds `serve --token`


@lru_cache(maxsize=4096)
def matcher(globs: tuple[str, ...]) -> Callable[[str], bool]:
    """A test of a lower-cased repo id against `globs` (case-insensitive fnmatch)."""
    exact = frozenset(g.lower() for g in globs if not _GLOB_CHARS.search(g))
    patterns = [fnmatch.translate(g.lower()) for g in globs if _GLOB_CHARS.search(g)]
    regex = re.compile("|".join(patterns)) if patterns else None
    if regex is None:
        return exact.__contains__
    return lambda repo: repo in exact or regex.match(repo) is not None


def restricted(model: dict) -> bool:
    """Whether a catalog model row is gated upstream or private (its `gated` column, its metadata's `private`)."""
    if model.get("gated"):
        return True
    metadata = model.get("metadata")
    if isinstance(metadata, str) and '"private"' in metadata:
        try:
            return bool(json.loads(metadata).get("private"))
        except (ValueError, AttributeError):
            return True  # unreadable: not known to be public
    return False
