"""PyTorch Hub repositories: `torchhub:owner/repo[:ref][:entrypoint]`.

Fetches the repository the way torch.hub does (the GitHub zipball of the ref's commit) and checks every file against
the git blob id GitHub's tree API publishes. `hubconf.py` is parsed, never imported: its entrypoints (each becomes a
catalog model), `dependencies`, docstrings, and the weight URLs the entrypoints download (`load_state_dict_from_url` /
`download_url_to_file` style URLs, mirrored as `checkpoints/<name>` and checked against their hash prefix).

The requests a pull sends, in order (headers and the reasons for each in `hubmirror.plugins.github`):

1. `GET {web}/{o}/{r}/tree/main/` — only without a ref: 200 means `main`, 404 `master` (torch.hub `_parse_repo_info`).
2. `GET {api}/repos/{o}/{r}/branches?per_page=100&page=N`, then `/tags?per_page=100&page=N`, until the ref is found
   (torch.hub `_validate_not_a_forked_repo`, with its `Accept` and `Authorization: token` headers). The match pins
   the ref to a commit; a ref no branch or tag names or heads is refused, as torch.hub refuses it.
3. `GET {api}/repos/{o}/{r}/git/trees/{sha}?recursive=1` — GitHub REST "Get a tree", which torch.hub does not call:
   the git blob id of every file, the only digest GitHub publishes for a repository's files.
4. `GET {web}/{o}/{r}/zipball/{sha}`, following its redirect to codeload (torch.hub `_git_archive_link` +
   `download_url_to_file`, which name the ref where hubmirror names the commit it resolved to).
5. For each weight URL an entrypoint names: what `hubmirror.plugins.urls` sends for it (a GitHub release asset's
   release JSON, then the GET of the URL that `load_state_dict_from_url` would make).
"""

from __future__ import annotations

import ast
import re
import sys
import zipfile
from dataclasses import dataclass, field, replace

from hubmirror.plugins.github import GitHub
from hubmirror.plugins.urls import url_file

from hubmirror.api import (
    Download,
    HubmirrorError,
    IntegrityError,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UnsafePathError,
    UsageError,
    check_relative_path,
    chunks,
    hookimpl,
    open_range,
    open_zip,
    spool,
)

REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9_.][\w.-]*\Z")
WEIGHT_URL_RE = re.compile(r"^https?://\S+\.(pth|pt|bin|ckpt|onnx|safetensors|jit|pkl|npz|h5|tar|zip|gz|tgz)\Z")
_GIT_SYMLINK, _GIT_SUBMODULE = "120000", "160000"


@dataclass
class Entrypoint:
    name: str
    doc: str | None
    weight_urls: list[str] = field(default_factory=list)


@dataclass
class Hubconf:
    dependencies: list[str]
    entrypoints: dict[str, Entrypoint]
    imports: set[str]


def _urls_in(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and WEIGHT_URL_RE.match(n.value)]


