"""`GET /api/models` as huggingface_hub's `HfApi.list_models` asks it: which models (search, author, tags, pipeline
tag, licence, gated), in which order, and what each entry carries (`full`, `cardData`, `config`, `expand`).

The catalog's search finds and orders the models; author, tags and gated are checked on each row it finds, over at
most LIST_SCAN served models (a mirror serves thousands, not millions), as is the `createdAt` order. The Hub's
`trendingScore` is not known offline: that sort is by downloads (docs/serving.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from hubmirror.serving.hf_api import DATASET_PREFIX, HubError, created_at, list_entry
from hubmirror.serving.hub_ids import hub_commit

LIST_SCAN = 100_000  # served models a narrowed listing checks
SORTS = {None: None, "downloads": "downloads", "likes": "likes", "lastModified": "lastModified",
         "trendingScore": "downloads", "createdAt": None}
# what `expand` may name that the mirror knows (others are left out of the entry, as the Hub leaves out what it lacks)
EXPANDABLE = frozenset({"author", "cardData", "config", "createdAt", "disabled", "downloads", "gated", "lastModified",
                        "library_name", "likes", "pipeline_tag", "private", "sha", "siblings", "tags"})
_TRUE = ("true", "True", "1")


@dataclass(frozen=True)
class ListQuery:
    search: str = ""
    author: str | None = None
    tags: tuple[str, ...] = ()  # `filter` values other than `license:…`: every one must be a tag, the task or library
    license: str | None = None
    task: str | None = None
    library: str | None = None
    gated: bool | None = None
    sort: str | None = None
    full: bool = False
    card_data: bool = False
    config: bool = False
    expand: frozenset[str] | None = None

    @classmethod
    def parse(cls, params) -> ListQuery:
        """The query of a request's parameters (a starlette QueryParams); a 400 HubError for a sort the Hub has
        not, or `expand` with `full`/`cardData`/`config` (the client refuses to send both)."""
        sort = params.get("sort")
        if sort not in SORTS:
            raise HubError(400, None, f"sort must be one of {', '.join(s for s in SORTS if s)}")
        filters = params.getlist("filter")
        license_ = params.get("license") or next((f.removeprefix("license:") for f in filters
                                                  if f.startswith("license:")), None)
        gated = params.get("gated")
        expand = frozenset(params.getlist("expand")) or None
        query = cls(search=params.get("search", ""), author=params.get("author") or None,
                    tags=tuple(f for f in filters if f and not f.startswith("license:"))[:50], license=license_,
                    task=params.get("pipeline_tag") or None, library=params.get("library") or None,
                    gated=None if gated is None else gated in _TRUE, sort=sort, full=params.get("full") in _TRUE,
                    card_data=params.get("cardData") in _TRUE, config=params.get("config") in _TRUE, expand=expand)
        if expand and (query.full or query.card_data or query.config):
            raise HubError(400, None, "expand cannot be used with full, cardData or config")
        return query

    @property
    def scans(self) -> bool:
        """Whether rows are checked (author, tags, gated) or ordered (createdAt) here, past the catalog search."""
        return bool(self.author or self.tags or self.gated is not None or self.sort == "createdAt")

    @property
    def catalog_sort(self) -> str | None:
        return SORTS[self.sort]

    def matches(self, repo: str, model: dict) -> bool:
        """Whether the served `repo` (its catalog row `model`) passes author, tags and gated."""
        repo = repo.removeprefix(DATASET_PREFIX) if model.get("kind") == "dataset" else repo
        if self.author is not None and ("/" not in repo or repo.split("/")[0].lower() != self.author.lower()):
            return False
        if self.gated is not None and bool(model["gated"]) != self.gated:
            return False
        known = set((model["tags"] or "").split()) | {model["task"], model["library"]}
        return all(tag in known for tag in self.tags)

    def entry(self, repo: str, model: dict, files_of: Callable[[dict], list[str]]) -> dict:
        """One model of the listing, with what `full`, `cardData`, `config` or `expand` ask for."""
        base = list_entry(repo, model)
        extra = json.loads(model["metadata"] or "{}")
        shown = base["id"]
        more = {"author": shown.split("/")[0] if "/" in shown else None, "disabled": False,
                "createdAt": created_at(model), "sha": hub_commit(model["key"], model["latest_commit"])}
        if self.expand is not None:
            wanted = self.expand & EXPANDABLE
            known = base | more | {"cardData": extra.get("cardData"), "config": extra.get("config")}
            entry = {k: known[k] for k in ("_id", "id") if k in known}
            entry.update({k: known[k] for k in wanted if k in known})
            if "siblings" in wanted:
                entry["siblings"] = [{"rfilename": p} for p in files_of(model)]
            return entry
        entry = base | {"createdAt": more["createdAt"]}
        if self.full:
            entry.update(more, siblings=[{"rfilename": p} for p in files_of(model)])
        if self.full or self.card_data:
            entry["cardData"] = extra.get("cardData")
        if self.config:
            entry["config"] = extra.get("config")
        return entry

