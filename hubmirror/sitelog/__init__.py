"""Many hosts, one bucket: the catalog records live in the bucket (see log.py for the layout and protocol), and each
host's catalog.db is an index of them that refreshes incrementally and can be rebuilt from the bucket alone.

A mirror whose store has a shared bucket (`BlobStore.shared_bucket()`) writes through `writer.SiteWriter`, chosen
when the mirror opens; a local mirror never imports this package.
"""
