"""Models as ModelPack artifacts in a real OCI registry (Debian's docker-registry, the CNCF distribution registry):
push and pull round trips, blob skipping and cross-repository mounts, chunked uploads and Range pulls resumed, basic
and token auth with docker's credential files, interop with oras (PyPI), and hostile registry answers refused."""

import base64
import functools
import hashlib
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from tests.conftest import Cli, noise
from tests.fakes import registry as fake_registry
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID

pytestmark = pytest.mark.skipif(not fake_registry.available(),
                                reason="needs Debian's docker-registry (apt-get install docker-registry)")

LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
MODELPACK = "application/vnd.cncf.model.manifest.v1+json"


@pytest.fixture
def reg(tmp_path):
    with fake_registry.registry(tmp_path / "registry") as server:
        yield server


@pytest.fixture
def small(hub, run):
    """A mirror holding org/small: a 3 MB weight, a nested config, a README."""
    hub.create_repo("org/small", {".gitattributes": LFS, "w.bin": noise(3_000_000), "sub/config.json": b'{"a": 1}',
                                  "README.md": b"# small\n"})
    assert run("pull", "hf:org/small").exit_code == 0
    return run


@pytest.fixture
def target(tmp_path):
    return Cli(tmp_path / "airgapped")


def catalog_files(cli, ref):
    return [(f["path"], f["sha256"], f["git_sha1"], f["lfs"]) for f in cli.json("show", ref)["files"]]


def manifest(reg, repo, ref, accept="application/vnd.oci.image.manifest.v1+json"):
    resp = requests.get(reg.url(f"/v2/{repo}/manifests/{ref}"), headers={"Accept": accept}, timeout=10)
    resp.raise_for_status()
    return resp


EMBED = """
import sys, json
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
print(json.dumps(model.encode(["hubmirror keeps models offline"])[0][:8].tolist()))
"""


