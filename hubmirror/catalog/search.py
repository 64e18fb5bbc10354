"""Exact ranked search over the whole catalog (FTS5, porter stemming), with facet tokens for filters.

Relevance is a tier, then popularity: a model whose id or name is the query comes first, then the models with every
query word in their name (the key: source and id), then those with every word anywhere (task, library, architecture,
license, tags, description); within a tier the most downloaded comes first, then the most recently catalogued. With
`sort`, all matches are ordered by downloads, likes or last modification (to the minute) alone.

Orderings are over all matches, never a sample, and stay fast at millions of models because of how the index
`models_search` (migration m005) is laid out: each model is four documents, one per ordering family (NAME: its name;
ANYWHERE, LIKES, MODIFIED: all its words), whose FTS rowid is `family << 61 | (RANK_MAX - rank) << 30 |
(ROW_MASK - rowid)`, the rank being the downloads (NAME, ANYWHERE), the likes or the minutes since 1970 of the last
modification, capped at RANK_MAX, and the rowid the model's in `models`. A family is a rowid range, and inside it
ascending rowid order is the family's order, so FTS5 walks the doclists of the query words from the best match down
and stops after the rows asked for. (Ascending: SQLite 3.40's FTS5 returns rows out of order for `ORDER BY rowid DESC`
under an upper rowid bound.)

Writes keep the index through triggers on `models`, which cost an FTS5 segment per model (a model's four documents
are far apart in rowid order). A write of many models (`search_index_batch`) names them instead, and their documents are
written at the end, in rowid order, inside the same transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubmirror.upstream import ModelMetadata


_MAX_QUERY_WORDS = 8
SEARCH_TABLE = "models_search"
FAMILY_SHIFT, RANK_SHIFT = 61, 30
RANK_MAX = (1 << 31) - 1  # ranks above this count as equal (then the catalogue order decides)
ROW_MASK = (1 << RANK_SHIFT) - 1  # so at most 2**30 models
NAME, ANYWHERE, LIKES, MODIFIED = 0, 1, 2, 3  # relevance reads NAME then ANYWHERE: the best tier has the lowest rowids
_WORDS = ("key", "task", "library", "architecture", "license", "tags", "description")
# Each family's document: the models columns it holds (with the facet tokens, so that filters narrow every family),
# and the SQL of its rank (`{row}`: the models row).
FAMILIES = {
    NAME: (("key",), "{row}.downloads"),
    ANYWHERE: (_WORDS, "{row}.downloads"),
    LIKES: (_WORDS, "{row}.likes"),
    MODIFIED: (_WORDS, "unixepoch(coalesce({row}.last_modified, {row}.updated_at)) / 60"),
}
SORT_FAMILIES = {"downloads": ANYWHERE, "likes": LIKES, "lastModified": MODIFIED}
# ORDER BY of each sort of a search without words; the same keys as indexes (m001, m005).
SORTS = {
    "downloads": "m.downloads DESC, m.rowid DESC",
    "likes": "m.likes DESC, m.rowid DESC",
    "lastModified": "coalesce(m.last_modified, m.updated_at) DESC, m.rowid DESC",
}
_FIRST_BATCH = 32
_MAX_BATCH = 8192
_ACCESS_SLICE = 128  # candidates checked at a time for a reader who may see only some models
# A write of fewer models leaves the indexing to the triggers (a batch changes the schema: every reader re-prepares).
BULK_MIN_MODELS = 32
# A batch that touched at least this share of the catalog rebuilds the whole index rather than its models' documents.
REBUILD_SHARE = 0.5
BULK_CACHE_KIB = 64 * 1024  # a batch's page cache: a large listing's writes to the models indexes stay in memory
_BATCH_KEYS, _BATCH_DROPPED = "search_batch_keys", "search_batch_dropped"  # temp tables of a batch
_BASENAME = "lower(replace(m.model_id, rtrim(m.model_id, replace(m.model_id, '/', '')), ''))"


def facet_token(kind: str, value) -> str:
    """The search token standing for `kind = value` (letters and digits only, so the tokenizer keeps it whole)."""
    return "hmf" + kind + re.sub(r"[^0-9a-z]", "", str(value).lower())


def search_facets(meta: ModelMetadata, cached: bool) -> str:
    """The facet tokens of a model, for the `facets` search column."""
    values = {"source": meta.source, "task": meta.task, "license": meta.license, "library": meta.library,
              "cached": int(cached), "kind": None if meta.kind == "model" else meta.kind}  # models: the SQL check
    return " ".join(facet_token(kind, value) for kind, value in values.items() if value is not None)


def fts_words(text: str) -> list[str]:
    """The words of `text` as quoted FTS5 strings, one token each (letters and digits: what the unicode61 tokenizer
    keeps together), so that user input can neither inject FTS syntax nor make a phrase."""
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).lower())
    return [f'"{w}"' for w in dict.fromkeys(words)][:_MAX_QUERY_WORDS]


def document_rowid_sql(family: int, row: str) -> str:
    """SQL for the FTS rowid of `row`'s document of `family` (row: a models row alias, or new/old in a trigger)."""
    rank = f"min(max(coalesce({FAMILIES[family][1].format(row=row)}, 0), 0), {RANK_MAX})"
    return f"(({family} << {FAMILY_SHIFT}) | (({RANK_MAX} - {rank}) << {RANK_SHIFT}) | ({ROW_MASK} - {row}.rowid))"


