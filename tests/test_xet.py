"""Xet end to end (hubmirror.xet): the Hub imitation stores LFS files in a CAS through the official client (hf_xet
makes its xorbs and shards), the official client downloads through it, and hubmirror pulls through it — every file
verified whole, a new revision moving only the chunks the mirror does not hold, a hostile CAS refused."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubmirror.errors import IntegrityError
from hubmirror.xet.format import BG4_LZ4, LZ4, NONE, iter_chunks, parse_chunks, ungroup4
from tests.conftest import Cli, noise
from tests.fakes.hf_hub import FakeHub
from tests.test_interrupted_pull import partial_bytes

MB = 1_000_000


@pytest.fixture
def xet_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_XET")
    with FakeHub(xet=True) as hub:
        yield hub


@pytest.fixture
def run(root, xet_hub):
    return Cli(root, xet_hub.url)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cdn_gets(hub: FakeHub) -> list[str]:
    return [r["path"] for r in hub.requests if r["path"].startswith("/repos/") and r["method"] == "GET"]


def xet_rows(root) -> int:
    db = sqlite3.connect(root / "catalog.db")
    try:
        return db.execute("SELECT count(*) FROM xet_chunks").fetchone()[0]
    finally:
        db.close()


CLIENT = """
import hashlib, json, sys, tempfile
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.utils import _xet
repo, name = sys.argv[1], sys.argv[2]
folder = snapshot_download(repo, cache_dir=tempfile.mkdtemp())
single = hf_hub_download(repo, name, cache_dir=tempfile.mkdtemp())
entry = next(e for e in HfApi().list_repo_tree(repo) if e.path == name)
print(json.dumps({"snapshot": hashlib.sha256(open(folder + "/" + name, "rb").read()).hexdigest(),
                  "single": hashlib.sha256(open(single, "rb").read()).hexdigest(), "xet_hash": entry.xet_hash}))
"""


def client_env(url: str) -> dict:
    return {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"} | {"HF_ENDPOINT": url}


def official_client(url: str, repo: str = "org/m", name: str = "weights.dat") -> dict:
    """What CLIENT (snapshot_download, hf_hub_download and list_repo_tree, Xet on) says of `name` of `repo` at
    `url`: the sha256 of both downloads and the tree's xetHash."""
    out = subprocess.run([sys.executable, "-c", CLIENT, repo, name], env=client_env(url), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_official_client_downloads_from_the_imitation_through_hf_xet(xet_hub):
    data = noise(6 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, "config.json": b"{}",
                                  ".gitattributes": b"*.dat filter=lfs diff=lfs merge=lfs -text\n"})
    answer = official_client(xet_hub.url)
    assert answer["snapshot"] == answer["single"] == sha256(data)
    file_hash = answer["xet_hash"]
    assert len(file_hash) == 64 and file_hash in xet_hub.cas.files  # made by hf_xet's own upload
    reconstructions = xet_hub.cas.calls(f"/v2/reconstructions/{file_hash}")
    assert len(reconstructions) == 2  # one per download, each followed by its xorb ranges
    assert xet_hub.cas.calls("/xorb/default/") and not cdn_gets(xet_hub)  # the bytes came through Xet, not resolve
    assert [r for r in xet_hub.requests if "/xet-read-token/" in r["path"]]
    assert xet_hub.cas.auth_violations == [] and xet_hub.refused == []


def test_a_resolve_of_a_xet_file_says_so_as_the_hub_does(xet_hub):
    import requests

    xet_hub.create_repo("org/m", {"weights.dat": noise(2 * MB), ".gitattributes": b"*.dat filter=lfs\n"})
    resp = requests.head(f"{xet_hub.url}/org/m/resolve/main/weights.dat", allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and len(resp.headers["X-Xet-Hash"]) == 64
    token_url = resp.links["xet-auth"]["url"]
    answer = requests.get(token_url, timeout=10)
    assert answer.json()["casUrl"] == answer.headers["X-Xet-Cas-Url"] == xet_hub.cas.url
    assert answer.json()["accessToken"] == answer.headers["X-Xet-Access-Token"]
    assert requests.get(resp.headers["Location"], timeout=10).status_code == 200  # the bridge serves plain clients


def test_a_pull_reads_xet_files_through_the_cas_and_records_their_chunks(xet_hub, run, root):
    data = noise(8 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, "config.json": b"{}",
                                  ".gitattributes": b"*.dat filter=lfs diff=lfs merge=lfs -text\n"})
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    assert (root / "blobs" / "sha256" / sha256(data)).read_bytes() == data
    assert not cdn_gets(xet_hub) and xet_hub.cas.calls("/v2/reconstructions/")
    assert xet_hub.cas.xorb_bytes_sent >= len(data) * 0.99
    file_hash = next(iter(xet_hub.cas.files))
    assert xet_rows(root) == sum(t.end - t.start for t in xet_hub.cas.files[file_hash].terms)
    assert run.json("verify")["ok"] is True