def test_round_trip_through_the_registry_serves_equal_embeddings(minilm_hub, run, target, reg, minilm, tmp_path):
    pytest.importorskip("sentence_transformers")
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    pushed = run.json("export", f"oci://{reg.host}/models/minilm:v1", f"hf:{MINILM_REPO_ID}", "--plain-http")
    assert pushed["blobs_written"] == 15 and pushed["tags"] == ["v1"]  # 13 files, config, catalog layer
    got = manifest(reg, "models/minilm", "v1").json()
    assert got["artifactType"] == MODELPACK
    assert got["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    by_path = {(layer.get("annotations") or {}).get("org.cncf.model.filepath"): layer["mediaType"]
               for layer in got["layers"]}
    assert by_path["model.safetensors"] == "application/vnd.cncf.model.weight.v1.raw"
    assert by_path["tokenizer.json"] == "application/vnd.cncf.model.weight.config.v1.raw"
    assert by_path["README.md"] == "application/vnd.cncf.model.doc.v1.raw"
    minilm_hub.stop()  # from here on the registry is the only source

    imported = target.json("import", f"oci://{reg.host}/models/minilm:v1", "--plain-http")
    assert imported["blobs_imported"] == 13 and imported["flagged"] == []
    assert target.json("verify")["ok"] is True
    assert catalog_files(target, f"hf:{MINILM_REPO_ID}") == catalog_files(run, f"hf:{MINILM_REPO_ID}")
    for field in ("commit", "task", "license", "description", "tags", "architecture"):
        assert target.json("show", f"hf:{MINILM_REPO_ID}")[field] == run.json("show", f"hf:{MINILM_REPO_ID}")[field]

    # a bundle of the imported revision is byte for byte the bundle of the original: the same manifests
    run.json("export", str(tmp_path / "before"), f"hf:{MINILM_REPO_ID}")
    target.json("export", str(tmp_path / "after"), f"hf:{MINILM_REPO_ID}")
    assert (tmp_path / "before" / "index.json").read_bytes() == (tmp_path / "after" / "index.json").read_bytes()
    entry = json.loads((tmp_path / "after" / "index.json").read_text())["manifests"][0]
    assert entry["digest"] == manifest(reg, "models/minilm", "v1").headers["Docker-Content-Digest"]

    with MirrorServer(target.root) as server:
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        served = subprocess.run([sys.executable, "-c", EMBED, MINILM_REPO_ID], capture_output=True, text=True,
                                env=env, timeout=300)
    assert served.returncode == 0, served.stderr[-2000:]
    direct = subprocess.run([sys.executable, "-c", EMBED, str(minilm["config.json"].parent)], capture_output=True,
                            text=True, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert served.stdout.strip().splitlines()[-1] == direct.stdout.strip().splitlines()[-1]


def test_present_blobs_are_skipped_and_other_repositories_mount_them(small, hub, reg, target):
    first = small.json("export", f"oci://{reg.host}/team/a:v1", "hf:org/small", "--plain-http")
    assert first["blobs_written"] == 6 and first["blobs_skipped"] == 0  # 4 files, config, catalog layer
    again = small.json("export", f"oci://{reg.host}/team/a:v2", "hf:org/small", "--plain-http")
    assert again["blobs_written"] == 0 and again["blobs_skipped"] == 6
    other = small.json("export", f"oci://{reg.host}/team/b", "hf:org/small", "--plain-http")
    assert other["blobs_mounted"] == 6 and other["blobs_written"] == 0 and other["tags"] == ["latest"]
    # several revisions: each under its own tag, an image index of them all under the tag asked for
    hub.create_repo("org/second", {"x.json": b"{}"})
    assert small("pull", "hf:org/second").exit_code == 0
    both = small.json("export", f"oci://{reg.host}/team/a:both", "hf:org/small", "hf:org/second", "--plain-http")
    assert both["tags"][0] == "both" and len(both["tags"]) == 3
    assert all(t.startswith(("org-small-", "org-second-")) for t in both["tags"][1:])
    index = manifest(reg, "team/a", "both", accept="application/vnd.oci.image.index.v1+json")
    assert index.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert len(target.json("import", f"oci://{reg.host}/team/a:both", "--plain-http")["revisions"]) == 2
    digest = manifest(reg, "team/b", "latest").headers["Docker-Content-Digest"]
    by_digest = target.json("import", f"oci://{reg.host}/team/b@{digest}", "--plain-http")
    assert by_digest["blobs_imported"] == 0 and by_digest["blobs_present"] == 4


def test_blobs_are_mounted_only_from_repositories_they_were_pushed_to(small, hub, reg):
    hub.create_repo("org/other", {"y.json": b'{"b": 2}'})
    assert small("pull", "hf:org/other").exit_code == 0
    with fake_registry.FaultyProxy(reg.host) as proxy:  # the registry's name is the proxy's: pushes go through it
        small.json("export", f"oci://{proxy.host}/team/a", "hf:org/small", "--plain-http")
        small.json("export", f"oci://{proxy.host}/team/c", "hf:org/other", "--plain-http")  # newest, none of small's
        before = len(proxy.log)
        copied = small.json("export", f"oci://{proxy.host}/team/b", "hf:org/small", "--plain-http")
    assert copied["blobs_mounted"] == 6 and copied["blobs_written"] == 0
    mounts = [path for method, path, _ in proxy.log[before:] if method == "POST"]
    assert len(mounts) == 6 and all("from=team/a" in path for path in mounts)  # one try each, none at team/c


def weight_sha(cli) -> str:
    return next(sha for path, sha, _, _ in catalog_files(cli, "hf:org/small") if path == "w.bin")


def _patches(proxy):
    return [path for method, path, _ in proxy.log if method == "PATCH"]


def test_chunked_upload_and_ranged_pull_resume_after_broken_connections(small, reg, target):
    with fake_registry.FaultyProxy(reg.host, break_patch=2) as proxy:  # the 2nd chunk never reaches the registry
        pushed = small.json("export", f"oci://{proxy.host}/models/small:v1", "hf:org/small", "--plain-http",
                            "--chunk-size", str(1 << 20))
        assert pushed["blobs_written"] == 6
        assert len(_patches(proxy)) == 4  # 3 MB in 1 MiB chunks, the broken one sent again...
        upload = _patches(proxy)[1].split("?")[0]
        assert any(m == "GET" and p.startswith(upload) for m, p, _ in proxy.log)  # ...after asking what arrived
        assert [m for m, p, _ in proxy.log if m == "POST"].count("POST") == 6  # in the same upload
    with fake_registry.FaultyProxy(reg.host, cut_blob_gets=6) as proxy:  # every blob's first GET cut half-way
        imported = target.json("import", f"oci://{proxy.host}/models/small:v1", "--plain-http")
        assert imported["blobs_imported"] == 4
        resumed = [path for method, path, ranged in proxy.log if method == "GET" and ranged]
        assert len(resumed) == 6 and f"/blobs/sha256:{weight_sha(small)}" in "".join(resumed)
    assert target.json("verify")["ok"] is True
    assert catalog_files(target, "hf:org/small") == catalog_files(small, "hf:org/small")


def test_an_upload_the_registry_gave_up_starts_again(small, reg):
    with fake_registry.FaultyProxy(reg.host, break_patch=2, lose_answer=True) as proxy:  # chunk 2 landed, answer lost
        pushed = small.json("export", f"oci://{proxy.host}/models/small:v1", "hf:org/small", "--plain-http",
                            "--chunk-size", str(1 << 20))
        assert pushed["blobs_written"] == 6
        assert len(_patches(proxy)) == 2 + 3  # distribution cancels an upload resumed at a stale offset: from 0
    assert requests.head(reg.url("/v2/models/small/manifests/v1"), timeout=10,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 200


def _auth_file(tmp_path, host, user, password) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    return path


def test_basic_auth_with_credentials_from_registry_auth_file(small, tmp_path, target):
    users = fake_registry.htpasswd(tmp_path / "htpasswd", {"alice": "wonderland-secret"})
    auth = {"htpasswd": {"realm": "hubmirror-test", "path": str(users)}}
    with fake_registry.registry(tmp_path / "basic", auth=auth) as reg:
        ref = f"oci://{reg.host}/private/small:v1"
        refused = small("export", ref, "hf:org/small", "--plain-http", env={"HOME": str(tmp_path / "nohome")})
        assert refused.exit_code == 1 and "access denied" in refused.output
        assert len(refused.output.strip().splitlines()) == 1
        (tmp_path / "w").mkdir()
        wrong = {"REGISTRY_AUTH_FILE": str(_auth_file(tmp_path / "w", reg.host, "alice", "not-her-password"))}
        denied = small("export", ref, "hf:org/small", "--plain-http", env=wrong)
        assert denied.exit_code == 1 and "not-her-password" not in denied.output
        env = {"REGISTRY_AUTH_FILE": str(_auth_file(tmp_path, reg.host, "alice", "wonderland-secret"))}
        pushed = small("export", ref, "hf:org/small", "--plain-http", "--json", env=env)
        assert pushed.exit_code == 0 and "wonderland" not in pushed.output
        assert requests.get(reg.url("/v2/private/small/manifests/v1"), timeout=10).status_code == 401
        assert target.json("import", ref, "--plain-http", env=env)["blobs_imported"] == 4


@pytest.mark.parametrize("chunk_size", [1 << 16, 1 << 20], ids=["chunked", "monolithic"])
def test_a_blob_refused_with_a_401_mid_upload_is_sent_again(tmp_path, monkeypatch, chunk_size):
    """Blob bodies are slices of the mapped file, not streams: when the Authorization held has gone stale (a 401 to
    the PATCH or PUT itself), the same bytes are sent again with the answer to the challenge."""
    from hubmirror.exchange.registry import RegistryClient
    from hubmirror.exchange.registry_target import parse_target

    users = fake_registry.htpasswd(tmp_path / "htpasswd", {"alice": "wonderland-secret"})
    with fake_registry.registry(tmp_path / "basic", auth={"htpasswd": {"realm": "t", "path": str(users)}}) as reg:
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(_auth_file(tmp_path, reg.host, "alice", "wonderland-secret")))
        client = RegistryClient(parse_target(f"oci://{reg.host}/private/blobs"), plain_http=True, push=True,
                                chunk_size=chunk_size)
        blob = tmp_path / "blob"
        blob.write_bytes(noise(200_000))
        digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
        location = client.start_upload()
        client.auth.header = None  # stale: the next request goes without credentials and is refused
        client.upload(digest, 200_000, functools.partial(blob.open, "rb"), location)
        stored = requests.get(reg.url(f"/v2/private/blobs/blobs/{digest}"), auth=("alice", "wonderland-secret"),
                              timeout=10)
        assert stored.status_code == 200 and stored.content == blob.read_bytes()


def test_token_auth_with_credentials_from_docker_config(small, tmp_path, target):
    with fake_registry.TokenServer(tmp_path / "token", {"bob": "builder-secret"}) as tokens, \
            fake_registry.registry(tmp_path / "tokenreg", auth=tokens.auth_config()) as reg:
        docker = tmp_path / "home" / ".docker"
        docker.mkdir(parents=True)
        _auth_file(docker, reg.host, "bob", "builder-secret").rename(docker / "config.json")
        env = {"HOME": str(tmp_path / "home")}
        ref = f"oci://{reg.host}/models/small:v1"
        assert small.json("export", ref, "hf:org/small", "--plain-http", env=env)["blobs_written"] == 6
        assert any("repository:models/small:pull,push" in r["scopes"] and r["authorized"] for r in tokens.requests)
        copied = small.json("export", f"oci://{reg.host}/models/copy", "hf:org/small", "--plain-http", env=env)
        assert copied["blobs_mounted"] == 6  # the token asked for pull on the repository mounted from
        assert any("repository:models/small:pull" in r["scopes"] for r in tokens.requests[-3:])
        assert target.json("import", ref, "--plain-http", env=env)["blobs_imported"] == 4
        anonymous = small("export", f"oci://{reg.host}/models/x", "hf:org/small", "--plain-http",
                          env={"HOME": str(tmp_path / "nohome")})
        assert anonymous.exit_code == 1 and "access denied" in anonymous.output


def test_oras_reads_what_hubmirror_pushes(small, reg, tmp_path):
    oras = pytest.importorskip("oras.client")
    small.json("export", f"oci://{reg.host}/models/small:v1", "hf:org/small", "--plain-http")
    client = oras.OrasClient(hostname=reg.host, insecure=True)
    out = tmp_path / "oras-out"
    client.pull(target=f"{reg.host}/models/small:v1", outdir=str(out))
    stored = small.root / "blobs" / "sha256"
    for path, sha, _, _ in catalog_files(small, "hf:org/small"):
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == sha
        assert (stored / sha).read_bytes() == (out / path).read_bytes()


def test_hubmirror_imports_and_scans_a_modelpack_artifact_pushed_by_oras(reg, tmp_path, target, monkeypatch):
    oras = pytest.importorskip("oras.client")
    work = tmp_path / "model"
    (work / "weights").mkdir(parents=True)
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save

    (work / "weights" / "model.safetensors").write_bytes(save({"w": np.arange(12_500, dtype=np.float32)}))
    (work / "config.json").write_text('{"model_type": "bert"}')
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    (work / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    config = {"descriptor": {"name": "tiny", "licenses": ["apache-2.0"], "description": "a tiny packed model"},
              "config": {"format": "safetensors"}, "modelfs": {"type": "layers", "diffIds": []}}
    (work / "modelpack.json").write_text(json.dumps(config))
    files = {"weights/model.safetensors": "application/vnd.cncf.model.weight.v1.raw",
             "config.json": "application/vnd.cncf.model.weight.config.v1.raw",
             "evil.pkl": "application/vnd.cncf.model.weight.v1.raw"}
    (work / "annotations.json").write_text(json.dumps({p: {"org.cncf.model.filepath": p} for p in files}))
    monkeypatch.chdir(work)
    client = oras.OrasClient(hostname=reg.host, insecure=True)
    client.push(target=f"{reg.host}/packed/tiny:v1", files=[f"{p}:{mt}" for p, mt in files.items()],
                manifest_config="modelpack.json:application/vnd.cncf.model.config.v1+json",
                annotation_file="annotations.json")
    result = target("import", f"oci://{reg.host}/packed/tiny:v1", "--plain-http")
    assert result.exit_code == 1 and "quarantined" in result.output and "evil.pkl" in result.output
    key = f"oci:{reg.host}/packed/tiny"  # a model no hubmirror catalogued: named by where it came from
    listed = {m["key"]: m for m in target.json("list")}
    assert key in listed
    hits = target.json("search", "tiny packed model")
    assert hits and hits[0]["key"] == key and hits[0]["license"] == "apache-2.0"
    stored = {p.name for p in (target.root / "blobs" / "sha256").iterdir()}
    for path in files:
        assert hashlib.sha256((work / path).read_bytes()).hexdigest() in stored
    _imported_artifacts_are_first_class(target, reg, key, work, tmp_path)


def _imported_artifacts_are_first_class(target, reg, key, work, tmp_path):
    """show, verify, export (bundle and registry), serve and rm name a model imported as `oci:HOST/REPO`."""
    shown = target.json("show", key)
    assert [r["name"] for r in shown["refs"]] == ["v1"]
    assert target.json("show", f"{key}@v1")["commit"] == shown["commit"]
    assert {f["path"] for f in shown["files"]} == {"weights/model.safetensors", "config.json", "evil.pkl"}
    verified = target.json("verify", key)
    assert verified["ok"] is True and verified["blobs"] == 3
    bundle = target.json("export", str(tmp_path / "tiny-bundle"), f"{key}@v1")
    assert bundle["manifests"] == 1 and bundle["quarantined"] == [f"{key}@{shown['commit']}:evil.pkl"]
    assert target.json("export", f"oci://{reg.host}/packed/copy:v1", key, "--plain-http")["tags"] == ["v1"]
    third = Cli(tmp_path / "third")
    assert third.json("import", str(tmp_path / "tiny-bundle"))["blobs_imported"] == 2
    assert third.json("import", f"oci://{reg.host}/packed/copy:v1", "--plain-http")["blobs_present"] == 2
    assert third.json("show", key)["commit"] == shown["commit"]  # the catalog layer keeps its name and commit
    from huggingface_hub import hf_hub_download

    with MirrorServer(target.root) as server:
        served = hf_hub_download("packed/tiny", "weights/model.safetensors", endpoint=server.url,
                                 cache_dir=str(tmp_path / "hf-cache"))
    assert Path(served).read_bytes() == (work / "weights" / "model.safetensors").read_bytes()
    pulled = target("pull", key)
    assert pulled.exit_code == 2 and f"hubmirror import oci://{reg.host}/packed/tiny" in pulled.output
    for bad in (f"oci:{reg.host}/packed/tiny:v1", "oci:host/UPPER", "oci:no-repository"):
        assert target("show", bad).exit_code == 2
    assert target("rm", key).exit_code == 0 and key not in {m["key"] for m in target.json("list")}


def _corrupt_blob(reg, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    blob = reg.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / digest[:2] / digest / "data"
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 1
    blob.write_bytes(bytes(raw))


def test_a_layer_whose_bytes_do_not_match_its_digest_imports_nothing(small, reg, target):
    small.json("export", f"oci://{reg.host}/models/small:v1", "hf:org/small", "--plain-http")
    largest = max((small.root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    _corrupt_blob(reg, largest.read_bytes())
    result = target("import", f"oci://{reg.host}/models/small:v1", "--plain-http")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert target.json("list") == []
    assert largest.name not in {p.name for p in (target.root / "blobs" / "sha256").iterdir()}


def _push_manifest(reg, repo, tag, manifest_doc, blobs) -> None:
    for data in blobs:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        start = requests.post(reg.url(f"/v2/{repo}/blobs/uploads/"), timeout=10)
        requests.put(requests.compat.urljoin(reg.url(), start.headers["Location"]) + f"&digest={digest}",
                     data=data, timeout=10).raise_for_status()
    requests.put(reg.url(f"/v2/{repo}/manifests/{tag}"), data=json.dumps(manifest_doc),
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=10).raise_for_status()


def _desc(media_type, data, **annotations):
    out = {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(data).hexdigest()}", "size": len(data)}
    return {**out, "annotations": annotations} if annotations else out


@pytest.mark.parametrize("hostile", ["dotdot", "absolute", "tar-layer", "image-config"])
def test_hostile_manifests_in_a_real_registry_are_refused(reg, target, tmp_path, hostile):
    payload, config = noise(1000), b'{"descriptor": {"name": "x"}, "modelfs": {"type": "layers", "diffIds": []}}'
    path = {"dotdot": "../../escape.bin", "absolute": "/etc/escape.bin"}.get(hostile, "ok.bin")
    layer_type = "application/vnd.oci.image.layer.v1.tar" if hostile == "tar-layer" else \
        "application/vnd.cncf.model.weight.v1.raw"
    config_type = "application/vnd.oci.image.config.v1+json" if hostile == "image-config" else \
        "application/vnd.cncf.model.config.v1+json"
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": _desc(config_type, config),
           "layers": [_desc(layer_type, payload, **{"org.cncf.model.filepath": path})]}
    _push_manifest(reg, "evil/model", "v1", doc, [payload, config])
    result = target("import", f"oci://{reg.host}/evil/model:v1", "--plain-http")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert target.json("list") == []
    assert not (target.root / "blobs" / "sha256" / hashlib.sha256(payload).hexdigest()).exists()
    assert not (tmp_path / "escape.bin").exists()


class _Hostile(BaseHTTPRequestHandler):
    """A registry that answers every manifest with what `answer` holds (status, content type, body)."""

    answer: tuple[int, str, bytes] = (200, "", b"")

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/v2/":
            status, ctype, body = 200, "application/json", b"{}"
        else:
            status, ctype, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the client stopped reading, as it should with an oversized manifest


@pytest.mark.parametrize("answer", ["oversized", "docker-v2", "digest-mismatch"])
def test_hostile_registry_answers_are_refused(target, answer):
    big = json.dumps({"schemaVersion": 2, "layers": [], "pad": "x" * (5 << 20)}).encode()
    small_doc = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    answers = {"oversized": (200, "application/vnd.oci.image.manifest.v1+json", big),
               "docker-v2": (200, "application/vnd.docker.distribution.manifest.v2+json", small_doc),
               "digest-mismatch": (200, "application/vnd.oci.image.manifest.v1+json", small_doc)}
    handler = type("Handler", (_Hostile,), {"answer": answers[answer]})
    with fake_registry.LoopbackServer(handler) as server:
        ref = f"oci://{server.host}/evil/model" + ("@sha256:" + "0" * 64 if answer == "digest-mismatch" else ":v1")
        result = target("import", ref, "--plain-http")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert {"oversized": "larger than", "docker-v2": "not an OCI image manifest",
            "digest-mismatch": "do not match"}[answer] in result.output
    assert not (target.root / "catalog.db").exists() or target.json("list") == []


def test_malformed_targets_are_usage_errors(small):
    for bad in ("oci://", "oci://host", "oci://host/UPPER", "oci://host/repo:bad tag", "oci://host/repo@sha256:xyz"):
        result = small("export", bad, "hf:org/small")
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, (bad, result.output)


# -- signed artifacts (OCI 1.1 referrers; distribution 2.8 has no referrers API: the referrers tag schema) ------------

SIGNATURE_TYPE = "application/vnd.hubmirror.signature.v1+json"


@pytest.fixture
def keys(small, tmp_path):
    """Two key pairs: `trusted` (pinned in the target mirror's config.toml by the `pinned` fixture) and `other`."""
    for name in ("trusted", "other"):
        assert small("keygen", str(tmp_path / name)).exit_code == 0
    return {name: tmp_path / name / "hubmirror-signing.key" for name in ("trusted", "other")}


@pytest.fixture
def pinned(target, keys):
    target.root.mkdir()
    public = keys["trusted"].with_suffix(".pub").read_text().strip()
    (target.root / "config.toml").write_text(f'[import]\ntrusted_keys = ["{public}"]\n')
    return target


def _nothing_imported(cli) -> None:
    assert cli.json("list") == []
    blobs = cli.root / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())


def _refused(cli, ref, why) -> None:
    result = cli("import", ref, "--plain-http")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert why in result.output, result.output
    _nothing_imported(cli)


def test_signed_artifacts_import_into_a_mirror_that_pins_keys(small, hub, reg, pinned, keys):
    ref = f"oci://{reg.host}/models/small:v1"
    assert small.json("export", ref, "hf:org/small", "--plain-http", "--sign", str(keys["trusted"]))["signed"]
    digest = manifest(reg, "models/small", "v1").headers["Docker-Content-Digest"]
    # distribution 2.8 has no referrers API, so the signature is listed under the referrers tag sha256-<hex>
    assert requests.get(reg.url(f"/v2/models/small/referrers/{digest}"), timeout=10).status_code == 404
    listed = manifest(reg, "models/small", digest.replace(":", "-"),
                      accept="application/vnd.oci.image.index.v1+json").json()["manifests"]
    assert [entry["artifactType"] for entry in listed] == [SIGNATURE_TYPE]
    signature = manifest(reg, "models/small", listed[0]["digest"]).json()
    assert signature["subject"]["digest"] == digest and signature["artifactType"] == SIGNATURE_TYPE
    imported = pinned.json("import", ref, "--plain-http")
    assert imported["signed_by"] == keys["trusted"].with_suffix(".pub").read_text().strip()
    assert imported["blobs_imported"] == 4 and pinned.json("verify")["ok"] is True
    # several revisions: the image index is what is signed; signing again adds a referrer beside the first
    hub.create_repo("org/second", {"x.json": b"{}"})
    assert small("pull", "hf:org/second").exit_code == 0
    both = f"oci://{reg.host}/models/small:both"
    small.json("export", both, "hf:org/small", "hf:org/second", "--plain-http", "--sign", str(keys["other"]))
    tags = small.json("export", both, "hf:org/small", "hf:org/second", "--plain-http", "--sign",
                      str(keys["trusted"]))["tags"]
    index_digest = manifest(reg, "models/small", "both", accept="application/vnd.oci.image.index.v1+json") \
        .headers["Docker-Content-Digest"]
    assert len(manifest(reg, "models/small", index_digest.replace(":", "-"),
                        accept="application/vnd.oci.image.index.v1+json").json()["manifests"]) == 2
    assert len(pinned.json("import", both, "--plain-http")["revisions"]) == 2
    # each revision's own tag is signed too
    assert pinned.json("import", f"oci://{reg.host}/models/small:{tags[2]}", "--plain-http")["signed_by"]


def test_the_referrers_tag_follows_the_spec():
    from hubmirror.exchange.registry_referrers import referrers_tag

    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers_tag("sha512:" + "b" * 128) == "sha512-" + "b" * 64
    assert referrers_tag("test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+"
                         "truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharacters"
                         "ToExcerciseEncodedTruncation") == \
        "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"


def test_unsigned_and_untrusted_artifacts_are_refused_whole(small, reg, pinned, keys):
    small.json("export", f"oci://{reg.host}/models/small:plain", "hf:org/small", "--plain-http")
    _refused(pinned, f"oci://{reg.host}/models/small:plain", "is not signed")
    small.json("export", f"oci://{reg.host}/models/small:forged", "hf:org/small", "--plain-http",
               "--sign", str(keys["other"]))
    _refused(pinned, f"oci://{reg.host}/models/small:forged", "does not verify")
    bad_key = pinned.root / "not-a-key"
    bad_key.write_text("garbage")
    result = small("export", f"oci://{reg.host}/models/small:bad", "hf:org/small", "--plain-http",
                   "--sign", str(bad_key))
    assert result.exit_code == 2 and "cannot read the signing key" in result.output
    assert requests.head(reg.url("/v2/models/small/manifests/bad"), timeout=10).status_code == 404


def test_a_manifest_swapped_after_signing_is_refused(small, reg, pinned, keys):
    ref = f"oci://{reg.host}/models/small:v1"
    small.json("export", ref, "hf:org/small", "--plain-http", "--sign", str(keys["trusted"]))
    original = manifest(reg, "models/small", "v1")
    signed_digest = original.headers["Docker-Content-Digest"]
    # the tag moved to a manifest whose weight layer is another blob (the catalog layer edited to match it)
    doc = original.json()
    weight = next(layer for layer in doc["layers"] if layer["annotations"]["org.cncf.model.filepath"] == "w.bin")
    payload = noise(3_000_000)[::-1]
    catalog_layer = doc["layers"][-1]
    rows = json.loads(requests.get(reg.url(f"/v2/models/small/blobs/{catalog_layer['digest']}"), timeout=10).content)
    for row in rows["files"]:
        if row["path"] == "w.bin":
            row["sha256"] = hashlib.sha256(payload).hexdigest()
            row["upstream_digests"] = {"sha256": row["sha256"]}
            row["git_sha1"] = None
    rows_bytes = json.dumps(rows).encode()
    weight.update(_desc(weight["mediaType"], payload))
    doc["layers"][-1] = _desc(catalog_layer["mediaType"], rows_bytes)
    _push_manifest(reg, "models/small", "v1", doc, [payload, rows_bytes])
    _refused(pinned, ref, "is not signed")
    # ...and the signature artifact copied onto the swapped manifest: it signs other bytes
    swapped = manifest(reg, "models/small", "v1")
    signature_entry = manifest(reg, "models/small", signed_digest.replace(":", "-"),
                               accept="application/vnd.oci.image.index.v1+json").json()["manifests"][0]
    signature = manifest(reg, "models/small", signature_entry["digest"]).json()
    signature["subject"] = _desc("application/vnd.oci.image.manifest.v1+json", swapped.content)
    _push_manifest(reg, "models/small", "copied", signature, [])
    copied = manifest(reg, "models/small", "copied")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**_desc("application/vnd.oci.image.manifest.v1+json", copied.content),
                            "artifactType": SIGNATURE_TYPE}]}
    requests.put(reg.url(f"/v2/models/small/manifests/{swapped.headers['Docker-Content-Digest'].replace(':', '-')}"),
                 data=json.dumps(index), timeout=10,
                 headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}).raise_for_status()
    _refused(pinned, ref, "does not verify")
    assert pinned.json("import", f"oci://{reg.host}/models/small@{signed_digest}", "--plain-http")["signed_by"]


def test_a_registry_with_the_referrers_api_keeps_the_signature_list_itself(small, reg, pinned, keys):
    with fake_registry.FaultyProxy(reg.host, referrers_api=True) as proxy:
        ref = f"oci://{proxy.host}/models/small:v1"
        assert small.json("export", ref, "hf:org/small", "--plain-http", "--sign", str(keys["trusted"]))["signed"]
        digest = manifest(reg, "models/small", "v1").headers["Docker-Content-Digest"]
        assert len(proxy.referrers[("models/small", digest)]) == 1
        assert not any(method == "PUT" and "/manifests/sha256-" in path for method, path, _ in proxy.log)
        assert pinned.json("import", ref, "--plain-http")["signed_by"]
        assert any(method == "GET" and path.startswith(f"/v2/models/small/referrers/{digest}?artifactType=")
                   for method, path, _ in proxy.log)
        assert not any("/manifests/sha256-" in path for _, path, _ in proxy.log)  # the tag schema was never needed
