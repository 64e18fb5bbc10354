"""CNCF ModelPack manifests (`modelpack/model-spec` v1), the format of bundles and registry artifacts alike.

A revision is one OCI manifest with `artifactType` `application/vnd.cncf.model.manifest.v1+json`, a ModelPack config
blob (`application/vnd.cncf.model.config.v1+json`: descriptor, config, modelfs), one raw layer per file (weight,
weight config, doc or code, by name) annotated with its path (`org.cncf.model.filepath`, also as
`org.opencontainers.image.title` for oras), and one more layer, `application/vnd.hubmirror.catalog.v1+json`, carrying
hubmirror's catalog rows so that nothing is lost on the way back. Reading also takes ModelPack artifacts other tools
made (no catalog layer: the rows are derived from the manifest) and the bundles of hubmirror before ModelPack.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from hashlib import sha256

from hubmirror.errors import IntegrityError

MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
INDEX_MT = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MT = "application/vnd.cncf.model.config.v1+json"
WEIGHT_MT = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_MT = "application/vnd.cncf.model.weight.config.v1.raw"
DOC_MT = "application/vnd.cncf.model.doc.v1.raw"
CODE_MT = "application/vnd.cncf.model.code.v1.raw"
DATASET_MT = "application/vnd.cncf.model.dataset.v1.raw"
CATALOG_MT = "application/vnd.hubmirror.catalog.v1+json"
FILEPATH = "org.cncf.model.filepath"
OLD_FILEPATH = "org.cnai.model.filepath"  # what producers wrote before the CNCF rename
TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
FILE_LAYER_TYPES = {WEIGHT_MT, WEIGHT_CONFIG_MT, DOC_MT, CODE_MT, DATASET_MT}
# bundles written before ModelPack: hubmirror's rows in the config blob, files as octet-stream layers
LEGACY_CONFIG_MT = "application/vnd.hubmirror.model.config.v1+json"
LEGACY_LAYER_MT = "application/octet-stream"

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf", ".h5", ".keras", ".msgpack",
                   ".tflite", ".pb", ".npz", ".npy", ".pkl", ".mlmodel", ".ot", ".index"}
DOC_SUFFIXES = {".md", ".rst", ".pdf", ".html"}
CODE_SUFFIXES = {".py", ".sh", ".ipynb", ".js", ".c", ".cc", ".cpp", ".cu", ".h"}
# catalog columns that say what a model is (the rest, like indexed_at, is the local mirror's own bookkeeping); a
# dataset's rows say `kind` too (a model's leave it out, so that its bundle is the same bytes as before datasets)
MODEL_FIELDS = ("source", "model_id", "task", "library", "architecture", "license", "tags", "description",
                "downloads", "likes", "last_modified", "gated", "metadata")
FILE_FIELDS = ("path", "size", "sha256", "git_sha1", "upstream_digests", "etag", "lfs")


def canonical_json(value) -> bytes:
    """The one byte form hubmirror writes a JSON document in, so that a revision's manifest has one digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def descriptor(media_type: str, data: bytes) -> dict:
    """An OCI descriptor of `data`."""
    return {"mediaType": media_type, "digest": f"sha256:{sha256(data).hexdigest()}", "size": len(data)}


def layer_media_type(path: str) -> str:
    """The ModelPack raw layer type of a file, by its name: weights, docs, code, else weight config."""
    name = posixpath.basename(path).lower()
    suffix = posixpath.splitext(name)[1]
    if suffix in WEIGHT_SUFFIXES or ".data-" in name:
        return WEIGHT_MT
    if suffix in DOC_SUFFIXES or name.startswith(("readme", "license", "licence", "notice")):
        return DOC_MT
    if suffix in CODE_SUFFIXES:
        return CODE_MT
    return WEIGHT_CONFIG_MT


def catalog_rows(model: dict, commit: str, refs: list[str], files: list[dict]) -> dict:
    """The catalog layer's document: the model row, the revision's refs and its file rows, volatile columns left out;
    a file with a Xet layout carries it (`xet`, hubmirror.xet.carried; the others' rows are as before)."""
    return {
        "model": {name: model.get(name) for name in MODEL_FIELDS} | ({"kind": model["kind"]}
                                                                     if model.get("kind", "model") != "model" else {}),
        "commit": commit,
        "refs": sorted(refs),
        "files": [{name: f.get(name) for name in FILE_FIELDS} | ({"xet": f["xet"]} if f.get("xet") else {})
                  for f in files],
    }


