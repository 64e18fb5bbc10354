"""Full-text search over the catalog (FTS5, porter stemming) with facet tokens for filters."""

from __future__ import annotations

import re

from hubmirror.records import ModelMetadata

RANK_CANDIDATES = 500
_MAX_QUERY_WORDS = 8
# What a query word found in these columns adds to a model's score (every candidate has each word somewhere,
# the description at least).
_FIELD_WEIGHTS = [("key model_id", 8), ("task library architecture tags license", 3)]


def facet_token(kind: str, value) -> str:
    """The search token standing for `kind = value` (letters and digits only, so the tokenizer keeps it whole)."""
    return "hmf" + kind + re.sub(r"[^0-9a-z]", "", str(value).lower())


def search_facets(meta: ModelMetadata, cached: bool) -> str:
    """The facet tokens of a model, for the `facets` search column."""
    values = {"source": meta.source, "task": meta.task, "license": meta.license, "library": meta.library,
              "cached": int(cached)}
    return " ".join(facet_token(kind, value) for kind, value in values.items() if value is not None)


def fts_words(text: str) -> list[str]:
    """The words of `text` as quoted FTS5 strings, so that user input cannot inject FTS syntax."""
    return [f'"{w}"' for w in dict.fromkeys(re.findall(r"\w+", text.lower()))][:_MAX_QUERY_WORDS]


class Search:
    """Mixin of Catalog: ranked search and the benchmarked-fastest listing."""

    def search(
        self,
        query: str = "",
        *,
        source: str | None = None,
        task: str | None = None,
        license: str | None = None,
        library: str | None = None,
        cached: bool | None = None,
        limit: int = 20,
        fastest: bool = False,
    ) -> list[dict]:
        """Models matching every word of `query` (stemmed full-text search) and the filters, best first.

        Ranking: for each query word, a hit in the name counts most, then one in task/library/architecture/tags/
        license, then one in the description only; ties go to the most downloaded. Only the RANK_CANDIDATES most
        recently catalogued matches are ranked, so that a query matching most of a million-model catalog still
        answers in milliseconds. Filters are facet tokens in the same index (and checked exactly afterwards).
        """
        clauses, args = [], []
        for column, value in (("source", source), ("task", task), ("license", license), ("library", library)):
            if value:
                clauses.append(f"m.{column} = ?")
                args.append(value)
        if cached is not None:
            clauses.append("m.cached = ?")
            args.append(int(cached))
        filters = "".join(" AND " + c for c in clauses)
        words = fts_words(query)
        if fastest:
            return self._fastest(" ".join(words), filters, args, limit)
        if not words:
            sql = f"SELECT m.* FROM models m WHERE 1 {filters} ORDER BY m.downloads DESC, m.key LIMIT ?"
            return self._rows(sql, [*args, limit])
        facets = [
            f'"{facet_token(kind, value)}"'
            for kind, value in (("source", source), ("task", task), ("license", license), ("library", library),
                                ("cached", None if cached is None else int(cached)))
            if value is not None and value != ""
        ]
        match = " ".join(words + facets)
        lowest = self.conn.execute(
            "SELECT min(rowid) FROM (SELECT rowid FROM models_fts WHERE models_fts MATCH ? ORDER BY rowid DESC LIMIT ?)",
            [match, RANK_CANDIDATES],
        ).fetchone()[0]
        if lowest is None:
            return []
        score_terms, score_args = [], []
        for word in words:
            for columns, weight in _FIELD_WEIGHTS:
                score_terms.append(
                    f"{weight} * (m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ? AND rowid >= ?))"
                )
                score_args += [f"({{{columns}}} : {word}) AND ({match})", lowest]
        sql = (
            f"SELECT m.*, {' + '.join(score_terms)} AS score FROM models m "
            f"WHERE m.rowid >= ? AND m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ? AND rowid >= ?)"
            f"{filters} ORDER BY score DESC, m.downloads DESC, m.key LIMIT ?"
        )
        rows = self._rows(sql, [*score_args, lowest, match, lowest, *args, limit])
        return [{k: v for k, v in r.items() if k != "score"} for r in rows]

    def _fastest(self, match: str, filters: str, args: list, limit: int) -> list[dict]:
        """Benchmarked models matching the query and filters, highest throughput first."""
        text = " AND m.rowid IN (SELECT rowid FROM models_fts WHERE models_fts MATCH ?)" if match else ""
        sql = ("SELECT m.*, b.throughput, b.latency_p50_ms, b.device FROM models m JOIN "
               "(SELECT model_key, device, max(throughput) AS throughput, min(latency_p50_ms) AS latency_p50_ms "
               "FROM benchmarks WHERE status = 'ok' AND throughput IS NOT NULL GROUP BY model_key, device) b "
               f"ON b.model_key = m.key WHERE 1 {filters}{text} ORDER BY b.throughput DESC LIMIT ?")
        return self._rows(sql, [*args, *([match] if match else []), limit])