def model_rowid(document_rowid: int) -> int:
    """The models rowid of a search document."""
    return ROW_MASK - (document_rowid & ROW_MASK)


def document_text_sql(family: int, row: str) -> str:
    """SQL for the text of `row`'s document of `family`."""
    return " || ' ' || ".join(f"coalesce({row}.{column}, '')" for column in (*FAMILIES[family][0], "facets"))


def _documents_sql(row: str, command: str = "") -> str:
    """Statements writing (or with command "delete", removing) `row`'s documents, lowest rowid first."""
    head, value = (f"{SEARCH_TABLE}, rowid, text", f"'{command}', ") if command else ("rowid, text", "")
    return "".join(f"INSERT INTO {SEARCH_TABLE}({head}) VALUES ({value}{document_rowid_sql(family, row)}, "
                   f"{document_text_sql(family, row)}); " for family in sorted(FAMILIES))


def _documents_select(models: str) -> str:
    """SELECT of the documents (id, text) of the models rows `models` (a FROM clause naming them `m`)."""
    return " UNION ALL ".join(f"SELECT {document_rowid_sql(f, 'm')} AS id, {document_text_sql(f, 'm')} AS text "
                              f"FROM {models}" for f in FAMILIES)


def create_search_triggers(conn) -> None:
    """The triggers keeping the search index in step with every write to `models`."""
    watched = ", ".join((*_WORDS, "downloads", "likes", "last_modified", "updated_at", "facets"))
    conn.execute(f"CREATE TRIGGER {SEARCH_TABLE}_ai AFTER INSERT ON models BEGIN {_documents_sql('new')} END")
    conn.execute(f"CREATE TRIGGER {SEARCH_TABLE}_ad AFTER DELETE ON models BEGIN {_documents_sql('old', 'delete')} END")
    conn.execute(f"CREATE TRIGGER {SEARCH_TABLE}_au AFTER UPDATE OF {watched} ON models "
                 f"BEGIN {_documents_sql('old', 'delete')}{_documents_sql('new')} END")


def drop_search_triggers(conn) -> None:
    for suffix in ("ai", "ad", "au"):
        conn.execute(f"DROP TRIGGER IF EXISTS {SEARCH_TABLE}_{suffix}")


def fill_search_index(conn) -> None:
    """Index every model, in ascending rowid order: FTS5 writes a new segment whenever a rowid is lower than the one
    before it in a transaction, so the order makes a bulk fill fast."""
    conn.execute(f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}) VALUES ('delete-all')")
    conn.execute(f"INSERT INTO {SEARCH_TABLE}(rowid, text) SELECT id, text FROM ({_documents_select('models m')}) "
                 "ORDER BY id")