def parse_hubconf(source: str) -> Hubconf:
    """Read what torch.hub would find in hubconf.py, without executing it."""
    try:
        tree = ast.parse(source, "hubconf.py")
    except SyntaxError as exc:
        raise HubmirrorError(f"hubconf.py does not parse: {exc.msg} (line {exc.lineno})") from None
    dependencies: list[str] = []
    module_urls: dict[str, list[str]] = {}
    imports: set[str] = set()
    functions: list[ast.FunctionDef | ast.ClassDef] = []
    imported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "dependencies":
                    dependencies = [e.value for e in getattr(node.value, "elts", [])
                                    if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                elif isinstance(target, ast.Name):
                    module_urls[target.id] = _urls_in(node.value)
        elif isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                imports.add(node.module.split(".")[0])
            # torch.hub offers every public callable of hubconf's namespace, imported ones included
            imported.extend(alias.asname or alias.name for alias in node.names if alias.name != "*")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            functions.append(node)
    entrypoints = {name: Entrypoint(name, None) for name in imported if not name.startswith("_")}
    for fn in functions:
        names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        urls = _urls_in(fn) + [u for name in sorted(names & module_urls.keys()) for u in module_urls[name]]
        entrypoints[fn.name] = Entrypoint(fn.name, ast.get_docstring(fn), list(dict.fromkeys(urls)))
    return Hubconf(dependencies, dict(sorted(entrypoints.items())), imports)


def check_imports(hubconf: Hubconf, repo_paths: list[str]) -> None:
    """Every module hubconf.py imports must be in the repository, the standard library or its dependencies."""
    in_repo = set()
    for path in repo_paths:
        parts = path.split("/")
        in_repo.update(parts[:-1])
        if parts[-1].endswith(".py"):
            in_repo.add(parts[-1][:-3])
    declared = {d.split(".")[0].replace("-", "_") for d in hubconf.dependencies}
    missing = sorted(m for m in hubconf.imports
                     if m not in in_repo and m not in sys.stdlib_module_names and m not in declared)
    if missing:
        raise HubmirrorError(
            f"hubconf.py imports {', '.join(missing)}, which is neither in the repository, the standard library "
            f"nor its declared dependencies"
        )


def below_top_folder(members: dict[str, zipfile.ZipInfo], what: str) -> dict[str, zipfile.ZipInfo]:
    """Repository path -> zip member, below the single top folder GitHub's zipball puts every file in."""
    if not members:
        raise IntegrityError(f"{what}: the archive holds no files")
    top = next(iter(members)).split("/")[0] + "/"
    outside = next((name for name in members if not name.startswith(top)), None)
    if outside is not None:
        raise UnsafePathError(f"{what}: archive member {outside!r} is outside the top folder {top!r}")
    return {name[len(top):]: info for name, info in members.items()}


class TorchHubSource(Source):
    name = "torchhub"
    description = "PyTorch Hub repositories on GitHub (GITHUB_SERVER_URL, GITHUB_API_URL, GITHUB_TOKEN)"

    def parse(self, spec: str) -> ModelRef:
        """`OWNER/REPO[:REF][:ENTRYPOINT]` (torch.hub's own form) or `OWNER/REPO/ENTRYPOINT[:REF]` (a catalog key)."""
        path, _, rest = spec.partition(":")
        segments = path.split("/")
        if len(segments) == 3:
            repo, entrypoint = "/".join(segments[:2]), segments[2]
            ref, _, extra = rest.partition(":")
        else:
            repo = path
            ref, _, entrypoint = rest.partition(":")
            entrypoint, _, extra = entrypoint.partition(":")
        if extra or not REPO_RE.match(repo) or ".." in repo or (entrypoint and not entrypoint.isidentifier()):
            raise UsageError(f"malformed reference torchhub:{spec}: expected torchhub:OWNER/REPO[:REF][:ENTRYPOINT]")
        return ModelRef(self.name, f"{repo}/{entrypoint}" if entrypoint else repo, ref or None)

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        revisions = self.resolve_all(ref, ctx)
        if len(revisions) != 1:
            raise UsageError(f"{ref} names {len(revisions)} entrypoints; name one as OWNER/REPO:REF:ENTRYPOINT")
        return revisions[0]

    def resolve_all(self, ref: ModelRef, ctx: SourceContext) -> list[ResolvedRevision]:
        owner, name, *entry = ref.model_id.split("/")
        repo, wanted = f"{owner}/{name}", (entry[0] if entry else None)
        github = GitHub(ctx)
        requested = ref.revision or github.default_branch(owner, name)
        commit = github.ref_commit(owner, name, requested)
        blobs = self._tree_blobs(github, owner, name, commit)
        archive, members = self._download_archive(github, owner, name, commit, ctx)
        if set(members) != set(blobs):
            raise IntegrityError(f"{repo}@{commit}: the archive and GitHub's tree list different files")
        if "hubconf.py" not in members:
            raise NotFoundError(f"{repo}@{commit} has no hubconf.py: not a PyTorch Hub repository")
        hubconf = parse_hubconf(archive.read(members["hubconf.py"]).decode("utf-8", "replace"))
        check_imports(hubconf, list(blobs))
        if not hubconf.entrypoints:
            raise NotFoundError(f"{repo}@{commit}: hubconf.py defines no entrypoint")
        if wanted and wanted not in hubconf.entrypoints:
            raise NotFoundError(f"{repo}@{commit} has no entrypoint {wanted!r} "
                                f"(it has: {', '.join(sorted(hubconf.entrypoints))})")
        repo_files = [
            RemoteFile(path, entry.get("size"), {"git-sha1": entry["sha"]}, etag=entry["sha"],
                       location=(archive, members[path]))
            for path, entry in sorted(blobs.items())
        ]
        weights: dict[str, RemoteFile] = {}
        revisions = []
        for entry in hubconf.entrypoints.values():
            if wanted and entry.name != wanted:
                continue
            for url in entry.weight_urls:
                if url not in weights:
                    remote = url_file(url, ctx)
                    weights[url] = replace(remote, path=f"checkpoints/{remote.path}")
            meta = ModelMetadata(
                source=self.name, model_id=f"{repo}/{entry.name}", library="torch.hub",
                tags=[owner, name, entry.name, *hubconf.dependencies],
                description=(entry.doc or "").strip().split("\n\n")[0] or None,
                extra={"repo": repo, "entrypoint": entry.name, "dependencies": hubconf.dependencies,
                       "weight_urls": entry.weight_urls, "docstring": entry.doc},
            )
            files = repo_files + [weights[u] for u in entry.weight_urls]
            revisions.append(ResolvedRevision(ModelRef(self.name, meta.model_id, ref.revision), commit, requested,
                                              meta, files))
        return revisions

    @staticmethod
    def _tree_blobs(github: GitHub, owner: str, name: str, commit: str) -> dict[str, dict]:
        blobs = {}
        for entry in github.tree(owner, name, commit):
            mode, path = str(entry.get("mode")), entry.get("path")
            if mode == _GIT_SYMLINK:
                raise UnsafePathError(f"{owner}/{name}@{commit}: the repository holds a symbolic link: {path!r}")
            if mode == _GIT_SUBMODULE:
                raise HubmirrorError(f"{owner}/{name}@{commit}: submodules are not supported ({path!r})")
            if entry.get("type") == "blob":
                blobs[check_relative_path(path)] = entry
        return blobs

    @staticmethod
    def _download_archive(github: GitHub, owner: str, name: str, commit: str,
                          ctx: SourceContext) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
        """The zipball (in an anonymous temp file inside the mirror, gone when the pull ends) and its files by
        repository path, every member checked."""
        what = f"{owner}/{name}@{commit}"
        file, _ = spool(ctx.session(), github.archive_url(owner, name, commit), timeout=ctx.timeout,
                        directory=ctx.cache_dir)
        archive, members = open_zip(file, what)
        return archive, below_top_folder(members, what)

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        if isinstance(file.location, str):
            return open_range(ctx.session(), file.location, offset, timeout=ctx.timeout)
        archive, info = file.location
        member = archive.open(info)
        return Download(0, chunks(member, f"{revision.ref}: {file.path}"), member.close)


@hookimpl
def register_sources(register):
    register(TorchHubSource())
