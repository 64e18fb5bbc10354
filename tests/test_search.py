"""Full-text search: stemming, relevance tiers, filters, sorts, paging, injection-proof queries, migration."""

import pytest

from hubmirror.catalog import Catalog
from hubmirror.records import ModelMetadata


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
        cat._upsert_model(m, cached=(m.model_id != "vit_small"), now="2026-01-01")
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
        cat._upsert_model(m, cached=False, now="2026-01-01")
    # exact name, then every word in the name, then anywhere (tags and description alike); each most downloaded first
    assert keys(cat.search("vision")) == ["hf:b/vision", "hf:a/vision-small", "hf:a/described", "hf:a/tagged-popular",
                                         "hf:a/tagged"]
    assert keys(cat.search("vision", sort="downloads")) == ["hf:a/described", "hf:a/tagged-popular", "hf:a/tagged",
                                                           "hf:a/vision-small", "hf:b/vision"]
    assert keys(cat.search("VISION-SMALL"))[0] == "hf:a/vision-small"  # an exact id wins whatever its popularity
    cat._upsert_model(ModelMetadata("hf", "a/vision-small", downloads=10**7), cached=False, now="2026-01-02")
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
