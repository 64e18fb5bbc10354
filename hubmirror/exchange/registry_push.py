"""`hubmirror export oci://…`: revisions of the mirror pushed as ModelPack artifacts. Blobs the repository has are
skipped (HEAD); blobs this mirror pushed to another repository of the same registry are cross-mounted from there
(it remembers which, in tmp/oci-pushed.json); the rest are uploaded (in chunks from the client's chunk size). Tags:
one revision is pushed under TAG (default `latest`); several are each pushed under `<model id>-<commit[:12]>`
(characters a tag cannot hold become `-`) and an image index naming them all (the bytes of the bundle's index.json)
under TAG. Signed (`--sign`), every manifest or index tagged gets a signature artifact attached
(`registry_signature`).
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
MOUNT_ATTEMPTS = 3  # repositories a blob is mounted from at most before it is uploaded (docker's limit too)
REMEMBERED_REPOSITORIES = 20  # per registry, the repositories whose blobs this mirror pushed are remembered


def artifact_tag(key: str, commit: str) -> str:
    """The tag of one revision among several: `<model id>-<commit[:12]>`, made a valid tag."""
    model_id = key.partition(":")[2]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_id}-{commit[:12]}").lstrip(".-")[-128:]


def _pushed_file(mirror: Mirror):
    return mirror.root / "tmp" / "oci-pushed.json"


def _known(mirror: Mirror) -> dict:
    try:
        known = json.loads(_pushed_file(mirror).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def pushed_blobs(mirror: Mirror, registry: str) -> dict[str, set[str]]:
    """The repositories of `registry` this mirror pushed to before, newest first, each with the hex digests of the
    blobs it pushed there: where those blobs can be mounted from."""
    repos = _known(mirror).get(registry)
    if not isinstance(repos, dict):  # none yet (or the bare list of repositories an earlier version kept)
        return {}
    return {repo: set(digests) for repo, digests in repos.items() if isinstance(digests, list)}


def _remember(mirror: Mirror, target: Target, digests: set[str]) -> None:
    """Note that `target`'s repository (now the newest) holds the blobs `digests`."""
    known = _known(mirror)
    repos = pushed_blobs(mirror, target.registry)
    repos = {target.repository: repos.pop(target.repository, set()) | digests, **repos}
    known[target.registry] = {repo: sorted(held) for repo, held in list(repos.items())[:REMEMBERED_REPOSITORIES]}
    path = _pushed_file(mirror)
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
    blobs: dict[str, tuple[int, object]] = {}
    for artifact in artifacts:
        for hex_digest, data in artifact.metadata.items():
            blobs[hex_digest] = (len(data), lambda data=data: io.BytesIO(data))
        for hex_digest, size in artifact.layers.items():
            blobs[hex_digest] = (size, lambda h=hex_digest: mirror.store.open(h))
    pushed = pushed_blobs(mirror, target.registry)
    pushed.pop(target.repository, None)
    mount_from = {h: [repo for repo, held in pushed.items() if h in held][:MOUNT_ATTEMPTS] for h in blobs}
    client = RegistryClient(target, plain_http=plain_http, push=True, chunk_size=chunk_size,
                            mount_from=tuple(dict.fromkeys(repo for repos in mount_from.values() for repo in repos)))
    with ThreadPoolExecutor(max_workers=PUSH_WORKERS, thread_name_prefix="push") as pool:
        outcomes = list(pool.map(lambda item: _push_blob(client, mount_from[item[0]], f"sha256:{item[0]}", *item[1]),
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
    _remember(mirror, target, set(blobs))
    return report


def _push_blob(client: RegistryClient, mount_from: list[str], digest: str, size: int, opener) -> str:
    """Get one blob into the repository; which way it went: skipped (there already), mounted (from one of the
    repositories this mirror pushed it to) or written."""
    if client.has_blob(digest):
        return "skipped"
    location = None
    for repository in mount_from:  # each refusal opens an upload; the last one is used, the registry purges the others
        location = client.mount(digest, repository)
        if location is None:
            return "mounted"
    client.upload(digest, size, opener, location)
    return "written"
