"""catalog.db: sources, models, revisions, refs, files, benchmark and scan results, with full-text search.

One `Catalog` object per connection, assembled from one module per job: the connection and transactions, writes,
reads, search, admission verdicts and benchmarks; the schema is in migrations.py.
"""

from hubmirror.catalog.benchmarks import Benchmarks
from hubmirror.catalog.connection import (
    CATALOG_NAME,
    SCHEMA_VERSION,
    CatalogConnection,
    utc_now,
)
from hubmirror.catalog.reads import ModelReads
from hubmirror.catalog.search import Search, facet_token, fts_words, search_facets
from hubmirror.catalog.site_index import SiteIndex
from hubmirror.catalog.tokens import AccessTokens
from hubmirror.catalog.verdicts import SCANNER, Verdicts
from hubmirror.catalog.writes import RevisionWrites, StoredFile
from hubmirror.catalog.xet_chunks import XetChunks


class Catalog(CatalogConnection, RevisionWrites, ModelReads, Search, Verdicts, Benchmarks, SiteIndex, AccessTokens,
              XetChunks):
    """The SQLite catalog of one mirror."""


__all__ = ["CATALOG_NAME", "SCANNER", "SCHEMA_VERSION", "Catalog", "StoredFile", "facet_token", "fts_words",
           "search_facets", "utc_now"]