@contextlib.contextmanager
def batched_documents(conn, keys: Iterable[str]):
    """Inside a write transaction, around writes to the models `keys` (and no others): the search triggers give way;
    the documents of those models already indexed are kept aside first, and at the end they are removed and the
    models' new documents written, in one pass in rowid order (a few FTS5 segments in all, where the triggers write
    one per model). When `keys` are at least REBUILD_SHARE of the catalog, the whole index is rebuilt instead. The
    triggers are back before the block's transaction commits; an exception in it rolls the whole transaction back.
    Meanwhile the connection's page cache holds BULK_CACHE_KIB."""
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]  # put back at the end (not transactional)
    conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        drop_search_triggers(conn)
        conn.execute(f"CREATE TEMP TABLE {_BATCH_KEYS}(key TEXT PRIMARY KEY)")
        conn.executemany(f"INSERT OR IGNORE INTO {_BATCH_KEYS} VALUES (?)", ((key,) for key in keys))
        enough = int(conn.execute(f"SELECT count(*) FROM {_BATCH_KEYS}").fetchone()[0] / REBUILD_SHARE)
        catalogued = conn.execute("SELECT count(*) FROM (SELECT 1 FROM models LIMIT ?)", [enough + 1]).fetchone()[0]
        rebuild = catalogued <= enough  # counted no further than needed: a 1 M catalog is not counted for 100 models
        batch = f"{_BATCH_KEYS} k CROSS JOIN models m ON m.key = k.key"
        conn.execute(f"CREATE TEMP TABLE {_BATCH_DROPPED}(text)")  # rowid: the document's
        if not rebuild:
            conn.execute(f"INSERT INTO {_BATCH_DROPPED}(rowid, text) SELECT id, text FROM ({_documents_select(batch)})")
        yield
        if rebuild:
            fill_search_index(conn)
        else:
            conn.execute(f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, text) SELECT command, id, text FROM "
                         f"(SELECT 'delete' AS command, rowid AS id, text, 0 AS step FROM {_BATCH_DROPPED} UNION ALL "
                         f"SELECT NULL, id, text, 1 FROM ({_documents_select(batch)})) ORDER BY id, step")
        conn.execute(f"DROP TABLE temp.{_BATCH_KEYS}")
        conn.execute(f"DROP TABLE temp.{_BATCH_DROPPED}")
        create_search_triggers(conn)
    finally:
        conn.execute(f"PRAGMA cache_size = {cache_size}")


def family_bounds(family: int) -> tuple[int, int]:
    """The lowest and highest FTS rowid of `family`'s documents."""
    return family << FAMILY_SHIFT, ((family + 1) << FAMILY_SHIFT) - 1


ACCESS_TABLE = "model_access"


def restricted_sql(row: str) -> str:
    """SQL for whether `row` (a models row alias) is gated upstream or private (in its metadata; unreadable metadata
    that names `private` counts as private), as hubmirror.access.policy.restricted decides it."""
    return (f"(coalesce({row}.gated, 0) != 0 OR CASE WHEN coalesce(instr({row}.metadata, '\"private\"'), 0) = 0 "
            f"THEN 0 WHEN json_valid({row}.metadata) THEN coalesce(json_extract({row}.metadata, '$.private'), 0) != 0 "
            "ELSE 1 END)")


def access_order_sql(row: str) -> str:
    """SQL for `row`'s place in ACCESS_TABLE: its NAME and ANYWHERE documents' rowid without the family bits (most
    downloaded first), so that the candidates of a relevance search, read in their documents' order, are neighbours
    there too."""
    return f"({document_rowid_sql(ANYWHERE, row)} - {ANYWHERE << FAMILY_SHIFT})"


def create_access_table(conn) -> None:
    """ACCESS_TABLE: per model, what a search filtered for one reader checks of each candidate (its key, whether it is
    gated or private), in a table a fraction of the size of `models`, ordered by downloads (`access_order_sql`), with
    the models rowid indexed for the other orders; filled, then kept in step by triggers."""
    conn.execute(f"CREATE TABLE {ACCESS_TABLE} (ord INTEGER PRIMARY KEY, id INTEGER NOT NULL, key TEXT NOT NULL, "
                 "restricted INTEGER NOT NULL)")
    conn.execute(f"INSERT INTO {ACCESS_TABLE} SELECT {access_order_sql('m')}, m.rowid, m.key, {restricted_sql('m')} "
                 f"FROM models m ORDER BY 1")
    conn.execute(f"CREATE UNIQUE INDEX {ACCESS_TABLE}_id ON {ACCESS_TABLE}(id)")
    insert = (f"INSERT INTO {ACCESS_TABLE} VALUES ({access_order_sql('new')}, new.rowid, new.key, "
              f"{restricted_sql('new')});")
    conn.execute(f"CREATE TRIGGER {ACCESS_TABLE}_ai AFTER INSERT ON models BEGIN {insert} END")
    conn.execute(f"CREATE TRIGGER {ACCESS_TABLE}_ad AFTER DELETE ON models BEGIN DELETE FROM {ACCESS_TABLE} "
                 "WHERE id = old.rowid; END")
    conn.execute(f"CREATE TRIGGER {ACCESS_TABLE}_au AFTER UPDATE OF key, gated, metadata, downloads ON models BEGIN "
                 f"DELETE FROM {ACCESS_TABLE} WHERE id = old.rowid; {insert} END")


