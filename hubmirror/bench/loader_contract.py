"""The loader contract. The parent chooses a loader from catalog metadata alone (no torch import); the child process
calls `load`, which may import torch and must read weights safely (safetensors, or torch.load(weights_only=True))."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Loaded:
    """A model ready to time: `forward(inputs)` runs one batch; `make_input(batch)` builds synthetic inputs."""

    forward: Callable[[Any], Any]
    make_input: Callable[[int], Any]
    parameters: int
    input_shape: str
    runs: bool = True  # False for weight files that can only be loaded and described (no forward)


class Loader(ABC):
    name: str = ""
    priority: int = 0  # higher wins when several match
    preload: tuple[str, ...] = ()  # modules a warm worker imports once, before running models with this loader

    @abstractmethod
    def matches(self, model: dict, paths: list[str]) -> bool:
        """Whether this loader can load the model (catalog row, its file paths)."""

    @abstractmethod
    def load(self, directory: Path, model: dict, device: str, dtype: str) -> Loaded:
        """Load from the materialised snapshot in `directory` (runs in the child process)."""


def registered_loaders(registry) -> list[Loader]:
    """Every benchmark loader the plugins register (`register_loaders`), best first."""
    found = registry.collect("register_loaders", Loader, "loader")
    return sorted((loader for loader, _ in found.values()), key=lambda loader: -loader.priority)


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
