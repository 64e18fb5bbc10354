"""The official client's read calls (huggingface_hub `HfApi` and `HfFileSystem`) against the Hub imitation, against
`serve` of a mirror that pulled the same repos, and against a cold `serve --upstream` in front of the imitation:
each answer, as the client parses it, compared with the imitation's. Prints one line per call and the count of
calls answered as the Hub answers them (target: all, on both). Loopback only, no GPU.

Where the mirror cannot know what the Hub knows, the comparison says so and checks what it can: `list_repo_commits`
on `serve` lists the revisions the mirror holds (a subset of the upstream's, same ids and dates); `downloads` and
`likes` are the upstream's at pull time (the same here).

    python benchmarks/client_battery.py
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import huggingface_hub as hf  # noqa: E402
from common import VENV_BIN  # noqa: E402

from hubmirror.mirror import Mirror  # noqa: E402
from tests.fakes.hf_hub import FakeHub  # noqa: E402
from tests.fakes.mirror_server import MirrorServer  # noqa: E402

MODEL, DATASET = "org/battery", "org/battery-data"
CARD = b"---\nlicense: mit\npipeline_tag: text-classification\nlibrary_name: transformers\ntags:\n- en\n---\n# B\n"
LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


def hub_with_repos(hub: FakeHub) -> None:
    repo = hub.create_repo(MODEL, {".gitattributes": LFS, "README.md": CARD, "config.json": b'{"v": 1}',
                                   "d/a.txt": b"a", "d/e/b.txt": b"b", "weights.bin": os.urandom(200_000)})
    repo.tags["v1"] = repo.branches["main"]
    repo.commit({".gitattributes": LFS, "README.md": CARD, "config.json": b'{"v": 2}', "d/a.txt": b"a",
                 "d/e/b.txt": b"b", "weights.bin": os.urandom(200_000)}, title="second")
    repo.commit({"README.md": CARD, "config.json": b'{"dev": 1}'}, branch="dev", title="dev")
    repo.commit({"README.md": CARD, "config.json": b'{"pr": 1}'}, branch="refs/pr/1", title="pr")
    hub.create_repo(DATASET, {"README.md": b"---\nlicense: cc-by-4.0\n---\n# D\n", "data/train.csv": b"x,y\n1,2\n"},
                    repo_type="dataset")


def plain(value):
    """A client object as plain data (dataclasses and card data as dicts, datetimes as text)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def calls(endpoint: str) -> dict:
    """{call: callable giving the client's parsed answer} against `endpoint`."""
    api, fs = hf.HfApi(endpoint=endpoint), hf.HfFileSystem(endpoint=endpoint, skip_instance_cache=True)
    tree = lambda **kw: sorted(plain(list(api.list_repo_tree(MODEL, **kw))), key=lambda e: e["path"])  # noqa: E731
    return {
        "model_info": lambda: plain(api.model_info(MODEL)),
        "model_info(revision=v1)": lambda: plain(api.model_info(MODEL, revision="v1")),
        "model_info(files_metadata)": lambda: plain(api.model_info(MODEL, files_metadata=True)),
        "list_repo_refs(include_pull_requests)": lambda: plain(api.list_repo_refs(MODEL, include_pull_requests=True)),
        "list_repo_tree(recursive)": lambda: tree(recursive=True),
        "list_repo_tree(path_in_repo=d)": lambda: tree(path_in_repo="d"),
        "get_paths_info": lambda: sorted(plain(api.get_paths_info(MODEL, ["d", "config.json", "nope"])),
                                         key=lambda e: e["path"]),
        "list_repo_commits": lambda: plain(api.list_repo_commits(MODEL)),
        "list_repo_commits(revision=dev)": lambda: plain(api.list_repo_commits(MODEL, revision="dev")),
        "list_models(author)": lambda: sorted(m.id for m in api.list_models(author="org")),
        "list_models(search)": lambda: sorted(m.id for m in api.list_models(search="battery")),
        "list_models(filter=license:mit)": lambda: sorted(m.id for m in api.list_models(filter="license:mit")),
        "file_exists / repo_exists / revision_exists": lambda: [
            api.file_exists(MODEL, "d/a.txt"), api.file_exists(MODEL, "nope"), api.repo_exists(MODEL),
            api.repo_exists("org/none"), api.revision_exists(MODEL, "dev"), api.revision_exists(MODEL, "nope")],
        "hf_hub_download": lambda: Path(hf.hf_hub_download(MODEL, "weights.bin", endpoint=endpoint,
                                                           cache_dir=tempfile.mkdtemp())).read_bytes(),
        "HfFileSystem.ls(detail)": lambda: sorted(plain(fs.ls(f"{MODEL}/d", detail=True)), key=lambda e: e["name"]),
        "HfFileSystem.info": lambda: plain(fs.info(f"{MODEL}/config.json")),
        "dataset_info": lambda: plain(api.dataset_info(DATASET)),
        "list_datasets(author)": lambda: sorted(d.id for d in api.list_datasets(author="org")),
        "list_repo_tree(dataset)": lambda: sorted(plain(list(api.list_repo_tree(DATASET, repo_type="dataset",
                                                                                recursive=True))),
                                                  key=lambda e: e["path"]),
    }


