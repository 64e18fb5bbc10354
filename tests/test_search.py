"""Full-text search: stemming, relevance tiers, filters, sorts, paging, injection-proof queries, migration."""

import pytest

from hubmirror.catalog import Catalog
from hubmirror.upstream import ModelMetadata


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "catalog.db")
    models = [
        ModelMetadata("hf", "org/bert-base", task="fill-mask", license="apache-2.0", downloads=10,
                      description="A transformer encoder."),
        ModelMetadata("hf", "org/encoder-x", task="feature-extraction", license="mit", downloads=1000,
                      description="Distilled from bert with sentence embeddings."),
        ModelMetadata("hf", "org/resnet50", task="image-classification", library="timm", tags=["vision"],
                      license="apache-2.0", downloads=500, description="Residual network."),
        ModelMetadata("timm", "vit_small", task="image-classification", library="timm", downloads=5),
    ]
    for m in models:
        cat._upsert_models([m], cached=(m.model_id != "vit_small"), now="2026-01-01")
    yield cat
    cat.close()


def keys(rows):
    return [r["key"] for r in rows]


def test_name_hits_outrank_description_hits_even_when_less_downloaded(catalog):
    assert keys(catalog.search("bert")) == ["hf:org/bert-base", "hf:org/encoder-x"]


def test_stemming_matches_word_forms(catalog):
    assert keys(catalog.search("embedding")) == ["hf:org/encoder-x"]  # "embeddings" in the description


def test_every_word_must_match(catalog):
    assert keys(catalog.search("bert embedding")) == ["hf:org/encoder-x"]
    assert catalog.search("bert resnet") == []


def test_filters(catalog):
    assert keys(catalog.search("", library="timm")) == ["hf:org/resnet50", "timm:vit_small"]
    assert keys(catalog.search("", library="timm", cached=False)) == ["timm:vit_small"]
    assert keys(catalog.search("", task="image-classification", source="timm")) == ["timm:vit_small"]
    assert keys(catalog.search("", license="apache-2.0")) == ["hf:org/resnet50", "hf:org/bert-base"]


@pytest.mark.parametrize("hostile", ['"', "bert OR resnet", "NEAR(bert", "*", "description:bert", "bert'; DROP TABLE models;--"])
def test_fts_syntax_in_queries_is_taken_literally(catalog, hostile):
    catalog.search(hostile)  # never an FTS5 syntax error
    assert catalog.db["models"].count == 4


def test_relevance_tiers_then_downloads(tmp_path):
    cat = Catalog(tmp_path / "catalog.db")
    models = [  # catalogued in this order; the query is "vision"
        ModelMetadata("hf", "a/described", description="a vision model", downloads=9_000),
        ModelMetadata("hf", "a/tagged", tags=["vision"], downloads=500),
        ModelMetadata("hf", "a/tagged-popular", tags=["vision"], downloads=800),
        ModelMetadata("hf", "a/vision-small", downloads=10),
        ModelMetadata("hf", "b/vision", downloads=1),
        ModelMetadata("hf", "a/other", description="nothing to see", downloads=10**6),
    ]
    for m in models:
        cat._upsert_models([m], cached=False, now="2026-01-01")
    # exact name, then every word in the name, then anywhere (tags and description alike); each most downloaded first
    assert keys(cat.search("vision")) == ["hf:b/vision", "hf:a/vision-small", "hf:a/described", "hf:a/tagged-popular",
                                         "hf:a/tagged"]
    assert keys(cat.search("vision", sort="downloads")) == ["hf:a/described", "hf:a/tagged-popular", "hf:a/tagged",
                                                           "hf:a/vision-small", "hf:b/vision"]
    assert keys(cat.search("VISION-SMALL"))[0] == "hf:a/vision-small"  # an exact id wins whatever its popularity
    cat._upsert_models([ModelMetadata("hf", "a/vision-small", downloads=10**7)], cached=False, now="2026-01-02")
    assert keys(cat.search("vision", sort="downloads"))[0] == "hf:a/vision-small"  # the index follows updates
    cat.remove("hf:a/described")  # no revisions: the model row goes, and with it its documents
    assert "hf:a/described" not in keys(cat.search("vision", limit=50))
    cat.close()


