"""Built-in benchmark loaders: timm, sentence-transformers / transformers, TorchScript, ONNX (onnxruntime when
installed), and plain safetensors / torch state dicts (loaded and described, not run)."""

from __future__ import annotations

import json
from pathlib import Path

from hubmirror.api import Loaded, Loader, hookimpl, torch_dtype

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


class _SingleFileLoader(Loader):
    """A loader for models that are one file of a known suffix (the first one, when there are several)."""

    suffix = ""

    def matches(self, model, paths):
        return any(p.endswith(self.suffix) for p in paths)

    def model_file(self, directory: Path) -> Path:
        return sorted(directory.rglob(f"*{self.suffix}"))[0]


class TimmLoader(Loader):
    name, priority, preload = "timm", 30, ("timm",)

    def matches(self, model, paths):
        return model["library"] == "timm" and any(p in paths for p in WEIGHTS)

    def load(self, directory, model, device, dtype):
        import timm
        import torch

        cfg = json.loads(model["metadata"] or "{}")
        weights = next(directory / p for p in WEIGHTS if (directory / p).exists())
        net = timm.create_model(model["model_id"], pretrained=True,
                                pretrained_cfg_overlay={"file": str(weights)}).eval().to(device, torch_dtype(dtype))
        # the input timm's own benchmark feeds the model: its pretrained config's size (not a fixed 224x224)
        shape = tuple(cfg.get("input_size") or timm.data.resolve_model_data_config(net)["input_size"])
        return Loaded(net, lambda b: torch.randn((b, *shape), device=device, dtype=torch_dtype(dtype)),
                      _count(net), "x".join(map(str, shape)))


class SentenceTransformersLoader(Loader):
    name, priority, preload = "transformers", 20, ("transformers",)

    def matches(self, model, paths):
        return "config.json" in paths and any(p in paths for p in WEIGHTS) and \
            (model["library"] in ("sentence-transformers", "transformers") or "tokenizer.json" in paths)

    def load(self, directory, model, device, dtype):
        import torch
        from transformers import AutoModel

        # a local folder the runner filled from the store (HF_HUB_OFFLINE=1): nothing is downloaded, nothing to pin
        net = AutoModel.from_pretrained(directory, torch_dtype=torch_dtype(dtype)).eval().to(device)  # nosec B615
        vocab, seq = net.config.vocab_size, min(128, getattr(net.config, "max_position_embeddings", 128))

        def make_input(b):
            ids = torch.randint(0, vocab, (b, seq), device=device)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

        return Loaded(lambda x: net(**x), make_input, _count(net), f"{seq} tokens")


class TorchScriptLoader(_SingleFileLoader):
    name, priority, suffix = "torchscript", 10, ".jit"

    def load(self, directory, model, device, dtype):
        import torch

        path = self.model_file(directory)
        net = torch.jit.load(str(path), map_location=device).eval()
        audio = any(t in (model["tags"] or "") for t in ("vad", "audio", "silero")) or "vad" in path.name
        if audio:  # silero-style streaming audio models: (batch, 512 samples), sample rate
            return Loaded(lambda x: net(x, 16000), lambda b: torch.randn(b, 512, device=device),
                          _count(net), "512 samples @16 kHz")
        return Loaded(net, lambda b: torch.randn(b, 3, 224, 224, device=device), _count(net), "3x224x224")


class OnnxLoader(_SingleFileLoader):
    name, priority, suffix, preload = "onnx", 5, ".onnx", ("onnxruntime",)

    def load(self, directory, model, device, dtype):
        import numpy as np
        import onnxruntime as ort

        path = self.model_file(directory)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), providers=providers)
        types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16,
                 "tensor(int32)": np.int32}

        def make_input(b):
            feeds = {}
            for inp in session.get_inputs():
                shape = [b if i == 0 and not isinstance(d, int) else (d if isinstance(d, int) and d > 0 else 1)
                         for i, d in enumerate(inp.shape)]
                kind = types.get(inp.type, np.float32)
                feeds[inp.name] = (np.full(shape, 16000, kind) if "sr" in inp.name else np.zeros(shape, kind))
            return feeds

        return Loaded(lambda feeds: session.run(None, feeds), make_input, 0,
                      ", ".join(f"{i.name}{i.shape}" for i in session.get_inputs()))


class StateDictLoader(Loader):
    name, priority, preload = "state-dict", 0, ("safetensors.torch",)

    def matches(self, model, paths):
        return any(p.endswith((".safetensors", ".pth", ".pt", ".bin")) for p in paths)

    def load(self, directory, model, device, dtype):
        import torch

        tensors = {}
        for path in sorted(directory.rglob("*")):
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                tensors.update(load_file(path, device=device))
            elif path.suffix in (".pth", ".pt", ".bin"):
                data = torch.load(path, map_location=device, weights_only=True)  # never a full unpickle
                tensors.update({k: v for k, v in (data.items() if isinstance(data, dict) else []) if torch.is_tensor(v)})
        count = sum(t.numel() for t in tensors.values())
        return Loaded(lambda x: None, lambda b: None, count, f"{len(tensors)} tensors", runs=False)


@hookimpl
def register_loaders(register):
    for loader in (TimmLoader(), SentenceTransformersLoader(), TorchScriptLoader(), OnnxLoader(), StateDictLoader()):
        register(loader)