def answer(fn):
    try:
        return fn()
    except Exception as exc:  # the client's exception is the answer
        return f"raised {type(exc).__name__}"


def compare(name: str, hub, ours, holds_history: bool) -> str:
    """'same', or what differs (a commits listing of `serve` need only be the upstream's, cut to what it holds)."""
    if name.startswith("list_repo_commits") and holds_history and isinstance(ours, list) and isinstance(hub, list):
        by_id = {c["commit_id"]: c for c in hub}
        known = [{**c, "title": by_id.get(c["commit_id"], {}).get("title"),
                  "message": by_id.get(c["commit_id"], {}).get("message"),
                  "authors": by_id.get(c["commit_id"], {}).get("authors")} for c in ours]
        return "same (the revisions it holds)" if known and all(c == by_id.get(c["commit_id"]) for c in known) \
            else f"differs: {ours!r:.300}"
    if hub == ours:
        return "same"
    if isinstance(hub, dict) and isinstance(ours, dict):
        keys = sorted(k for k in hub.keys() | ours.keys() if hub.get(k) != ours.get(k))
        return "differs in " + ", ".join(f"{k} ({hub.get(k)!r:.60} vs {ours.get(k)!r:.60})" for k in keys)
    return f"differs: {hub!r:.150} vs {ours!r:.150}"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hubmirror-battery-"))
    try:
        with FakeHub(xet=False) as hub:
            hub_with_repos(hub)
            served, cold = work / "served", work / "cold"
            for spec in (MODEL, f"{MODEL}@v1", f"{MODEL}@dev", f"{MODEL}@refs/pr/1", f"datasets/{DATASET}"):
                subprocess.run([str(VENV_BIN / "hubmirror"), "--root", str(served), "--quiet", "pull", f"hf:{spec}",
                                "--endpoint", hub.url], check=True)
            Mirror.open(cold, create=True).close()
            reference = {name: answer(fn) for name, fn in calls(hub.url).items()}
            results = {}
            with MirrorServer(served) as server:
                results["serve"] = {name: answer(fn) for name, fn in calls(server.url).items()}
            with MirrorServer(cold, upstream={"endpoint": hub.url}) as proxy:
                results["proxy"] = {name: answer(fn) for name, fn in calls(proxy.url).items()}
        same = {kind: 0 for kind in results}
        for name in reference:
            line = [name]
            for kind, got in results.items():
                verdict = compare(name, reference[name], got[name], kind == "serve")
                same[kind] += verdict.startswith("same")
                line.append(f"{kind}: {verdict}")
            print(" | ".join(line), flush=True)
        print(f"answered as the Hub answers: serve {same['serve']}/{len(reference)}, "
              f"proxy {same['proxy']}/{len(reference)} (target: all)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
