"""Everything a hubmirror plugin needs, in one module (as `import llm` is for llm's plugins): the hook marker, the
contracts a plugin implements (sources, benchmark loaders, client cache layouts, cache adopters, store backends),
the values that pass between a plugin and the core, the errors it raises, and the helpers a source uses to speak
HTTP. Plugins import from here only; what is not here is the core's own business and may change.

    from hubmirror.api import Download, RemoteFile, ResolvedRevision, Source, hookimpl

    @hookimpl
    def register_sources(register):
        register(MySource())
"""

from hubmirror import __version__
from hubmirror.adopt import Adopter, Adoption, AdoptReport
from hubmirror.archives import chunks, open_tar, open_zip
from hubmirror.bench.loader_contract import Loaded, Loader, torch_dtype
from hubmirror.digests import SHA256_PREFIX, is_valid_digest
from hubmirror.errors import (
    AccessDeniedError,
    HubAnswer,
    HubmirrorError,
    IntegrityError,
    NotFoundError,
    TransferBrokenError,
    UnsafePathError,
    UsageError,
)
from hubmirror.exchange.materialize import Layout, Placer
from hubmirror.exchange.registry_target import parse_target
from hubmirror.fetch.download import Download, local_download
from hubmirror.fetch.http import (
    describe_network_error,
    json_body,
    open_bounded,
    open_range,
    request,
    request_json,
    spool,
    transport_error,
)
from hubmirror.fetch.redirects import check_redirect
from hubmirror.fetch.retries import RETRY_STATUSES, Retrier, retry_after_seconds, retry_policy, retrying
from hubmirror.hookspecs import hookimpl
from hubmirror.imports import hiding
from hubmirror.safepath import check_relative_path
from hubmirror.serving.hub_ids import hub_commit, hub_time, is_repo_id, repo_id, served_file
from hubmirror.sources import Delegated, Source, SourceContext, delegate_files
from hubmirror.store.base import BlobInfo, BlobStore, BlobWriter, StoreBackend
from hubmirror.store.bucket import SharedBucket
from hubmirror.upstream import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision
from hubmirror.xet.format import is_xet_hash
from hubmirror.xet.reader import CasAccess, XetSource, open_xet

__all__ = [
    "SHA256_PREFIX", "RETRY_STATUSES", "AccessDeniedError", "AdoptReport", "Adopter", "Adoption", "BlobInfo",
    "BlobStore", "BlobWriter", "CasAccess", "Delegated", "Download", "HubAnswer", "HubmirrorError", "IntegrityError",
    "Layout", "Loaded", "Loader", "ModelMetadata", "ModelRef", "NotFoundError", "Placer", "RemoteFile",
    "ResolvedRevision", "Retrier", "SharedBucket", "Source", "SourceContext", "StoreBackend", "TransferBrokenError",
    "UnsafePathError", "UsageError", "XetSource", "__version__", "check_redirect", "check_relative_path", "chunks",
    "delegate_files", "describe_network_error", "hiding", "hookimpl", "hub_commit", "hub_time", "is_repo_id", "is_valid_digest",
    "is_xet_hash", "json_body", "local_download", "open_bounded", "open_range", "open_tar", "open_xet", "open_zip",
    "parse_target", "repo_id", "request", "request_json", "retry_after_seconds", "retry_policy", "retrying",
    "served_file", "spool", "torch_dtype", "transport_error",
]