def build(rows: dict) -> tuple[bytes, bytes, bytes]:
    """(manifest, config, catalog layer) of one revision, each in canonical JSON."""
    model, files = rows["model"], rows["files"]
    catalog = canonical_json(rows)
    licenses = [model["license"]] if model.get("license") else []
    config = canonical_json({
        "descriptor": {key: value for key, value in {
            "name": model["model_id"], "revision": rows["commit"], "licenses": licenses,
            "description": model.get("description"), "family": model.get("architecture"),
            "vendor": model["source"]}.items() if value},
        "config": {key: value for key, value in {"format": model.get("library"),
                                                 "architecture": model.get("architecture")}.items() if value},
        "modelfs": {"type": "layers", "diffIds": [f"sha256:{f['sha256']}" for f in files]},
    })
    layers = [{"mediaType": layer_media_type(f["path"]), "digest": f"sha256:{f['sha256']}", "size": f["size"],
               "annotations": {FILEPATH: f["path"], TITLE: f["path"]}} for f in files]
    layers.append(descriptor(CATALOG_MT, catalog))
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": MANIFEST_MT, "artifactType": ARTIFACT_TYPE,
        "config": descriptor(CONFIG_MT, config), "layers": layers,
        "annotations": {"org.hubmirror.model": f"{model['source']}:{model['model_id']}",
                        "org.hubmirror.commit": rows["commit"]},
    })
    return manifest, config, catalog


def check_manifest(manifest: dict) -> None:
    """Refuse a manifest that is not an OCI image manifest of a model: wrong media types, malformed layers."""
    if manifest.get("schemaVersion") != 2 or manifest.get("mediaType", MANIFEST_MT) != MANIFEST_MT:
        raise IntegrityError(f"not an OCI image manifest (mediaType {manifest.get('mediaType')!r})")
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in (CONFIG_MT, LEGACY_CONFIG_MT):
        raise IntegrityError(f"not a model manifest: config media type "
                             f"{(config or {}).get('mediaType') if isinstance(config, dict) else config!r}")
    artifact_type = manifest.get("artifactType")
    if config["mediaType"] == CONFIG_MT and artifact_type not in (None, ARTIFACT_TYPE):
        raise IntegrityError(f"not a ModelPack manifest: artifactType {artifact_type!r}")
    allowed = FILE_LAYER_TYPES | {CATALOG_MT} if config["mediaType"] == CONFIG_MT else {LEGACY_LAYER_MT}
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise IntegrityError("a model manifest lists no layers")
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") not in allowed:
            media_type = layer.get("mediaType") if isinstance(layer, dict) else layer
            raise IntegrityError(f"unsupported layer media type {media_type!r} (only raw ModelPack layers are read)")


def layer_path(layer: dict) -> str | None:
    """The file path a layer names (ModelPack's annotation, its older name, else the OCI title)."""
    annotations = layer.get("annotations") or {}
    return annotations.get(FILEPATH) or annotations.get(OLD_FILEPATH) or annotations.get(TITLE)


def revision_rows(manifest: dict, config: dict, read_blob: Callable[[dict], bytes], origin: str,
                  manifest_digest: str, requested: str | None) -> dict:
    """The catalog rows a checked manifest carries: its catalog layer; the config blob of a legacy bundle; else
    rows derived from a foreign ModelPack artifact, named `oci:<origin>` at the manifest's digest."""
    if manifest["config"]["mediaType"] == LEGACY_CONFIG_MT:
        return config
    catalogs = [layer for layer in manifest["layers"] if layer["mediaType"] == CATALOG_MT]
    if len(catalogs) > 1:
        raise IntegrityError("a model manifest carries more than one catalog layer")
    if catalogs:
        return json_object(read_blob(catalogs[0]), "catalog layer")
    return _foreign_rows(manifest, config, origin, manifest_digest, requested)


def _foreign_rows(manifest: dict, config: dict, origin: str, manifest_digest: str, requested: str | None) -> dict:
    described = config.get("descriptor") if isinstance(config.get("descriptor"), dict) else {}
    licenses = described.get("licenses") if isinstance(described.get("licenses"), list) else []
    files = []
    for layer in manifest["layers"]:
        path = layer_path(layer)
        if path is None:
            raise IntegrityError(f"layer {layer.get('digest')} names no file path ({FILEPATH})")
        digest = layer.get("digest")
        files.append({"path": path, "size": layer.get("size"),
                      "sha256": digest[len("sha256:"):] if isinstance(digest, str) else digest})
    commit = manifest_digest[len("sha256:"):]
    model = {"source": "oci", "model_id": origin, "description": described.get("description"),
             "license": str(licenses[0]) if licenses else None, "architecture": described.get("family"),
             "tags": "modelpack", "metadata": json.dumps({"modelpack": described}, sort_keys=True)}
    return {"model": model, "commit": commit, "refs": [requested or commit], "files": files}


def json_object(data: bytes, what: str) -> dict:
    """`data` parsed as a JSON object; anything else is an IntegrityError naming `what`."""
    try:
        value = json.loads(data)
    except ValueError:
        raise IntegrityError(f"a {what} is not JSON") from None
    if not isinstance(value, dict):
        raise IntegrityError(f"a {what} is not a JSON object")
    return value