def test_sorts_and_paging(catalog):
    catalog.conn.execute("UPDATE models SET likes = 3, last_modified = '2025-01-01T10:00:00Z' WHERE key = 'hf:org/bert-base'")
    catalog.conn.execute("UPDATE models SET likes = 7, last_modified = '2024-01-01T00:00:00.000+00:00' "
                         "WHERE key = 'hf:org/encoder-x'")
    assert keys(catalog.search("bert", sort="likes")) == ["hf:org/encoder-x", "hf:org/bert-base"]
    assert keys(catalog.search("bert", sort="lastModified")) == ["hf:org/bert-base", "hf:org/encoder-x"]
    catalog.conn.execute("UPDATE models SET likes = 1, last_modified = NULL WHERE key = 'hf:org/encoder-x'")
    assert keys(catalog.search("bert", sort="likes")) == ["hf:org/bert-base", "hf:org/encoder-x"]
    # no last modification known: the time it was catalogued (2026-01-01) stands in
    assert keys(catalog.search("bert", sort="lastModified")) == ["hf:org/encoder-x", "hf:org/bert-base"]
    assert keys(catalog.search("", sort="likes"))[:2] == ["hf:org/bert-base", "hf:org/encoder-x"]
    everything = keys(catalog.search("", limit=4))
    assert keys(catalog.search("", limit=2, offset=2)) == everything[2:]
    assert keys(catalog.search("bert", limit=1, offset=1)) == ["hf:org/encoder-x"]
    with pytest.raises(ValueError, match="unknown sort"):
        catalog.search("bert", sort="trending")


def test_benchmarked_filter_and_fastest_sort(catalog):
    catalog.conn.execute("INSERT INTO benchmarks (model_key, status, device, throughput, latency_p50_ms) "
                         "VALUES ('hf:org/resnet50', 'ok', 'cpu', 50.0, 20.0), ('hf:org/bert-base', 'oom', 'cpu', "
                         "NULL, NULL)")
    assert keys(catalog.search("", benchmarked=True)) == ["hf:org/resnet50"]
    assert "hf:org/resnet50" not in keys(catalog.search("", benchmarked=False))
    assert keys(catalog.search("residual", sort="fastest")) == ["hf:org/resnet50"]
    assert keys(catalog.search("bert", benchmarked=True)) == []


def test_a_catalog_of_schema_4_migrates_and_searches(tmp_path):
    from sqlite_utils import Database, Migrations

    from hubmirror.catalog.migrations import migrations

    path = tmp_path / "catalog.db"
    old = Migrations("hubmirror")
    old._migrations = migrations._migrations[:4]
    db = Database(path)
    old.apply(db)
    db["models"].insert({"key": "hf:org/old", "source": "hf", "model_id": "org/old", "cached": 1, "downloads": 3,
                         "description": "an old multilingual encoder", "facets": "hmfsourcehf hmfcached1"})
    db.execute("PRAGMA user_version = 4")
    db.close()
    cat = Catalog(path)
    assert keys(cat.search("multilingual", source="hf", cached=True)) == ["hf:org/old"]
    assert cat.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'models_fts'").fetchone()[0] == 0
    cat.close()


def test_schema_version_counts_the_migrations(tmp_path):
    from hubmirror.catalog import SCHEMA_VERSION
    from hubmirror.catalog.migrations import migrations

    assert len(migrations.pending(Catalog(tmp_path / "fresh.db").db)) == 0
    assert SCHEMA_VERSION == len(migrations._migrations)


# ---- bulk writes: the documents of many models written in one pass (search_index_batch) ----

WORDS = ["vision", "bert", "small", "tiny", "large", "resnet", "encoder", "audio", "speech", "ocr"]
QUERIES = [("", {}), ("vision", {}), ("bert small", {}), ("tiny", {"sort": "likes"}),
           ("large", {"sort": "lastModified"}), ("resnet", {"sort": "downloads"}), ("encoder", {"cached": True}),
           ("audio", {"task": "translation"}), ("m-7", {}), ("", {"sort": "likes", "cached": False})]


