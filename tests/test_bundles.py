"""export / import of OCI-layout bundles: round trip, incremental, signatures, and hostile bundles refused whole."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Cli, noise
from tests.fakes.model_files import MINILM_REPO_ID

LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


@pytest.fixture
def source_mirror(minilm_hub, run):
    minilm_hub.create_repo("org/small", {".gitattributes": LFS, "w.bin": noise(20_000), "config.json": b"{}"})
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    assert run("pull", "hf:org/small").exit_code == 0
    return run


@pytest.fixture
def target(tmp_path):
    return Cli(tmp_path / "airgapped")


def blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs" / "sha256").iterdir()}


@pytest.mark.parametrize("container", ["dir", "tar"])
def test_round_trip_into_an_empty_mirror(source_mirror, target, tmp_path, container):
    out = tmp_path / ("bundle.tar" if container == "tar" else "bundle")
    report = source_mirror.json("export", str(out), "--all")
    assert report["manifests"] == 2 and report["blobs_written"] == 16
    layout = json.loads((out / "oci-layout").read_text()) if container == "dir" else None
    assert container == "tar" or layout == {"imageLayoutVersion": "1.0.0"}
    imported = target.json("import", str(out))
    assert imported["blobs_imported"] == 16 and len(imported["revisions"]) == 2
    assert target.json("verify")["ok"] is True
    a = source_mirror.json("show", f"hf:{MINILM_REPO_ID}")
    b = target.json("show", f"hf:{MINILM_REPO_ID}")
    for field in ("commit", "task", "license", "description", "tags", "architecture"):
        assert a[field] == b[field]
    assert [(f["path"], f["sha256"], f["git_sha1"], f["lfs"]) for f in a["files"]] == \
           [(f["path"], f["sha256"], f["git_sha1"], f["lfs"]) for f in b["files"]]
    assert target.json("search", "sentence embedding")[0]["key"] == f"hf:{MINILM_REPO_ID}"
    again = target.json("import", str(out))  # idempotent
    assert again["blobs_imported"] == 0 and again["blobs_present"] == 16
    assert len(target.json("list")) == 2


def test_incremental_export_writes_only_new_blobs(source_mirror, minilm_hub, target, tmp_path):
    first = tmp_path / "first"
    source_mirror.json("export", str(first), f"hf:{MINILM_REPO_ID}")
    repo = minilm_hub.repos["org/small"]
    repo.commit({".gitattributes": LFS, "w.bin": noise(100), "config.json": b"{}"})
    assert source_mirror("pull", "hf:org/small").exit_code == 0
    second = tmp_path / "second"
    report = source_mirror.json("export", str(second), "--all", "--since", str(first))
    assert report["blobs_skipped"] == 13 and report["blobs_written"] == 4  # both w.bin, org/small .gitattributes, config
    result = target("import", str(second))
    assert result.exit_code == 1 and "import the earlier bundle" in result.output
    assert target.json("list") == []
    target.json("import", str(first))
    assert len(target.json("import", str(second))["revisions"]) == 3


def test_signed_bundles_verify_against_the_pinned_key(source_mirror, target, tmp_path):
    keys = tmp_path / "keys"
    assert source_mirror("keygen", str(keys)).exit_code == 0
    bundle = tmp_path / "signed"
    assert source_mirror.json("export", str(bundle), "--all", "--sign", str(keys / "hubmirror-signing.key"))["signed"]
    target.root.mkdir()
    (target.root / "config.toml").write_text(f'[import]\ntrusted_keys = ["{(keys / "hubmirror-signing.pub").read_text().strip()}"]\n')
    assert target.json("import", str(bundle))["signed_by"]
    # an unsigned bundle, or one signed by another key, is refused by a mirror that pins keys
    unsigned = tmp_path / "unsigned"
    source_mirror.json("export", str(unsigned), "--all")
    result = target("import", str(unsigned))
    assert result.exit_code == 1 and "not signed" in result.output
    other = tmp_path / "other-keys"
    source_mirror("keygen", str(other))
    forged = tmp_path / "forged"
    source_mirror.json("export", str(forged), "--all", "--sign", str(other / "hubmirror-signing.key"))
    result = target("import", str(forged))
    assert result.exit_code == 1 and "does not verify" in result.output
    # a signed index that was edited afterwards no longer verifies
    index = json.loads((bundle / "index.json").read_text())
    index["manifests"] = index["manifests"][:1]
    (bundle / "index.json").write_text(json.dumps(index))
    assert target("import", str(bundle)).exit_code == 1


def _tar(tmp_path: Path, members) -> Path:
    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[kind]
                info.linkname = data.decode()
                tar.addfile(info)
    return path


@pytest.mark.parametrize("member", [
    ("../escape", b"x", "file"), ("/abs/escape", b"x", "file"), ("blobs/sha256/../../escape", b"x", "file"),
    ("blobs/sha256/" + "a" * 64, b"/etc/passwd", "symlink"), ("blobs/sha256/" + "b" * 64, b"oci-layout", "hardlink"),
    ("blobs/sha256/" + "c" * 64, b"", "device"), ("blobs/sha256/NOTHEX", b"x", "file"),
])
def test_hostile_tar_members_are_refused(target, tmp_path, member):
    bundle = _tar(tmp_path, [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}', "file"),
                             ("index.json", b'{"manifests": []}', "file"), member])
    result = target("import", str(bundle))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "escape").exists() and not Path("/abs/escape").exists()
    assert not (target.root / "catalog.db").exists() or target.json("list") == []


def test_tampered_truncated_and_malformed_bundles_import_nothing(source_mirror, target, tmp_path):
    bundle = tmp_path / "b"
    source_mirror.json("export", str(bundle), "--all")
    weights = max((bundle / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    original = weights.read_bytes()
    weights.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    result = target("import", str(bundle))
    assert result.exit_code == 1 and "refused" in result.output
    assert target.json("list") == []
    assert hashlib.sha256(weights.read_bytes()).hexdigest() not in blobs(target.root)
    weights.write_bytes(original)
    # a digest string that is not 64 hex never becomes a path
    index = json.loads((bundle / "index.json").read_text())
    saved = dict(index["manifests"][0])
    index["manifests"][0]["digest"] = "sha256:../../../etc/passwd"
    (bundle / "index.json").write_text(json.dumps(index))
    result = target("import", str(bundle))
    assert result.exit_code == 1 and "not sha256:<64 hex digits>" in result.output
    index["manifests"][0] = saved
    (bundle / "index.json").write_text(json.dumps(index))
    tar = tmp_path / "b.tar"
    source_mirror.json("export", str(tar), "--all")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    result = target("import", str(cut))
    assert result.exit_code == 1
    assert target.json("list") == []
    done = target.json("import", str(bundle))  # the intact bundle still imports
    assert done["blobs_imported"] + done["blobs_present"] == 16 and len(done["revisions"]) == 2
    assert target.json("verify")["ok"] is True


def test_bundles_of_the_format_before_modelpack_still_import(source_mirror, target, tmp_path):
    """Before ModelPack, a manifest's config blob held the catalog rows and its layers were octet-streams."""
    bundle = tmp_path / "legacy"
    source_mirror.json("export", str(bundle), f"hf:{MINILM_REPO_ID}")
    blobs_dir = bundle / "blobs" / "sha256"
    index = json.loads((bundle / "index.json").read_text())
    manifest = json.loads((blobs_dir / index["manifests"][0]["digest"][7:]).read_text())
    catalog = next(layer for layer in manifest["layers"] if layer["mediaType"].startswith("application/vnd.hubmirror"))
    rows = (blobs_dir / catalog["digest"][7:]).read_bytes()
    (blobs_dir / hashlib.sha256(rows).hexdigest()).write_bytes(rows)
    manifest["config"] = {"mediaType": "application/vnd.hubmirror.model.config.v1+json",
                          "digest": catalog["digest"], "size": catalog["size"]}
    manifest["artifactType"] = "application/vnd.hubmirror.model.v1"
    manifest["layers"] = [{**layer, "mediaType": "application/octet-stream"} for layer in manifest["layers"]
                          if layer is not catalog]
    data = json.dumps(manifest).encode()
    (blobs_dir / hashlib.sha256(data).hexdigest()).write_bytes(data)
    index["manifests"][0].update(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))
    (bundle / "index.json").write_text(json.dumps(index))
    imported = target.json("import", str(bundle))
    assert imported["blobs_imported"] == 13 and len(imported["revisions"]) == 1
    assert target.json("verify")["ok"] is True


