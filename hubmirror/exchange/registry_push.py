"""`hubmirror export oci://…`: revisions of the mirror pushed as ModelPack artifacts. Blobs the repository has are
skipped (HEAD); blobs of another repository this mirror pushed to on the same registry are cross-mounted; the rest
are uploaded (in chunks from the client's chunk size). Tags: one revision is pushed under TAG (default `latest`);
several are each pushed under `<model id>-<commit[:12]>` (characters a tag cannot hold become `-`) and an image index
naming them all (the bytes of the bundle's index.json) under TAG. Signed (`--sign`), every manifest or index
tagged gets a signature artifact attached (`registry_signature`).
"""

from __future__ import annotations

import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hubmirror.errors import UsageError
from hubmirror.exchange.bundle_export import ExportReport, build_artifacts, index_document
from hubmirror.exchange.modelpack import INDEX_MT, MANIFEST_MT
from hubmirror.exchange.registry import DEFAULT_CHUNK, RegistryClient
from hubmirror.exchange.registry_signature import push_signature
from hubmirror.exchange.registry_target import Target
from hubmirror.exchange.signing import load_private_key
from hubmirror.mirror import Mirror

PUSH_WORKERS = 4  # blobs uploaded at once (docker pushes 3 layers at a time, oras 3)


def artifact_tag(key: str, commit: str) -> str:
    """The tag of one revision among several: `<model id>-<commit[:12]>`, made a valid tag."""
    model_id = key.partition(":")[2]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_id}-{commit[:12]}").lstrip(".-")[-128:]


def _pushed_file(mirror: Mirror):
    return mirror.root / "tmp" / "oci-pushed.json"


def pushed_repositories(mirror: Mirror, registry: str) -> list[str]:
    """The repositories of `registry` this mirror pushed to before, newest first (where blobs can be mounted from)."""
    try:
        return list(json.loads(_pushed_file(mirror).read_text()).get(registry, []))
    except (OSError, ValueError, AttributeError):
        return []


def _remember(mirror: Mirror, target: Target) -> None:
    path = _pushed_file(mirror)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    repos = [target.repository] + [r for r in known.get(target.registry, []) if r != target.repository]
    known[target.registry] = repos[:20]
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps(known))
    os.replace(temp, path)


def push_to_registry(mirror: Mirror, selection: list[tuple[str, str]], target: Target, *, plain_http: bool = False,
                     chunk_size: int = DEFAULT_CHUNK, signing_key: Path | None = None) -> ExportReport:
    """Push the revisions in `selection` to `target`; blobs first, manifests last (nothing is tagged half-pushed);
    with `signing_key`, the tagged manifest or index signed (`registry_signature`)."""
    if target.digest:
        raise UsageError(f"{target}: export pushes to a tag, not a digest")
    if signing_key is not None:
        load_private_key(signing_key)  # a bad key is refused before anything is pushed
    report = ExportReport()
    artifacts = build_artifacts(mirror.catalog, selection, report)
    others = [r for r in pushed_repositories(mirror, target.registry) if r != target.repository]
    client = RegistryClient(target, plain_http=plain_http, push=True, mount_from=tuple(others), chunk_size=chunk_size)
    blobs: dict[str, tuple[int, object]] = {}
    for artifact in artifacts:
        for hex_digest, data in artifact.metadata.items():
            blobs[hex_digest] = (len(data), lambda data=data: io.BytesIO(data))
        for hex_digest, size in artifact.layers.items():
            blobs[hex_digest] = (size, lambda h=hex_digest: mirror.store.open(h))
    with ThreadPoolExecutor(max_workers=PUSH_WORKERS, thread_name_prefix="push") as pool:
        outcomes = list(pool.map(lambda item: _push_blob(client, others, f"sha256:{item[0]}", *item[1]),
                                 blobs.items()))
    report.blobs_skipped = outcomes.count("skipped")
    report.blobs_mounted = outcomes.count("mounted")
    report.blobs_written = outcomes.count("written")
    report.bytes_written = sum(size for outcome, (size, _) in zip(outcomes, blobs.values()) if outcome == "written")
    tag = target.tag or "latest"
    tagged = [(MANIFEST_MT, artifacts[0].manifest)] if len(artifacts) == 1 else []
    if not tagged:
        for artifact in artifacts:
            name = artifact_tag(artifact.key, artifact.commit)
            client.put_manifest(name, MANIFEST_MT, artifact.manifest)
            report.tags.append(name)
            tagged.append((MANIFEST_MT, artifact.manifest))
        tagged.insert(0, (INDEX_MT, index_document(artifacts)))
    client.put_manifest(tag, *tagged[0])
    report.tags.insert(0, tag)
    if signing_key is not None:
        for media_type, signed in tagged:
            push_signature(client, media_type, signed, signing_key)
        report.signed = True
    _remember(mirror, target)
    return report


def _push_blob(client: RegistryClient, others: list[str], digest: str, size: int, opener) -> str:
    """Get one blob into the repository; which way it went: skipped (there already), mounted or written."""
    if client.has_blob(digest):
        return "skipped"
    location = None
    for repository in others:  # each refusal opens an upload; the last one is used, the registry purges the others
        location = client.mount(digest, repository)
        if location is None:
            return "mounted"
    client.upload(digest, size, opener, location)
    return "written"