def model_id(i: int) -> str:
    return f"org{i % 7}/m-{i}-{WORDS[i % len(WORDS)]}"


def listing(start: int, stop: int, seed: int) -> list[ModelMetadata]:
    """Models START … STOP-1, their other words, tasks and popularity drawn from `seed` (a later seed: a refresh)."""
    import random

    rng = random.Random(seed * 1_000_003 + start)
    return [ModelMetadata("hf", model_id(i), task=rng.choice(["fill-mask", "translation"]),
                          tags=rng.sample(WORDS, 2), description=" ".join(rng.choices(WORDS, k=5)),
                          downloads=rng.randrange(1000), likes=rng.randrange(50),
                          last_modified=f"2025-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T00:00:00Z")
            for i in range(start, stop)]


def cache(catalog: Catalog, metas: list[ModelMetadata]) -> None:
    """Catalogue one stored revision of each model (as a pull or an import does), which makes them cached."""
    from hubmirror.catalog import StoredFile
    from hubmirror.upstream import ModelRef, RemoteFile, ResolvedRevision

    revisions = [(ResolvedRevision(ModelRef(m.source, m.model_id), "c" * 40, "main", m, []),
                  [StoredFile(RemoteFile("config.json", 2), "ab" * 32, None, 2)]) for m in metas]
    catalog.record_revisions(revisions, "huggingface")


def index_state(catalog: Catalog) -> tuple[list, list]:
    """All that searching the catalog tells: each query's whole answer in order, and every indexed term with the
    number of documents holding it (a document removed with the wrong words would leave a count off)."""
    catalog.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_terms "
                         "USING fts5vocab(main, models_search, row)")
    answers = [keys(catalog.search(q, limit=10_000, **kw)) for q, kw in QUERIES]
    return answers, catalog.conn.execute("SELECT term, doc FROM temp.search_terms ORDER BY term").fetchall()


def search_triggers(catalog: Catalog) -> int:
    return catalog.conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                                "'models\\_search\\_%' ESCAPE '\\'").fetchone()[0]


def write_history(catalog: Catalog) -> None:
    """Listings into an empty catalog and over it (refreshed words and ranks, new models), pulls, removals."""
    catalog.record_index(listing(0, 300, seed=1), "huggingface")
    catalog.record_index(listing(150, 450, seed=2), "huggingface")
    cache(catalog, listing(400, 440, seed=3) + listing(440, 460, seed=3))  # 40 listed, 20 new
    catalog.record_index(listing(420, 470, seed=4), "huggingface")  # cached ones stay cached
    for i in (3, 200, 430):
        catalog.remove(f"hf:{model_id(i)}")


def history_with(tmp_path, monkeypatch, name: str, **rule) -> Catalog:
    from hubmirror.catalog import search

    for setting, value in rule.items():
        monkeypatch.setattr(search, setting, value)
    catalog = Catalog(tmp_path / f"{name}.db")
    write_history(catalog)
    monkeypatch.undo()
    return catalog


@pytest.mark.parametrize("rule", [{}, {"REBUILD_SHARE": 10**9}, {"REBUILD_SHARE": 10**-9}],
                         ids=["default rule", "batch documents only", "whole index rebuilt"])
def test_bulk_writes_index_exactly_as_row_by_row_writes(tmp_path, monkeypatch, rule):
    by_rows = history_with(tmp_path, monkeypatch, "rows", BULK_MIN_MODELS=10**9)
    batched = history_with(tmp_path, monkeypatch, "batched", **rule)
    assert index_state(batched) == index_state(by_rows)
    assert index_state(batched)[0][1] and len(index_state(batched)[0][0]) == 467
    assert search_triggers(batched) == 3
    batched.record_index(listing(0, 5, seed=9), "huggingface")  # a small write after batches: the triggers index it
    by_rows.record_index(listing(0, 5, seed=9), "huggingface")
    assert index_state(batched) == index_state(by_rows)


