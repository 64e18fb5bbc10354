"""Copy-paste code that loads a model from this server, for the clients its metadata says fit, each with the
server's own base URL (as the request reached it) and the revision pinned."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import quote

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".onnx")
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


@dataclass(frozen=True)
class Snippet:
    """One way to load the model: a title, the code, and the URL it fetches first where it names one."""

    title: str
    code: str
    url: str | None = None


def snippets(base: str, repo: str, sha: str, model: dict, files: list[dict]) -> list[Snippet]:
    """The snippets for `repo` at commit `sha` served from `base`; `files` are its admitted (not quarantined) files."""
    endpoint = f"HF_ENDPOINT={shlex.quote(base)}"
    paths = [f["path"] for f in files]
    if model.get("kind") == "dataset":
        return _dataset_snippets(base, endpoint, repo, sha, model, paths)
    weights = [p for p in paths if p.endswith(WEIGHT_SUFFIXES)]
    first = next(iter(weights + [p for p in paths if p == "config.json"] + paths), None)
    found = [Snippet("huggingface_hub", f"{endpoint} " + python(
        f"from huggingface_hub import snapshot_download; print(snapshot_download({repo!r}, revision={sha!r}))"))]
    library, source = model.get("library") or "", model.get("source") or ""
    if library == "timm" or source == "timm":
        found.append(Snippet("timm", f"{endpoint} " + python(
            f"import timm; timm.create_model({'hf-hub:' + repo!r}, pretrained=True)")))
    elif library == "sentence-transformers":
        found.append(Snippet("sentence-transformers", f"{endpoint} " + python(
            f"from sentence_transformers import SentenceTransformer; SentenceTransformer({repo!r}, revision={sha!r})")))
    if "config.json" in paths and library != "timm" and source != "timm":
        found.append(Snippet("transformers", f"{endpoint} " + python(
            f"from transformers import AutoModel; AutoModel.from_pretrained({repo!r}, revision={sha!r})")))
    torch_weight = next((p for p in weights if p.endswith(TORCH_SUFFIXES)), None)
    if torch_weight is not None:
        url = file_url(base, repo, sha, torch_weight)
        found.append(Snippet("torch.hub", python(f"import torch; torch.hub.load_state_dict_from_url({url!r}, "
                                                 f"map_location='cpu')"), url))
    found.append(Snippet("hubmirror materialize", f"hubmirror materialize --layout hf-cache ./hf-cache "
                                                  f"{shlex.quote(model['key'])}"))
    if first is not None:
        url = file_url(base, repo, sha, first)
        found.append(Snippet("URL", f"curl -LO {shlex.quote(url)}", url))
    return found


def _dataset_snippets(base: str, endpoint: str, repo: str, sha: str, model: dict, paths: list[str]) -> list[Snippet]:
    """A dataset's ways in: `datasets.load_dataset`, `snapshot_download(repo_type="dataset")`, pandas over
    HfFileSystem for a parquet file, the offline cache, a file's URL (`repo` is the served `datasets/org/name`)."""
    name = repo.removeprefix("datasets/")
    found = [Snippet("datasets", f"{endpoint} " + python(
                 f"import datasets; print(datasets.load_dataset({name!r}, revision={sha!r}))")),
             Snippet("huggingface_hub", f"{endpoint} " + python(
                 f"from huggingface_hub import snapshot_download; "
                 f"print(snapshot_download({name!r}, repo_type='dataset', revision={sha!r}))"))]
    parquet = next((p for p in paths if p.endswith(".parquet")), None)
    if parquet is not None:
        found.append(Snippet("pandas", f"{endpoint} " + python(
            f"import pandas; print(pandas.read_parquet({'hf://datasets/' + name + '@' + sha + '/' + parquet!r}))")))
    found.append(Snippet("hubmirror materialize", f"hubmirror materialize --layout hf-cache ./hf-cache "
                                                  f"{shlex.quote(model['key'])}"))
    if paths:
        url = file_url(base, repo, sha, (parquet or paths[0]))
        found.append(Snippet("URL", f"curl -LO {shlex.quote(url)}", url))
    return found


def python(code: str) -> str:
    """`python -c CODE` as a POSIX shell reads it: the code one argument, whatever quotes or `$` the ids in it hold
    (each id is a Python literal in the code, and the whole code is quoted for the shell)."""
    return f"python -c {shlex.quote(code)}"


def file_url(base: str, repo: str, sha: str, path: str) -> str:
    """Where this server answers a file of the revision (the Hub's resolve URL)."""
    return f"{base}/{quote(repo)}/resolve/{sha}/{quote(path)}"
