"""Full-text search: stemming, field weights, filters, injection-proof queries, bounded ranking."""

import pytest

from hubmirror.catalog import Catalog
from hubmirror.catalog import search as catalog_module
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


def test_ranking_is_bounded_to_the_newest_candidates(catalog, monkeypatch):
    monkeypatch.setattr(catalog_module, "RANK_CANDIDATES", 1)
    assert keys(catalog.search("apache")) == ["hf:org/resnet50"]  # newest match only


def test_schema_version_counts_the_migrations(tmp_path):
    from hubmirror.catalog import SCHEMA_VERSION
    from hubmirror.catalog.migrations import migrations

    assert len(migrations.pending(Catalog(tmp_path / "fresh.db").db)) == 0
    assert SCHEMA_VERSION == len(migrations._migrations)
