"""Git-like repositories for the imitation hubs: files with their git blob ids, LFS pointers and commits."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror.digests import git_blob_sha1

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024


@dataclass
class RepoFile:
    """One file: bytes in memory or on disk, with every identity the Hub publishes for it."""

    path: str
    data: bytes | None = None
    disk_path: Path | None = None
    lfs: bool = False
    size: int = 0
    sha256: str = ""
    git_sha1: str = ""  # of the content (regular files) or of the LFS pointer (LFS files)

    def __post_init__(self):
        sha256, sha1 = hashlib.sha256(), None
        if self.data is not None:
            self.size = len(self.data)
            sha256.update(self.data)
            content_sha1 = git_blob_sha1(self.data)
        else:
            self.size = self.disk_path.stat().st_size
            sha1 = hashlib.sha1(b"blob %d\0" % self.size)
            with open(self.disk_path, "rb") as f:
                while chunk := f.read(8 << 20):
                    sha256.update(chunk)
                    sha1.update(chunk)
            content_sha1 = sha1.hexdigest()
        self.sha256 = sha256.hexdigest()
        self.git_sha1 = git_blob_sha1(self.lfs_pointer()) if self.lfs else content_sha1

    def lfs_pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        end = self.size if end is None else end
        if self.data is not None:
            return self.data[start:end]
        with open(self.disk_path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


def lfs_patterns(gitattributes: str) -> list[str]:
    return [line.split()[0] for line in gitattributes.splitlines() if "filter=lfs" in line and line.split()]


def is_lfs(path: str, patterns: list[str], size: int) -> bool:
    """As git-lfs decides from .gitattributes (patterns without '/' match the base name), plus the Hub's size rule."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        target = path if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern.replace("**/", "")):
            return True
    return size >= LFS_SIZE_THRESHOLD


def front_matter(card: str) -> dict:
    """The simple YAML front matter of a model card (scalars and lists of scalars), as the Hub reads `cardData`."""
    if not card.startswith("---"):
        return {}
    body = card[3 : card.find("\n---", 3)]
    data: dict = {}
    key = None
    for line in body.splitlines():
        if re.match(r"^\s*-\s+", line) and key:
            data.setdefault(key, [])
            if isinstance(data[key], list):
                data[key].append(line.split("-", 1)[1].strip())
        elif ":" in line and not line.startswith(" "):
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            data[key] = value if value else []
    return data


@dataclass
class FakeRepo:
    """A model repository: commits of files, branches and tags, and Hub-side settings (gated, private)."""

    repo_id: str
    commits: dict[str, dict[str, RepoFile]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    private: bool = False
    created_at: str = "2021-08-30T00:00:00.000Z"
    lfs_enabled: bool = True  # the Hub stores big files in LFS; GitHub repos here do not
    history: dict[str, dict] = field(default_factory=dict)  # sha -> {parent, title, date}, as the Hub lists commits
    repo_type: str = "model"  # or "dataset"
    xet: bool | None = None  # its LFS files stored in Xet (None: as the hub holding it decides)

    @property
    def key(self) -> str:
        """Where the hub keeps it: a dataset under `datasets/{id}` (models and datasets may share an id)."""
        return f"datasets/{self.repo_id}" if self.repo_type == "dataset" else self.repo_id

    def commit(self, files: dict[str, bytes | Path], *, branch: str = "main", tag: str | None = None,
               title: str = "Upload folder using huggingface_hub") -> str:
        """Add a commit holding exactly `files` (path -> bytes or a file on disk) on `branch`; return its sha. Each
        commit is dated a day after the one before (from 2024-11-01)."""
        attributes = files.get(".gitattributes")
        text = attributes.decode() if isinstance(attributes, bytes) else (attributes.read_text() if attributes else "")
        patterns = lfs_patterns(text)
        entries: dict[str, RepoFile] = {}
        for path, content in sorted(files.items()):
            size = len(content) if isinstance(content, bytes) else Path(content).stat().st_size
            lfs = self.lfs_enabled and is_lfs(path, patterns, size)
            entries[path] = (
                RepoFile(path, data=content, lfs=lfs)
                if isinstance(content, bytes)
                else RepoFile(path, disk_path=Path(content), lfs=lfs)
            )
        parent = self.branches.get(branch, "")
        manifest = json.dumps([parent] + [[p, f.git_sha1] for p, f in entries.items()])
        sha = hashlib.sha1(f"commit {self.repo_id}\n{manifest}".encode()).hexdigest()
        self.commits[sha] = entries
        self.history[sha] = {"parent": parent or None, "title": title,
                             "date": f"2024-11-{len(self.history) % 28 + 1:02d}T00:00:00.000Z"}
        self.branches[branch] = sha
        if tag:
            self.tags[tag] = sha
        return sha

    def ancestry(self, commit: str) -> list[str]:
        """`commit` and its ancestors, newest first."""
        chain = []
        while commit is not None:
            chain.append(commit)
            commit = self.history[commit]["parent"]
        return chain

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.branches.get(revision) or self.tags.get(revision)

    def card_data(self, commit: str) -> dict:
        readme = self.commits[commit].get("README.md")
        return front_matter(readme.read().decode("utf-8", "replace")) if readme else {}

    def config(self, commit: str) -> dict:
        cfg = self.commits[commit].get("config.json")
        if cfg is None:
            return {}
        try:
            data = json.loads(cfg.read())
        except ValueError:
            return {}
        return {k: data[k] for k in ("architectures", "model_type") if k in data} if isinstance(data, dict) else {}


def git_tree_id(files: dict[str, RepoFile], directory: str = "") -> str:
    """The git object id of the tree at `directory` of a commit's `files` (every blob mode 100644, an LFS file as
    its pointer), as `git rev-parse HEAD:directory` gives it."""
    prefix = f"{directory}/" if directory else ""
    names: dict[str, RepoFile | None] = {}  # a subtree as `name/` (None), a file as its name
    for path, f in files.items():
        if path.startswith(prefix):
            head, slash, _ = path[len(prefix):].partition("/")
            if head:  # (a hostile test path like `/tmp/x` has an empty first segment: no tree of its own)
                names[head + slash] = None if slash else f
    body = b""
    for name in sorted(names, key=str.encode):  # git compares a subtree's name with its '/'
        f = names[name]
        if f is None:
            body += b"40000 " + name[:-1].encode() + b"\0" + bytes.fromhex(git_tree_id(files, prefix + name[:-1]))
        else:
            body += b"100644 " + name.encode() + b"\0" + bytes.fromhex(f.git_sha1)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
