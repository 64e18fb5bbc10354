"""What `/` shows: the mirror's holdings per source and their total size, the latest additions, and the models
awaiting an operator's review.

Counting a million models takes a pass over an index (about 0.1 s), so `source_counts` is meant to be refreshed in the
background (see versioned.PerCatalogVersion); the latest additions are the end of the revisions table (rowid order is
insertion order) and cheap on every request.
"""

from __future__ import annotations

LATEST = 10


def source_counts(catalog) -> dict:
    """{sources: [{source, listed, cached, bytes}], listed, cached, bytes}: catalogued models per source (counted in
    the (source, downloads) index), and the cached ones with their stored size (through the (cached, downloads) one)."""
    listed = dict(catalog.conn.execute("SELECT source, count(*) FROM models GROUP BY source"))
    cached = {s: (n, b or 0) for s, n, b in catalog.conn.execute(
        "SELECT source, count(*), sum(size_bytes) FROM models WHERE cached = 1 GROUP BY source")}
    sources = [{"source": s, "listed": listed[s], "cached": cached.get(s, (0, 0))[0], "bytes": cached.get(s, (0, 0))[1]}
               for s in sorted(listed)]
    return {"sources": sources, "listed": sum(listed.values()), "cached": sum(s["cached"] for s in sources),
            "bytes": sum(s["bytes"] for s in sources)}


FACETS = {"pipeline_tag": "task", "library": "library", "license": "license"}  # /models parameter -> models column
FACET_VALUES = 50  # values offered per facet, the most common first


def facet_counts(catalog) -> dict[str, list[tuple[str, int]]]:
    """{parameter: [(value, models)]} of the search page's facets over every catalogued model, the FACET_VALUES
    most common of each (counted in the (column, downloads) indexes)."""
    return {name: catalog.conn.execute(f"SELECT {column}, count(*) FROM models WHERE {column} IS NOT NULL AND "
                                       f"{column} != '' GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT ?",
                                       [FACET_VALUES]).fetchall()
            for name, column in FACETS.items()}


def latest_additions(catalog, repo_of: dict[str, str]) -> list[dict]:
    """The LATEST revisions catalogued, newest first, with the repo id each is served under."""
    rows = catalog.conn.execute("SELECT model_key, commit_id, pulled_at, size_bytes FROM revisions "
                                "ORDER BY rowid DESC LIMIT ?", [LATEST])
    return [{"repo": repo_of.get(key), "key": key, "commit": commit, "pulled_at": pulled_at, "bytes": size}
            for key, commit, pulled_at, size in rows]


def awaiting_review(catalog, repo_of: dict[str, str]) -> list[dict]:
    """[{key, repo, files: [path…]}] of models with quarantined files, as `hubmirror scan` lists them."""
    models: dict[str, dict] = {}
    for row in catalog.quarantined():
        entry = models.setdefault(row["model_key"], {"key": row["model_key"], "repo": repo_of.get(row["model_key"]),
                                                     "files": []})
        if row["path"] not in entry["files"]:
            entry["files"].append(row["path"])
    return list(models.values())


def visible_counts(repos: dict[str, dict], principal) -> dict:
    """`source_counts` of the cached models (`repos`, as served) that `principal` may read."""
    from hubmirror.access.policy import restricted

    by_source: dict[str, dict] = {}
    for repo, model in repos.items():
        if principal.may_read(repo, restricted(model)):
            entry = by_source.setdefault(model["source"], {"source": model["source"], "listed": 0, "cached": 0,
                                                           "bytes": 0})
            entry["listed"] += 1
            entry["cached"] += 1
            entry["bytes"] += model.get("size_bytes") or 0
    sources = [by_source[s] for s in sorted(by_source)]
    return {"sources": sources, "listed": sum(s["listed"] for s in sources),
            "cached": sum(s["cached"] for s in sources), "bytes": sum(s["bytes"] for s in sources)}
