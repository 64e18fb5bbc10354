"""Carrying models across an air gap: OCI-layout bundles (export, import, signing) and client caches written from
the store (materialize)."""