class _Filters:
    """A search's filters: facet tokens for the full-text match, and the exact SQL check of each."""

    def __init__(self, source, task, license, library, cached, benchmarked, kind=None):
        self.clauses, self.args, self.tokens = [], [], []
        if kind:  # a model has no kind token (rows before datasets have none): its check is the SQL one
            self.clauses.append("m.kind = ?")
            self.args.append(kind)
            if kind != "model":
                self.tokens.append(f'"{facet_token("kind", kind)}"')
        self.visible: Callable[[str, bool], bool] | None = None  # a reader's test of (key, restricted)
        self.benchmarked_only = bool(benchmarked)  # few models: searched one by one, not by walking every match
        for column, value in (("source", source), ("task", task), ("license", license), ("library", library)):
            if value:
                self.clauses.append(f"m.{column} = ?")
                self.args.append(value)
                self.tokens.append(f'"{facet_token(column, value)}"')
        if cached is not None:
            self.clauses.append("m.cached = ?")
            self.args.append(int(cached))
            self.tokens.append(f'"{facet_token("cached", int(cached))}"')
        if benchmarked is not None:
            measured = "m.key IN (SELECT model_key FROM benchmarks WHERE status = 'ok')"
            self.clauses.append(measured if benchmarked else f"NOT {measured}")

    def only_visible(self, rows: Iterable[dict]) -> Iterator[dict]:
        """The rows the reader may see (every row, without a test)."""
        if self.visible is None:
            yield from rows
            return
        from hubmirror.access.policy import restricted

        yield from (row for row in rows if self.visible(row["key"], restricted(row)))

    @property
    def sql(self) -> str:
        return "".join(" AND " + c for c in self.clauses)

    @property
    def models(self) -> str:
        """The FROM clause of the models rows to check: with benchmarked_only, the benchmarked ones first (CROSS JOIN:
        never a walk of a filter's index over every model)."""
        if self.benchmarked_only:
            return ("(SELECT DISTINCT model_key FROM benchmarks WHERE status = 'ok') AS b CROSS JOIN models m "
                    "ON m.key = b.model_key")
        return "models m"