def test_an_index_listing_one_manifest_many_times_parses_it_once(source_mirror, target, tmp_path, monkeypatch):
    """A manifest bomb: index.json naming one manifest 20,000 times is one revision, read once; more distinct
    manifests than any bundle carries is refused before any is parsed."""
    from hubmirror.exchange import oci_layout

    bundle = tmp_path / "bomb"
    source_mirror.json("export", str(bundle), "hf:org/small")
    index = json.loads((bundle / "index.json").read_text())
    index["manifests"] = index["manifests"] * 20_000
    (bundle / "index.json").write_text(json.dumps(index))
    reads = []
    real = oci_layout.BundleReader.read_manifest
    monkeypatch.setattr(oci_layout.BundleReader, "read_manifest", lambda self, d: reads.append(d) or real(self, d))
    done = target.json("import", str(bundle))
    assert len(done["revisions"]) == 1 and len(reads) <= 2  # parsed for the revisions (and once for the blob list)
    entry = index["manifests"][0]
    index["manifests"] = [dict(entry, digest=f"sha256:{n:064x}") for n in range(oci_layout.MAX_INDEX_ENTRIES + 1)]
    (bundle / "index.json").write_text(json.dumps(index))
    reads.clear()
    result = target("import", str(bundle))
    assert result.exit_code == 1 and "more than" in result.output and reads == []