def statements_of(catalog: Catalog, write) -> str:
    seen: list[str] = []
    catalog.conn.set_trace_callback(seen.append)
    try:
        write()
    finally:
        catalog.conn.set_trace_callback(None)
    return "\n".join(seen)


def segments(statements: str) -> int:
    """How many FTS5 index segments the statements wrote (SQLite traces FTS5's own writes to its tables)."""
    return statements.count("models_search_idx'(segid")


def test_the_rule_small_writes_keep_the_triggers_large_ones_batch_and_most_of_the_catalog_rebuilds(tmp_path):
    from hubmirror.catalog.search import BULK_MIN_MODELS, REBUILD_SHARE

    catalog, reference = Catalog(tmp_path / "catalog.db"), Catalog(tmp_path / "reference.db")
    for cat in (catalog, reference):
        cat.record_index(listing(0, 1000, seed=1), "huggingface")
    small = listing(0, BULK_MIN_MODELS - 1, seed=2)
    large = listing(500, 500 + BULK_MIN_MODELS * 3, seed=2)
    most = listing(0, int(1000 * REBUILD_SHARE) + 1, seed=3)
    done = statements_of(catalog, lambda: catalog.record_index(small, "huggingface"))
    assert "DROP TRIGGER" not in done and segments(done) >= len(small)  # each model indexed by the triggers
    done = statements_of(catalog, lambda: catalog.record_index(large, "huggingface"))
    assert "DROP TRIGGER" in done and "'delete-all'" not in done and segments(done) < len(large) / 4
    done = statements_of(catalog, lambda: catalog.record_index(most, "huggingface"))
    assert "'delete-all'" in done
    for metas in (small, large, most):
        for m in metas:  # the reference: one model per transaction, always through the triggers
            reference.record_index([m], "huggingface")
    assert index_state(catalog) == index_state(reference)


def test_readers_see_the_old_index_until_the_batch_commits(tmp_path):
    writer = Catalog(tmp_path / "catalog.db")
    writer.record_index(listing(0, 200, seed=1), "huggingface")
    reader = Catalog(tmp_path / "catalog.db")
    before = index_state(reader)
    refreshed = listing(100, 300, seed=2)
    with writer.transaction():
        with writer.search_index_batch({m.key for m in refreshed}):
            writer._upsert_models(refreshed, cached=False, now="2026-02-01")
            assert search_triggers(writer) == 0  # the writer's own view, mid-batch
            assert index_state(reader) == before and search_triggers(reader) == 3
        assert index_state(reader) == before  # documents written, not committed yet
    after = index_state(reader)
    assert after != before and after == index_state(writer) and search_triggers(reader) == 3
    assert len(after[0][0]) == 300


@pytest.mark.parametrize("catalogued", [1000, 100], ids=["batch documents", "whole index rebuilt"])
def test_a_bulk_index_killed_before_commit_leaves_the_catalog_as_it_was(tmp_path, catalogued):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "catalog.db"
    catalog = Catalog(path)
    catalog.record_index(listing(0, catalogued, seed=1), "huggingface")
    before = index_state(catalog)
    catalog.close()
    write = ("import sys; from hubmirror.catalog import Catalog; from tests.test_search import listing; "
             "Catalog(sys.argv[1]).record_index(listing(50, 250, seed=2), 'huggingface')")
    crash = {**os.environ, "HUBMIRROR_CRASH_AT": "catalog.before_commit:1"}
    result = subprocess.run([sys.executable, "-c", write, str(path)], cwd=Path(__file__).parent.parent, env=crash,
                            timeout=120, check=False, capture_output=True)
    assert result.returncode == -9, result.stderr
    catalog = Catalog(path)
    assert index_state(catalog) == before and search_triggers(catalog) == 3
    assert catalog.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    catalog.record_index(listing(50, 250, seed=2), "huggingface")  # run again, to the end
    reference = Catalog(tmp_path / "reference.db")
    for metas in (listing(0, catalogued, seed=1), listing(50, 250, seed=2)):
        for m in metas:
            reference.record_index([m], "huggingface")
    assert index_state(catalog) == index_state(reference)