class Search:
    """Mixin of Catalog: exact ranked search and the benchmarked-fastest listing."""

    @contextlib.contextmanager
    def search_index_batch(self, keys: Collection[str]):
        """Inside a write transaction, around writes to the models `keys` (and no others): from BULK_MIN_MODELS
        models on, their search documents are written at the end of the block in one pass (`batched_documents`),
        before the transaction commits, so that readers see the old index or the new one; fewer models are indexed
        one by one by the triggers (or, in a `search_index_deferred` block, by its rebuild)."""
        deferred = not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                         [f"{SEARCH_TABLE}_ai"]).fetchone()
        if deferred or len(keys) < BULK_MIN_MODELS:
            yield
            return
        with batched_documents(self.conn, keys):
            yield

    @contextlib.contextmanager
    def search_index_deferred(self):
        """For loading many models into a catalog nobody reads meanwhile (benchmarks, tests), over any number of
        transactions: within the block, writes to `models` leave the search index alone; it is rebuilt once at the
        end, in rowid order. A live catalog's writes use `search_index_batch`, inside their transaction."""
        drop_search_triggers(self.conn)
        try:
            yield
        finally:
            with self.transaction():
                fill_search_index(self.conn)
                create_search_triggers(self.conn)

    def search(
        self,
        query: str = "",
        *,
        source: str | None = None,
        task: str | None = None,
        license: str | None = None,
        library: str | None = None,
        cached: bool | None = None,
        benchmarked: bool | None = None,
        kind: str | None = None,
        sort: str | None = None,
        limit: int = 20,
        offset: int = 0,
        fastest: bool = False,
        visible: Callable[[str, bool], bool] | None = None,
    ) -> list[dict]:
        """Models matching every word of `query` (stemmed full-text search) and the filters: by relevance (see the
        module), or with `sort` by downloads, likes or lastModified (newest first), or `fastest`
        (sort="fastest": benchmarked models, highest throughput first). `offset` skips that many of the ordered
        matches (paging). Exact: the true first rows of the whole ordering, at any catalog size. `visible(key,
        restricted)` (a server's reader: hubmirror.access.policy) keeps only the models it may see, restricted meaning
        gated upstream or private."""
        if sort not in (None, "relevance", "fastest", *SORTS):
            raise ValueError(f"unknown sort {sort!r}: relevance, downloads, likes, lastModified or fastest")
        filters = _Filters(source, task, license, library, cached, benchmarked, kind)
        filters.visible = visible
        words = fts_words(query)
        wanted = offset + limit
        if fastest or sort == "fastest":
            rows = list(itertools.islice(filters.only_visible(self._fastest(" ".join(words), filters, wanted)), wanted))
        elif not words:
            order = SORTS[sort if sort in SORTS else "downloads"]  # no words: relevance is popularity
            sql = f"SELECT m.* FROM {filters.models} WHERE 1 {filters.sql} ORDER BY {order}"
            if visible is None:
                rows = self._rows(f"{sql} LIMIT ?", [*filters.args, wanted])
            elif sort in (None, "downloads") and not filters.benchmarked_only:  # the access table is in this order
                rows = list(itertools.islice(self._visible_by_downloads(filters), wanted))
                for row in rows:
                    del row["_rowid"]
            else:  # read in order until enough are visible
                rows = list(itertools.islice(filters.only_visible(self._lazy_rows(sql, filters.args)), wanted))
        else:
            match = " ".join(words + filters.tokens)
            found = (self._family_rows(SORT_FAMILIES[sort], match, filters) if sort in SORT_FAMILIES
                     else self._by_relevance(query, match, filters))
            rows = list(itertools.islice(found, wanted))
            for row in rows:
                del row["_rowid"]
        return rows[offset:]

    def _by_relevance(self, query: str, match: str, filters: _Filters) -> Iterator[dict]:
        """Every match, best first: the exact-name tier, then the NAME and ANYWHERE word tiers."""
        seen = set()
        name = query.strip().lower()
        named = f"SELECT rowid FROM models m WHERE lower(model_id) = ? UNION SELECT rowid FROM models m WHERE {_BASENAME} = ?"
        exact = filters.only_visible(self._rows(
            f"SELECT m.rowid AS _rowid, m.* FROM ({named}) AS n CROSS JOIN models m ON m.rowid = n.rowid "
            f"WHERE 1 {filters.sql} ORDER BY {SORTS['downloads']}", [name, name, *filters.args]))
        for tier_rows in (exact, *(self._family_rows(t, match, filters) for t in (NAME, ANYWHERE))):
            for row in tier_rows:
                if row["_rowid"] not in seen:
                    seen.add(row["_rowid"])
                    yield row

    def _family_rows(self, family: int, match: str, filters: _Filters) -> Iterator[dict]:
        """The models (with their `_rowid`) whose `family` document matches, in the family's order, read in growing
        batches (keyset paging on the FTS rowid), each checked against the filters exactly."""
        if filters.benchmarked_only:
            yield from filters.only_visible(self._benchmarked_rows(family, match, filters))
            return
        low, high = family_bounds(family)
        batch = _FIRST_BATCH
        while True:
            ids = [r[0] for r in self.conn.execute(
                f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ? AND rowid BETWEEN ? AND ? "
                "ORDER BY rowid LIMIT ?", [match, low, high, batch])]
            if not ids:
                return
            listed = "[" + ",".join(str(model_rowid(i)) for i in ids) + "]"
            if filters.visible is None:
                rows = self._rows("SELECT m.rowid AS _rowid, m.* FROM json_each(?) AS j CROSS JOIN models m "
                                  f"ON m.rowid = j.value WHERE 1 {filters.sql}", [listed, *filters.args])
                by_rowid = {r["_rowid"]: r for r in rows}
                yield from (by_rowid[model_rowid(i)] for i in ids if model_rowid(i) in by_rowid)
            else:
                yield from self._visible_rows(ids, family, filters)
            if len(ids) < batch:
                return
            low = ids[-1] + 1
            batch = (min(batch * 4, _MAX_BATCH) if filters.visible is None
                     else min(batch * 2, _ACCESS_SLICE * 4))  # a reader's: close to what it needs

    def _visible_rows(self, ids: list[int], family: int, filters: _Filters) -> Iterator[dict]:
        """The models of the `family` documents `ids` (in order) the reader may see, with their `_rowid`: who may
        see each is asked of ACCESS_TABLE, a slice at a time (a reader who sees few models stops reading candidates
        as soon as the page is full), by the documents' own order where the table has it (NAME, ANYWHERE: neighbours
        there); whole rows are read only for those it may see."""
        by_order = family in (NAME, ANYWHERE)
        column = "ord" if by_order else "id"
        keys = [i - (ANYWHERE << FAMILY_SHIFT if family == ANYWHERE else 0) if by_order else model_rowid(i)
                for i in ids]
        for start in range(0, len(keys), _ACCESS_SLICE):
            part = keys[start:start + _ACCESS_SLICE]
            checked = {r[0]: r[1:] for r in self.conn.execute(
                f"SELECT a.{column}, a.id, a.key, a.restricted FROM json_each(?) AS j CROSS JOIN {ACCESS_TABLE} a "
                f"ON a.{column} = j.value", ["[" + ",".join(map(str, part)) + "]"])}
            for key in part:
                seen = checked.get(key)
                if seen is not None and filters.visible(seen[1], bool(seen[2])):
                    yield from self._rows(f"SELECT m.rowid AS _rowid, m.* FROM models m WHERE m.rowid = ? {filters.sql}",
                                          [seen[0], *filters.args])

    def _visible_by_downloads(self, filters: _Filters) -> Iterator[dict]:
        """Every model the reader may see, most downloaded first (ACCESS_TABLE's own order), with its `_rowid`."""
        for rowid, key, hidden in self.conn.execute(f"SELECT id, key, restricted FROM {ACCESS_TABLE} ORDER BY ord"):
            if filters.visible(key, bool(hidden)):
                yield from self._rows(f"SELECT m.rowid AS _rowid, m.* FROM models m WHERE m.rowid = ? {filters.sql}",
                                      [rowid, *filters.args])

    def _benchmarked_rows(self, family: int, match: str, filters: _Filters) -> list[dict]:
        """The benchmarked models whose `family` document matches, in the family's order: each benchmarked model's
        document looked up by its rowid (they are few), instead of walking every match for them."""
        document = document_rowid_sql(family, "m")
        return self._rows(
            f"SELECT m.rowid AS _rowid, m.* FROM {filters.models} WHERE 1 {filters.sql} AND EXISTS (SELECT 1 FROM "
            f"{SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ? AND rowid = {document}) ORDER BY {document}",
            [*filters.args, match])

    def _fastest(self, words: str, filters: _Filters, limit: int) -> list[dict]:
        """Benchmarked models matching the query and filters, highest throughput first (with a reader's test, every
        one of them: they are few)."""
        low, high = family_bounds(ANYWHERE)
        text = (f" AND m.rowid IN (SELECT {ROW_MASK} - (rowid & {ROW_MASK}) FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ? "
                f"AND rowid BETWEEN {low} AND {high})") if words else ""
        sql = ("SELECT m.*, b.throughput, b.latency_p50_ms, b.device FROM models m JOIN "
               "(SELECT model_key, device, max(throughput) AS throughput, min(latency_p50_ms) AS latency_p50_ms "
               "FROM benchmarks WHERE status = 'ok' AND throughput IS NOT NULL GROUP BY model_key, device) b "
               f"ON b.model_key = m.key WHERE 1 {filters.sql}{text} ORDER BY b.throughput DESC LIMIT ?")
        return self._rows(sql, [*filters.args, *([words] if words else []), -1 if filters.visible else limit])
