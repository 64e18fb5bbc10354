"""Search is exact at scale: on 100,000 synthetic models, every query's results equal those of a brute-force ranking
of all rows in Python (the oracle), including the most downloaded match catalogued first, which a search that ranks
only the most recently catalogued matches misses."""

import random
import re

import pytest

from hubmirror.catalog import Catalog, search_facets
from hubmirror.upstream import ModelMetadata

MODELS = 100_000
# Made-up words that porter stemming leaves alone and that stem to nothing else, so that the oracle can compare
# tokens as they are.
VOCABULARY = ("zorb quix flam brix trop glim vask dret plon wix krad muln snor tref yolk balm crux dorp fizz gulp "
              "hask jilt klop lurk mopt nix oomp prax qwil rusk").split()
TASKS = ["fill-mask", "image-classification", "translation", "object-detection"]
TIER_COLUMNS = (("key",), ("key", "task", "library", "architecture", "license", "tags", "description"))


def synthetic_models(n: int, rng: random.Random) -> list[ModelMetadata]:
    """`n` models; the first one catalogued is the most downloaded of all and has the common word in its name."""
    weights = [1 / (i + 1) for i in range(len(VOCABULARY))]
    models = [ModelMetadata("hf", "first/zorb-classic", task="fill-mask", tags=["quix"], description="zorb quix",
                            downloads=10**9, likes=5, last_modified="2024-01-01T00:00:00Z")]
    for i in range(1, n):
        name = "-".join(rng.choices(VOCABULARY, weights, k=2) if rng.random() < 0.05 else ["m"]) + f"-{i}"
        models.append(ModelMetadata("hf", f"org{i % 997}/{name}", task=rng.choice(TASKS),
                                    tags=rng.sample(VOCABULARY, 2), description=" ".join(rng.choices(VOCABULARY, weights, k=6)),
                                    downloads=rng.randrange(10**8), likes=rng.randrange(1000),
                                    last_modified=f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T00:00:00Z"))
    return models


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "catalog.db"
    models = synthetic_models(MODELS, random.Random(7))
    catalog = Catalog(path)
    rows = [(m.key, m.source, m.model_id, m.task, " ".join(m.tags), m.description, m.downloads, m.likes,
             m.last_modified, search_facets(m, False)) for m in models]
    with catalog.search_index_deferred(), catalog.transaction():
        catalog.conn.executemany("INSERT INTO models (key, source, model_id, task, tags, description, downloads, "
                                 "likes, last_modified, cached, facets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)", rows)
    yield catalog, [(m, tier_tokens(m)) for m in models]
    catalog.close()


def tier_tokens(m: ModelMetadata) -> list[set[str]]:
    """The words of the model's name, and all its words."""
    fields = {"key": m.key, "task": m.task, "tags": " ".join(m.tags), "description": m.description}
    return [set(re.findall(r"[a-z0-9]+", " ".join(fields.get(c) or "" for c in cols).lower())) for cols in TIER_COLUMNS]


def oracle(models: list[tuple[ModelMetadata, list[set[str]]]], query: str, *, task=None, sort=None) -> list[str]:
    """Every model ranked in Python: exact id or name, then every word in the name, then anywhere; then downloads,
    then the most recently catalogued. With `sort`, by that attribute alone, then the most recently catalogued."""
    words = set(re.findall(r"[a-z0-9]+", query.lower()))
    ranked = []
    for rowid, (m, tokens) in enumerate(models, start=1):
        if task and m.task != task:
            continue
        tiers = [words <= t for t in tokens]
        if not tiers[-1]:
            continue
        exact = query.lower() in (m.model_id.lower(), m.model_id.split("/")[-1].lower())
        tier = 0 if sort else next(t for t, hit in enumerate([exact, *tiers]) if hit)
        order = {None: -m.downloads, "downloads": -m.downloads, "likes": -m.likes,
                 "lastModified": "".join(chr(255 - ord(c)) for c in m.last_modified)}[sort]
        ranked.append((tier, order, -rowid, m.key))
    return [key for *_, key in sorted(ranked)]


def keys(rows):
    return [r["key"] for r in rows]


def test_the_most_downloaded_match_catalogued_first_is_found(large):
    catalog, _ = large
    assert keys(catalog.search("zorb", limit=1)) == ["hf:first/zorb-classic"]
    assert keys(catalog.search("quix", sort="downloads", limit=1)) == ["hf:first/zorb-classic"]


@pytest.mark.parametrize("query", ["zorb", "quix", "zorb quix", "flam brix", "trop", "rusk qwil", "fill mask zorb",
                                   "org5", "zorb-classic", "m-77"])
def test_relevance_matches_a_brute_force_ranking_of_every_model(large, query):
    catalog, models = large
    assert keys(catalog.search(query, limit=25)) == oracle(models, query)[:25]


@pytest.mark.parametrize("query", ["zorb", "glim vask", "prax"])
def test_sorts_filters_and_pages_are_exact(large, query):
    catalog, models = large
    for sort in ("downloads", "likes", "lastModified"):
        assert keys(catalog.search(query, sort=sort, limit=20)) == oracle(models, query, sort=sort)[:20], sort
    expected = oracle(models, query, task="translation")
    assert keys(catalog.search(query, task="translation", limit=20)) == expected[:20]
    assert keys(catalog.search(query, task="translation", limit=20, offset=300)) == expected[300:320]