def test_xet_can_be_turned_off_as_for_the_official_client(xet_hub, run, root, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    data = noise(3 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
    assert run("pull", "hf:org/m").exit_code == 0
    assert cdn_gets(xet_hub) and not xet_hub.cas.calls("/v2/reconstructions/")
    assert (root / "blobs" / "sha256" / sha256(data)).read_bytes() == data


def test_a_new_revision_moves_only_the_chunks_the_mirror_does_not_hold(xet_hub, run, root):
    data = bytearray(noise(40 * MB))
    attrs = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
    repo = xet_hub.create_repo("org/m", {"weights.dat": bytes(data), ".gitattributes": attrs})
    assert run("pull", "hf:org/m").exit_code == 0
    data[20 * MB:20 * MB + 400_000] = os.urandom(400_000)  # 1 % of the file changes
    repo.commit({"weights.dat": bytes(data), ".gitattributes": attrs})
    xet_hub.cas.xorb_bytes_sent = 0
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    moved = xet_hub.cas.xorb_bytes_sent
    assert 400_000 <= moved < 0.03 * len(data), moved  # the changed chunks (and a neighbour), not the file
    assert (root / "blobs" / "sha256" / sha256(bytes(data))).read_bytes() == data
    assert run.json("verify")["ok"] is True


def test_a_false_chunk_place_costs_a_download_never_the_file(xet_hub, run, root):
    """The chunk index says where the mirror holds a xorb's chunks; a false place (an upstream's word about its own
    file's chunks, recorded once that file verified) makes a new revision that takes chunks from the store fail its
    sha256. The file is then read again with every chunk from the CAS, verifies, and its places replace the false
    ones: the next revision takes its chunks from the store again."""
    data = bytearray(noise(12 * MB))
    attrs = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
    decoy = noise(12 * MB + 1)
    repo = xet_hub.create_repo("org/m", {"weights.dat": bytes(data), ".gitattributes": attrs})
    xet_hub.create_repo("org/decoy", {"other.dat": decoy, ".gitattributes": attrs})
    assert run("pull", "hf:org/m").exit_code == 0 and run("pull", "hf:org/decoy").exit_code == 0
    db = sqlite3.connect(root / "catalog.db")
    with db:  # every chunk of the first revision now said to lie in the decoy's blob
        db.execute("UPDATE xet_chunks SET sha256 = ? WHERE sha256 = ?",
                   (bytes.fromhex(sha256(decoy)), bytes.fromhex(sha256(bytes(data)))))
    db.close()
    for step in (1, 2):
        data[step * MB:step * MB + 100_000] = os.urandom(100_000)
        repo.commit({"weights.dat": bytes(data), ".gitattributes": attrs})
        xet_hub.cas.xorb_bytes_sent = 0
        result = run("pull", "hf:org/m")
        assert result.exit_code == 0, result.output
        assert (root / "blobs" / "sha256" / sha256(bytes(data))).read_bytes() == data
        moved = xet_hub.cas.xorb_bytes_sent
        assert moved >= len(data) if step == 1 else moved < 0.1 * len(data), (step, moved)
    assert run.json("verify")["ok"] is True


def test_a_pull_killed_mid_transfer_resumes_from_the_bytes_it_holds(xet_hub, run, root):
    data = noise(6 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
    xet_hub.cas.faults.bytes_per_second = 2 * MB
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"}
    proc = subprocess.Popen([sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet", "pull", "hf:org/m",
                             "--endpoint", xet_hub.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while partial_bytes(root) < 1 * MB:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the pull never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    held = partial_bytes(root)
    assert 0 < held < len(data)
    xet_hub.cas.faults.bytes_per_second = None
    result = run("pull", "hf:org/m")
    assert result.exit_code == 0, result.output
    resumed = xet_hub.cas.calls("/v2/reconstructions/")[-1]["range"]
    assert int(resumed.split("=")[1].split("-")[0]) >= held - 256 * 1024  # asked from where the kill left it
    assert (root / "blobs" / "sha256" / sha256(data)).read_bytes() == data


def _outside(answer):
    for entries in answer["xorbs"].values():
        entries[0]["ranges"][0]["bytes"]["end"] += 10_000_000
    return answer


def _many_terms(answer):
    answer["terms"] = answer["terms"] * 200_000
    return answer


def _wrong_term_size(answer):
    answer["terms"][0]["unpacked_length"] += 1
    return answer


def _metadata_url(answer):
    for entries in answer["xorbs"].values():
        entries[0]["url"] = "http://169.254.169.254/latest/meta-data/"
    return answer


@pytest.mark.parametrize("fault, said", [
    ({"flip_xorb_byte": True}, "sha256"),
    ({"reconstruction": _outside}, "byte range that cannot hold its chunks"),
    ({"reconstruction": _many_terms}, "terms"),
    ({"reconstruction": _wrong_term_size}, "a term decodes to"),
    ({"reconstruction": _metadata_url}, "link-local"),
    ({"advertised_url": "http://169.254.169.254/"}, "link-local"),
    ({"advertised_url": "file:///etc/"}, "only http and https"),
], ids=["corrupt-chunk", "range-outside-xorb", "giant-term-list", "wrong-term-size", "url-to-metadata-service",
        "cas-at-the-metadata-service", "cas-at-a-file-url"])
def test_a_hostile_cas_answer_is_refused_and_nothing_is_kept(xet_hub, run, root, fault, said):
    data = noise(3 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
    for name, value in fault.items():
        setattr(xet_hub.cas.faults, name, value)
    started = time.monotonic()
    result = run("pull", "hf:org/m")
    assert result.exit_code != 0 and said in result.output, result.output
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (root / "blobs" / "sha256" / sha256(data)).exists()
    assert xet_rows(root) == 0


def test_chunks_decode_as_the_spec_says_and_malformed_ones_are_refused():
    import lz4.frame

    raw = os.urandom(1000) + bytes(3000)
    grouped = b"".join(raw[i::4] for i in range(4))
    assert ungroup4(grouped) == raw
    odd = raw[:1003]
    assert ungroup4(b"".join(odd[i::4] for i in range(4))) == odd

    def chunk(kind: int, stored: bytes, size: int) -> bytes:
        return bytes([0]) + len(stored).to_bytes(3, "little") + bytes([kind]) + size.to_bytes(3, "little") + stored

    xorb = chunk(NONE, raw, len(raw)) + chunk(LZ4, lz4.frame.compress(raw), len(raw)) + \
        chunk(BG4_LZ4, lz4.frame.compress(grouped), len(raw))
    assert parse_chunks(xorb, 3, "t") == [raw] * 3
    for bad in (chunk(LZ4, lz4.frame.compress(raw), len(raw) - 1),  # decodes to more than its header says
                chunk(NONE, raw, len(raw) + 1),  # stored bytes run past the data
                chunk(7, raw, len(raw)),  # an unknown compression
                chunk(LZ4, lz4.frame.compress(bytes(10 << 20))[:5000], 4096)):  # a bomb, cut short
        with pytest.raises(IntegrityError):
            parse_chunks(bad, 1, "t")
    with pytest.raises(IntegrityError):
        parse_chunks(xorb, 2, "t")  # bytes left over
    for size in (1, 3, 8, 1000, 4011, len(xorb) - 1):  # pieces of every size: headers and chunks cut anywhere
        pieces = [bytearray(xorb[i:i + size]) for i in range(0, len(xorb), size)] + [bytearray()]
        assert [bytes(data) for data in iter_chunks(iter(pieces), 3, "t")] == [raw] * 3
        with pytest.raises(IntegrityError):  # ends inside the last chunk, wherever the cut
            list(iter_chunks(iter([xorb[:len(xorb) - size]]), 3, "t"))
    whole = bytearray(xorb)
    first = next(iter_chunks(iter([whole]), 3, "t"))  # a chunk stored raw in one piece is a view of it, no copy
    assert bytes(first) == raw and memoryview(first).obj is whole


@pytest.fixture
def xet_mirror(xet_hub, run, root):
    """A mirror holding two repos pulled through Xet: org/m (weights.dat, 6 MB) and org/other."""
    attrs = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
    data = noise(6 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, "config.json": b"{}", ".gitattributes": attrs})
    xet_hub.create_repo("org/other", {"weights.dat": noise(2 * MB), ".gitattributes": attrs})
    for repo in ("org/m", "org/other"):
        assert run("pull", f"hf:{repo}").exit_code == 0
    return data


def test_serve_presents_xet_files_to_the_official_client_from_the_stored_blobs(xet_mirror, root):
    from tests.fakes.mirror_server import MirrorServer

    with MirrorServer(root) as server:
        answer = official_client(server.url)
        cas = server.app.state.view.xet_cas
        assert answer["snapshot"] == answer["single"] == sha256(xet_mirror)
        assert len(answer["xet_hash"]) == 64  # the upstream's Xet hash, in serve's tree
        assert cas.reconstructions == 2 and cas.ranges >= 2  # both downloads went through serve's CAS
    db = sqlite3.connect(root / "catalog.db")
    catalogued = {r[0] for r in db.execute("SELECT sha256 FROM files")}
    db.close()
    assert {p.name for p in (root / "blobs" / "sha256").iterdir()} == catalogued  # the files whole, no other copy


def test_an_upstream_claiming_another_files_xet_hash_never_makes_serve_hand_out_the_wrong_bytes(
        xet_hub, run, root, monkeypatch):
    """A Xet file hash names one content. An upstream repo that holds the bytes of one file of another repo (the
    decoy) and claims for them the Xet hash of a second file of it (the victim), its CAS answering that hash with the
    decoy's chunks, is believed by no one: when the victim arrives, the bytes decide (the official client's hasher)
    and the false holder loses the hash; serve, asked by the official client for the victim through Xet, answers
    with the victim's bytes, never the decoy's."""
    from tests.fakes.mirror_server import MirrorServer

    attrs = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
    one, two = noise(3 * MB), noise(3 * MB)  # one size: a client would not even notice the swap
    honest = xet_hub.create_repo("org/honest", {"one.dat": one, "two.dat": two, ".gitattributes": attrs})
    files = honest.commits[honest.branches["main"]]
    hashes = {name: xet_hub.xet_hash(honest, files[name]) for name in ("one.dat", "two.dat")}
    # the catalog looked a hash up in sha256 order: the decoy is the file whose blob sorts first
    decoy, victim = sorted(("one.dat", "two.dat"), key=lambda name: files[name].sha256)
    evil = xet_hub.create_repo("evil/x", {"w.dat": files[decoy].data, ".gitattributes": attrs})
    real_xet_hash = xet_hub.xet_hash
    monkeypatch.setattr(xet_hub, "xet_hash", lambda repo, f: hashes[victim] if repo is evil else real_xet_hash(repo, f))
    true_victim = xet_hub.cas.files[hashes[victim]]
    xet_hub.cas.files[hashes[victim]] = xet_hub.cas.files[hashes[decoy]]  # the lie, as the hostile CAS tells it
    assert run("pull", "hf:evil/x").exit_code == 0  # its bytes are what it says they are: admitted
    xet_hub.cas.files[hashes[victim]] = true_victim
    assert run("pull", "hf:org/honest").exit_code == 0
    with MirrorServer(root) as server:
        answer = official_client(server.url, "org/honest", victim)
        assert server.app.state.view.xet_cas.reconstructions == 2  # the false holder dropped: the victim has it
    assert answer["snapshot"] == answer["single"] == sha256(files[victim].data)
    assert answer["xet_hash"] == hashes[victim]


def test_a_quarantined_file_gets_no_reconstruction(xet_hub, run, root):
    import requests

    from tests.fakes.mirror_server import MirrorServer

    attrs = b"*.safetensors filter=lfs\n"
    xet_hub.create_repo("org/bad", {"model.safetensors": noise(2 * MB), ".gitattributes": attrs})
    assert "quarantined" in run("pull", "hf:org/bad").output
    with MirrorServer(root) as server:
        head = requests.head(f"{server.url}/org/bad/resolve/main/model.safetensors", timeout=10)
        # the tree still names its Xet hash (snapshot_download goes from there to the CAS, skipping the HEAD)
        tree = requests.get(f"{server.url}/api/models/org/bad/tree/main", timeout=10).json()
        file_hash = next(e["xetHash"] for e in tree if e["path"] == "model.safetensors")
        token = requests.get(f"{server.url}/api/models/org/bad/xet-read-token/main", timeout=10).json()
        answer = requests.get(f"{token['casUrl']}/v2/reconstructions/{file_hash}", timeout=10,
                              headers={"Authorization": f"Bearer {token['accessToken']}"})
    assert head.status_code == 403 and answer.status_code == 403


def test_serve_without_xet_answers_as_before(xet_mirror, root):
    import requests

    from tests.fakes.mirror_server import MirrorServer

    with MirrorServer(root, xet=False) as server:
        head = requests.head(f"{server.url}/org/m/resolve/main/weights.dat", timeout=10)
        tree = requests.get(f"{server.url}/api/models/org/m/tree/main", timeout=10).json()
        answer = official_client(server.url)
    assert "X-Xet-Hash" not in head.headers and not any("xetHash" in e for e in tree)
    assert answer["single"] == sha256(xet_mirror)


def test_serve_cas_tokens_and_urls_open_only_what_they_were_issued_for(xet_mirror, root):
    import requests

    from tests.fakes.mirror_server import MirrorServer

    with MirrorServer(root) as server:
        head = requests.head(f"{server.url}/org/m/resolve/main/weights.dat", timeout=10)
        file_hash = head.headers["X-Xet-Hash"]
        token = requests.get(head.links["xet-auth"]["url"], timeout=10).json()
        other_head = requests.head(f"{server.url}/org/other/resolve/main/weights.dat", timeout=10)
        other = requests.get(other_head.links["xet-auth"]["url"], timeout=10).json()
        url = f"{token['casUrl']}/v2/reconstructions/{file_hash}"
        answer = requests.get(url, headers={"Authorization": f"Bearer {token['accessToken']}"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["terms"]
        # another repo's token, a forged one, none: no reconstruction
        assert requests.get(url, headers={"Authorization": f"Bearer {other['accessToken']}"},
                            timeout=10).status_code == 404
        forged = token["accessToken"][:-4] + "0000"
        assert requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=10).status_code == 401
        assert requests.get(url, timeout=10).status_code == 401
        # a signed transfer URL serves its term; changed in any way, nothing
        fetch = next(iter(answer.json()["xorbs"].values()))[0]
        span = fetch["ranges"][0]
        whole = requests.get(fetch["url"], headers={"Range": f"bytes=0-{span['bytes']['end']}"}, timeout=10).content
        chunks = parse_chunks(whole, span["chunks"]["end"] - span["chunks"]["start"], "serve")
        assert b"".join(chunks) == xet_mirror[:sum(len(c) for c in chunks)]
        for first, last in ((0, 7), (5, 70_000), (len(whole) - 9, len(whole) - 1)):
            part = requests.get(fetch["url"], headers={"Range": f"bytes={first}-{last}"}, timeout=10)
            assert part.status_code == 206 and part.content == whole[first:last + 1]
        tampered = fetch["url"].replace("&t=0&", "&t=1&")
        assert requests.get(tampered, headers={"Range": "bytes=0-99"}, timeout=10).status_code == 403
        # the Hub's token route is behind the mirror's access control like every repo route
    with MirrorServer(root, token="operator-secret") as guarded:
        assert requests.get(f"{guarded.url}/api/models/org/m/xet-read-token/main", timeout=10).status_code == 401
        ok = requests.get(f"{guarded.url}/api/models/org/m/xet-read-token/main", timeout=10,
                          headers={"Authorization": "Bearer operator-secret"})
        assert ok.status_code == 200 and ok.headers["X-Xet-Access-Token"]


def test_a_new_revisions_reconstruction_names_the_chunks_the_mirror_already_held(xet_hub, run, root):
    import requests

    from tests.fakes.mirror_server import MirrorServer

    attrs = b"*.dat filter=lfs\n"
    data = bytearray(noise(20 * MB))
    repo = xet_hub.create_repo("org/m", {"weights.dat": bytes(data), ".gitattributes": attrs})
    first = repo.branches["main"]
    assert run("pull", f"hf:org/m@{first}").exit_code == 0
    data[10 * MB:10 * MB + 200_000] = os.urandom(200_000)
    repo.commit({"weights.dat": bytes(data), ".gitattributes": attrs})
    assert run("pull", "hf:org/m").exit_code == 0

    def terms(server, revision):
        head = requests.head(f"{server.url}/org/m/resolve/{revision}/weights.dat", timeout=10)
        token = requests.get(head.links["xet-auth"]["url"], timeout=10).json()
        answer = requests.get(f"{token['casUrl']}/v2/reconstructions/{head.headers['X-Xet-Hash']}", timeout=10,
                              headers={"Authorization": f"Bearer {token['accessToken']}"}).json()
        return answer["terms"]

    with MirrorServer(root) as server:
        old, new = terms(server, first), terms(server, "main")
    held = {(t["hash"], i) for t in old for i in range(t["range"]["start"], t["range"]["end"])}
    shared = sum(t["unpacked_length"] for t in new if all((t["hash"], i) in held
                                                         for i in range(t["range"]["start"], t["range"]["end"])))
    assert shared >= 0.95 * len(data)  # the new revision names the old chunks for all but the changed part


BIG_CLIENT = """
import hashlib, json, sys, tempfile
from huggingface_hub import constants, hf_hub_download
constants.MAX_HTTP_DOWNLOAD_SIZE = int(sys.argv[3])  # the client's 50 GB, lowered: CI has no 50 GB to move
try:
    path = hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=tempfile.mkdtemp())
    print(json.dumps({"sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}))
except ValueError as exc:
    print(json.dumps({"refused": str(exc)}))
"""


def test_a_file_over_the_clients_plain_http_limit_reaches_it_through_serves_xet(xet_mirror, root):
    """huggingface_hub refuses files over MAX_HTTP_DOWNLOAD_SIZE (50 GB) over plain HTTP; through Xet it takes them.
    The limit is lowered to 4 MB in the client for the test (a 50 GB transfer does not fit CI), not in serve."""
    from tests.fakes.mirror_server import MirrorServer

    answers = {}
    for xet in (True, False):
        with MirrorServer(root, xet=xet) as server:
            out = subprocess.run([sys.executable, "-c", BIG_CLIENT, "org/m", "weights.dat", str(4 * MB)],
                                 env=client_env(server.url), capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            answers[xet] = json.loads(out.stdout.strip().splitlines()[-1])
    assert answers[True] == {"sha256": sha256(xet_mirror)}
    assert "too large" in answers[False]["refused"]


def test_a_cold_proxy_in_front_of_a_xet_hub_serves_the_official_client_through_xet(xet_hub, root):
    from hubmirror.mirror import Mirror
    from tests.fakes.mirror_server import MirrorServer

    with Mirror.open(root, create=True):  # as `serve --upstream` starts one from nothing
        pass
    data = noise(5 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, "config.json": b"{}",
                                  ".gitattributes": b"*.dat filter=lfs diff=lfs merge=lfs -text\n"})
    with MirrorServer(root, upstream={"endpoint": xet_hub.url}) as proxy:
        answer = official_client(proxy.url)
        served_by_cas = proxy.app.state.view.xet_cas.reconstructions
    assert answer["snapshot"] == answer["single"] == sha256(data)
    assert xet_hub.cas.calls("/v2/reconstructions/") and not cdn_gets(xet_hub)  # the proxy pulled through Xet
    assert served_by_cas >= 1  # and served the client through its own CAS


EMBED_AND_CLI = """
import json, subprocess, sys
from pathlib import Path
from sentence_transformers import SentenceTransformer
from transformers import AutoModel
vector = SentenceTransformer(sys.argv[1], device="cpu").encode(["hubmirror keeps models offline"])[0][:8].tolist()
hidden = AutoModel.from_pretrained(sys.argv[1]).config.hidden_size
cli = subprocess.run([str(Path(sys.executable).parent / "hf"), "download", sys.argv[1], "model.safetensors",
                      "--cache-dir", sys.argv[2]], capture_output=True, text=True, check=True)
print(json.dumps({"vector": [round(x, 5) for x in vector], "hidden": hidden,
                  "cli": cli.stdout.strip().splitlines()[-1].split("path:")[-1].strip()}))
"""


def test_the_real_minilm_through_xet_into_the_mirror_and_out_to_the_official_clients(monkeypatch, minilm, root,
                                                                                      tmp_path):
    """sentence-transformers, transformers and the `hf` CLI load the real all-MiniLM-L6-v2 through Xet from the Hub
    imitation itself, from serve (after hubmirror pulled it through the imitation's CAS) and from a cold proxy in
    front of the imitation; the embeddings are those of the files themselves every time."""
    pytest.importorskip("sentence_transformers")
    from hubmirror.mirror import Mirror
    from tests.fakes.mirror_server import MirrorServer
    from tests.fakes.model_files import MINILM_REPO_ID

    def load(endpoint: str, name: str) -> dict:
        env = client_env(endpoint) | {"HF_HOME": str(tmp_path / name)}
        out = subprocess.run([sys.executable, "-c", EMBED_AND_CLI, MINILM_REPO_ID, str(tmp_path / f"cli-{name}")],
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert answer["hidden"] == 384 and Path(answer["cli"]).read_bytes() == minilm["model.safetensors"].read_bytes()
        return answer

    monkeypatch.delenv("HF_HUB_DISABLE_XET")
    answers = {}
    with FakeHub(xet=True) as hub:
        hub.create_repo(MINILM_REPO_ID, minilm)
        answers["imitation"] = load(hub.url, "imitation")
        assert len(hub.cas.calls("/v2/reconstructions/")) >= 2 and not cdn_gets(hub)  # the clients' own Xet path
        assert Cli(root, hub.url)("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
        with MirrorServer(root) as server:
            answers["serve"] = load(server.url, "serve")
            assert server.app.state.view.xet_cas.reconstructions >= 2  # the library loads and the CLI, through Xet
        with Mirror.open(tmp_path / "cold", create=True):
            pass
        with MirrorServer(tmp_path / "cold", upstream={"endpoint": hub.url}) as proxy:
            answers["proxy"] = load(proxy.url, "proxy")
            assert proxy.app.state.view.xet_cas.reconstructions >= 1
    direct = subprocess.run([sys.executable, "-c", EMBED_AND_CLI.split("hidden =")[0] + "print(json.dumps([round(x, 5) "
                             "for x in vector]))", str(minilm["config.json"].parent)],
                            env=client_env("http://127.0.0.1:9") | {"HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert direct.returncode == 0, direct.stderr[-2000:]
    expected = json.loads(direct.stdout.strip().splitlines()[-1])
    assert {name: a["vector"] for name, a in answers.items()} == dict.fromkeys(answers, expected)


def test_xet_bodies_from_a_store_without_local_files_are_checked_before_they_leave(monkeypatch, root):
    """A store others can write to (a bucket; here the local backend with its paths hidden): serve's Xet reads the
    blob through the store contract, hashed once per version before any range of it is sent."""
    import requests

    from tests.fakes.mirror_server import MirrorServer
    from tests.test_nonlocal_store import NonLocalStore, _use_store, blob_file

    _use_store(monkeypatch, NonLocalStore)
    monkeypatch.delenv("HF_HUB_DISABLE_XET")
    data = noise(3 * MB)
    with FakeHub() as hub:
        hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
        assert Cli(root, hub.url)("pull", "hf:org/m").exit_code == 0
    with MirrorServer(root) as server:
        answer = official_client(server.url)
        assert answer["single"] == sha256(data)
        assert server.app.state.view.xet_cas.reconstructions == 2
        head = requests.head(f"{server.url}/org/m/resolve/main/weights.dat", timeout=10)
        token = requests.get(head.links["xet-auth"]["url"], timeout=10).json()
        answer = requests.get(f"{token['casUrl']}/v2/reconstructions/{head.headers['X-Xet-Hash']}", timeout=10,
                              headers={"Authorization": f"Bearer {token['accessToken']}"}).json()
        url = next(iter(answer["xorbs"].values()))[0]["url"]
        path = blob_file(root, sha256(data))
        path.chmod(0o644)
        with open(path, "r+b") as f:  # another writer of the bucket changes the bytes (same size, new mtime)
            f.seek(len(data) - 10)
            f.write(b"\xff" * 10)
        os.utime(path, (time.time() + 5, time.time() + 5))
        changed = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
        assert changed.status_code == 502 and "does not match" in changed.headers["X-Error-Message"]


def test_a_layout_is_site_state_every_host_of_a_bucket_site_holds(monkeypatch, tmp_path):
    """Host a pulls through Xet; host b, sharing the bucket, learns the blob's Xet hash and layout from the site's
    log (and so serves it through Xet too) without fetching anything."""
    from hubmirror.plugin_manager import PluginRegistry
    from tests.fakes.s3 import moto_s3
    from tests.site_fixtures import BucketLocation, Catalog, LocalBlobStore, Mirror, S3Bucket, SiteLog, SiteWriter
    from tests.test_site_catalog import do_pull

    monkeypatch.delenv("HF_HUB_DISABLE_XET")
    registry = PluginRegistry(load_entry_points=False)
    data = noise(3 * MB)
    with moto_s3(monkeypatch) as bucket_url, FakeHub() as hub:
        hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
        store = LocalBlobStore(tmp_path / "shared-blobs")
        store.initialise()
        host = {}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            catalog = Catalog(tmp_path / name / "catalog.db")
            site = SiteLog(S3Bucket(BucketLocation.parse(bucket_url)), name)
            host[name] = Mirror(tmp_path / name, catalog, store, SiteWriter(catalog, store, site))
        try:
            do_pull(host["a"], registry, hub, "hf:org/m")
            assert hub.cas.calls("/v2/reconstructions/")
            assert host["b"].writer.refresh() >= 2  # the revision and the layout
            digest = sha256(data)
            assert host["b"].catalog.xet_hashes([digest]) == host["a"].catalog.xet_hashes([digest]) != {}
            assert host["b"].catalog.xet_layout(digest) == host["a"].catalog.xet_layout(digest)
        finally:
            for mirror in host.values():
                mirror.close()


def test_a_cas_without_v2_is_read_through_v1_and_a_refused_token_renewed_once(xet_hub, run, root):
    """As hf_xet: v1 (`fetch_info`) where the CAS answers v2 with 404, and a new token from the Hub after a 401."""
    data = noise(2 * MB)
    xet_hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": b"*.dat filter=lfs\n"})
    xet_hub.cas.faults.no_v2 = True
    xet_hub.cas.faults.refuse_tokens = 1
    assert run("pull", "hf:org/m").exit_code == 0
    assert (root / "blobs" / "sha256" / sha256(data)).read_bytes() == data
    assert xet_hub.cas.calls("/v1/reconstructions/") and xet_hub.cas.faults.refuse_tokens == 0
    assert len([r for r in xet_hub.requests if "/xet-read-token/" in r["path"]]) >= 2  # a renewal after the 401


def test_a_download_through_xet_is_in_the_audit_log_with_who_and_what(xet_mirror, root, tmp_path):
    """snapshot_download skips the resolve HEAD of a file whose tree entry has a xetHash: the read is audited at the
    reconstruction, under the principal the CAS token was issued to."""
    from hubmirror.access.audit import AuditLog
    from tests.fakes.mirror_server import MirrorServer

    audit = AuditLog(str(tmp_path / "audit.jsonl"))
    with MirrorServer(root, audit=audit) as server:
        official_client(server.url)
    audit.close()
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    reads = [line for line in lines if line.get("repo") == "org/m" and line.get("path") == "weights.dat"]
    # two reconstructions (GET), and hf_hub_download's resolve HEAD: snapshot_download's read has no HEAD
    reconstructions = [line for line in reads if line["method"] == "GET" and line["status"] == 200 and line.get("who")]
    assert len(reconstructions) == 2, lines
    assert len(reads[0]["revision"]) == 40


def test_a_person_who_may_not_read_a_repo_gets_no_cas_token_for_it(xet_mirror, run, root):
    """Per-person tokens (issue 24): the xet-read-token route answers a repo the token may not read as the Hub does
    (404 RepoNotFound), so no reconstruction of its files can be asked for."""
    import requests

    from tests.fakes.mirror_server import MirrorServer
    from tests.test_access import make_token

    alice = make_token(run, "alice", "--repos", "org/other")
    with MirrorServer(root) as server:
        def token_route(repo):
            return requests.get(f"{server.url}/api/models/{repo}/xet-read-token/main", timeout=10,
                                headers={"Authorization": f"Bearer {alice}"})

        denied, allowed = token_route("org/m"), token_route("org/other")
        assert denied.status_code == 404 and denied.headers["X-Error-Code"] == "RepoNotFound"
        assert "X-Xet-Access-Token" not in denied.headers
        assert allowed.status_code == 200 and allowed.headers["X-Xet-Access-Token"]


def test_a_mirror_pulls_through_another_mirrors_xet_and_serves_it_on(xet_mirror, root, tmp_path):
    """A site downstream of another: hubmirror pulls from an upstream `serve` through its Xet CAS (uncompressed
    chunks, a URL per term), verifies and indexes what it got, and presents it through Xet in turn."""
    from tests.fakes.mirror_server import MirrorServer

    downstream = tmp_path / "downstream"
    with MirrorServer(root) as upstream:
        assert Cli(downstream, upstream.url)("pull", "hf:org/m").exit_code == 0
        assert upstream.app.state.view.xet_cas.reconstructions >= 1
    assert (downstream / "blobs" / "sha256" / sha256(xet_mirror)).read_bytes() == xet_mirror
    with MirrorServer(downstream) as server:
        answer = official_client(server.url)
        assert answer["single"] == sha256(xet_mirror)
        assert server.app.state.view.xet_cas.reconstructions == 2


def test_a_catalog_holding_one_xet_hash_for_two_blobs_keeps_neither_once_migrated(tmp_path):
    """Rows an earlier version recorded that give one Xet hash to two blobs are dropped by migration m011 (neither
    claim can be told true from the catalog), the others kept; from then on a second claim is refused."""
    from sqlite_utils import Database, Migrations

    from hubmirror.catalog import Catalog
    from hubmirror.catalog.migrations import migrations

    path = tmp_path / "catalog.db"
    old = Migrations("hubmirror")
    old._migrations = migrations._migrations[:10]
    db = Database(path)
    old.apply(db)
    shared, own = "a" * 64, "b" * 64
    db["xet_files"].insert_all([{"sha256": "1" * 64, "xet_hash": shared, "layout": b"x"},
                                {"sha256": "2" * 64, "xet_hash": shared, "layout": b"y"},
                                {"sha256": "3" * 64, "xet_hash": own, "layout": b"z"}])
    db.execute("PRAGMA user_version = 10")
    db.close()
    catalog = Catalog(path)
    assert catalog.xet_file(shared) is None and catalog.xet_file(own) == ("3" * 64, b"z")
    assert catalog.put_xet_layout("4" * 64, shared, b"w") is True
    assert catalog.put_xet_layout("5" * 64, shared, b"v") is False  # the hash is held: refused, nothing written
    assert catalog.put_xet_layout("4" * 64, shared, b"u") is True  # its holder may record it again
    assert catalog.xet_file(shared) == ("4" * 64, b"u") and catalog.xet_hashes(["5" * 64]) == {}
    catalog.close()


def test_a_bundle_carries_xet_layouts_into_the_airgapped_site_that_serves_them_through_xet(xet_mirror, run, root,
                                                                                           tmp_path):
    """Exported revisions carry their files' Xet layouts; the import checks each (well formed, covering the blob,
    its Xet hash computed from the stored bytes by hf_xet) and records it, so the site behind the air gap serves the
    file to the official client through Xet, as the exporting one did."""
    from tests.fakes.mirror_server import MirrorServer

    bundle = tmp_path / "bundle"
    assert run.json("export", str(bundle), "hf:org/m")["manifests"] == 1
    airgapped = Cli(tmp_path / "airgapped")
    imported = airgapped.json("import", str(bundle))
    assert imported["xet_layouts"] == 1  # weights.dat; config.json and .gitattributes are not Xet files
    with MirrorServer(airgapped.root) as server:
        answer = official_client(server.url)
        assert server.app.state.view.xet_cas.reconstructions == 2
    assert answer["snapshot"] == answer["single"] == sha256(xet_mirror) and len(answer["xet_hash"]) == 64


def test_a_bundles_layouts_are_checked_and_recorded_in_a_store_without_local_files(xet_mirror, run, monkeypatch,
                                                                                   tmp_path):
    """A site whose blobs are not local files (a bucket; here the local backend with its paths hidden): each carried
    layout's Xet hash is computed from the blob as it streams from the store, so the import records it too."""
    from tests.fakes.mirror_server import MirrorServer
    from tests.test_nonlocal_store import NonLocalStore, _use_store

    bundle = tmp_path / "bundle"
    assert run.json("export", str(bundle), "hf:org/m")["manifests"] == 1
    _use_store(monkeypatch, NonLocalStore)
    airgapped = Cli(tmp_path / "airgapped")
    assert airgapped.json("import", str(bundle))["xet_layouts"] == 1
    assert sha256(xet_mirror) in NonLocalStore.opened  # hashed from the store's stream
    with MirrorServer(airgapped.root) as server:
        answer = official_client(server.url)
        assert server.app.state.view.xet_cas.reconstructions == 2
    assert answer["single"] == sha256(xet_mirror)


@pytest.mark.parametrize("lie", ["hash-of-other-bytes", "short-layout", "not-base64", "chunk-too-long"])
def test_a_layout_a_bundle_lies_about_is_not_recorded_and_the_file_is_imported_all_the_same(xet_mirror, run,
                                                                                             tmp_path, lie):
    import base64

    from hubmirror.exchange.modelpack import CATALOG_MT, canonical_json

    bundle = tmp_path / "bundle"
    run.json("export", str(bundle), "hf:org/m")
    index = json.loads((bundle / "index.json").read_text())
    manifest_path = bundle / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_bytes())
    layer = next(x for x in manifest["layers"] if x["mediaType"] == CATALOG_MT)
    rows = json.loads((bundle / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes())
    field = next(f for f in rows["files"] if f.get("xet"))["xet"]
    packed = base64.b64decode(field["layout"])
    field.update({"hash-of-other-bytes": {"hash": "ab" * 32},
                  "short-layout": {"layout": base64.b64encode(packed[:-4]).decode()},
                  "not-base64": {"layout": "%%%"},
                  "chunk-too-long": {"layout": base64.b64encode(packed[:36] + (1).to_bytes(4, "little")
                                                                 + (1 << 25).to_bytes(4, "little")).decode()}}[lie])
    data = canonical_json(rows)  # the altered rows, stored and named as the bundle's own
    digest = hashlib.sha256(data).hexdigest()
    (bundle / "blobs" / "sha256" / digest).write_bytes(data)
    layer.update({"digest": f"sha256:{digest}", "size": len(data)})
    manifest_data = canonical_json(manifest)
    manifest_digest = hashlib.sha256(manifest_data).hexdigest()
    (bundle / "blobs" / "sha256" / manifest_digest).write_bytes(manifest_data)
    index["manifests"][0].update({"digest": f"sha256:{manifest_digest}", "size": len(manifest_data)})
    (bundle / "index.json").write_text(json.dumps(index))
    airgapped = Cli(tmp_path / "airgapped")
    imported = airgapped.json("import", str(bundle))
    assert imported["xet_layouts"] == 0 and imported["blobs_imported"] == 3
    db = sqlite3.connect(airgapped.root / "catalog.db")
    assert db.execute("SELECT count(*) FROM xet_files").fetchone()[0] == 0
    db.close()
    assert airgapped.json("verify")["ok"] is True


def test_a_xet_file_whose_first_connection_is_cut_short_still_gets_its_layout(xet_hub, root):
    """The first connection of a new large file is cut at a piece boundary when it is too slow to carry the file
    alone (hubmirror.fetch.pieces); the chunks it read of the term it was in are noted all the same, so the file's
    layout covers it whole and serve presents it through Xet."""
    from hubmirror.mirror import Mirror
    from hubmirror.plugin_manager import PluginRegistry
    from hubmirror.pull import pull
    from hubmirror.sources import Connections
    from hubmirror.upstream import ModelRef

    data = noise(3 * MB)
    attrs = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
    xet_hub.create_repo("org/m", {"weights.dat": data, ".gitattributes": attrs})
    xet_hub.cas.faults.bytes_per_second = 4 * MB  # ~0.75 s on one connection: cut after 50 ms
    registry = PluginRegistry(load_entry_points=False)
    with Mirror.open(root, create=True) as mirror:
        ctx = mirror.source_context(registry, xet_hub.url)
        ctx.connections = Connections(per_file=4, threshold=1 << 20, piece_size=256 << 10, alone_within=0.1)
        pull(mirror, registry, ModelRef("hf", "org/m"), ctx)
        assert len(xet_hub.cas.calls("/v2/reconstructions/")) > 1  # cut: the rest came in pieces
        assert mirror.catalog.xet_hashes([sha256(data)]) and mirror.catalog.xet_layout(sha256(data)) is not None
