"""`/models?search=Q&…`: the website's query parameters read strictly, and one page of results from the catalog's
own search (so the CLI, the API and this page rank alike).

Parameters as on huggingface.co: `search`, `pipeline_tag`, `library`, `license` (`mit` or `license:mit`), `sort`,
`p` (the page, from 0); and the mirror's own `source`, `cached`, `benchmarked` and `kind` (model or dataset). `sort=fastest` lists benchmarked
models on each device they ran on, highest throughput first. Ordering, filtering and paging are the catalog
search's own (exact over all matches).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from urllib.parse import urlencode

PAGE_SIZE = 30
MAX_PAGE = 100  # deeper pages are not offered (the website stops early too)
SORTS = {"": "relevance", "downloads": "most downloaded", "likes": "most liked", "lastModified": "recently updated",
         "fastest": "fastest (benchmarked)"}
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
KINDS = ("", "model", "dataset")


class BadQuery(ValueError):
    """A /models parameter with a value the page does not take (one line, shown as a 400)."""


@dataclass(frozen=True)
class ModelQuery:
    """One /models request: the search text, the filters, the order and the page."""

    search: str = ""
    pipeline_tag: str = ""
    library: str = ""
    license: str = ""
    source: str = ""
    cached: str = ""  # "", "true" or "false"
    benchmarked: str = ""  # "" or "true"
    kind: str = ""  # "", "model" or "dataset"
    sort: str = ""
    p: int = 0

    @classmethod
    def parse(cls, params) -> ModelQuery:
        """The query of a request's parameters; unknown parameters are ignored, bad values are a BadQuery."""
        values = {f.name: params.get(f.name, "").strip() for f in fields(cls)}
        for name in ("cached", "benchmarked"):
            values[name] = _boolean(name, values[name])
        if values["benchmarked"] == "false":
            values["benchmarked"] = ""
        if values["kind"] not in KINDS:
            raise BadQuery(f"kind={values['kind'][:40]!r} is not one of: model, dataset")
        if values["sort"] not in SORTS:
            raise BadQuery(f"sort={values['sort'][:40]!r} is not one of: {', '.join(s for s in SORTS if s)}")
        values["license"] = values["license"].removeprefix("license:")
        page = values["p"] or "0"
        if not page.isdigit() or int(page) > MAX_PAGE:
            raise BadQuery(f"p must be a page number from 0 to {MAX_PAGE}")
        values["p"] = int(page)
        if len(values["search"]) > 200:
            raise BadQuery("search text is limited to 200 characters")
        return cls(**values)

    def link(self, **changes) -> str:
        """The /models URL of this query with `changes` (a new filter goes back to the first page)."""
        changed = replace(self, **({"p": 0} | changes))
        params = {f.name: getattr(changed, f.name) for f in fields(changed)}
        return "/models?" + urlencode({k: v for k, v in params.items() if v not in ("", 0)})

    def results(self, catalog, visible=None) -> tuple[list[dict], bool]:
        """This page's models (best first; only those `visible` lets through) and whether another page follows."""
        rows = catalog.search(self.search, source=self.source or None, task=self.pipeline_tag or None,
                              license=self.license or None, library=self.library or None,
                              cached=None if not self.cached else self.cached == "true",
                              benchmarked=True if self.benchmarked else None, kind=self.kind or None,
                              sort=self.sort or None,
                              limit=PAGE_SIZE + 1, offset=self.p * PAGE_SIZE, visible=visible)
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _boolean(name: str, value: str) -> str:
    if value == "":
        return ""
    if value.lower() in _TRUE:
        return "true"
    if value.lower() in _FALSE:
        return "false"
    raise BadQuery(f"{name} must be true or false")
