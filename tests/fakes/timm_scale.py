"""A mirror of many real timm architectures with random-initialised weights, for running the benchmark runner at hub
scale offline. Each model is a Hugging Face repo in timm's layout (`config.json` + `model.safetensors` under its
`hf_hub_id`, `timm/<arch>.<tag>`), served by the Hub imitation and pulled by the `timm:` source like a real one. The
weights are random: figures measured on them are speeds, never accuracies.

    python -m tests.fakes.timm_scale --root MIRROR [--names tiny|all] [--limit N] [--max-params P] [--shard I/N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import timm_hub_repo

# Pretrained timm models under 3 M parameters (timm 1.0.x, counted on the meta device), smallest first: what tests run.
TINY = [
    "test_convnext.r160_in1k", "test_efficientnet.r160_in1k", "test_efficientnet_gn.r160_in1k",
    "test_efficientnet_ln.r160_in1k", "test_efficientnet_evos.r160_in1k", "test_vit.r160_in1k", "test_nfnet.r160_in1k",
    "test_vit2.r160_in1k", "test_byobnet.r160_in1k", "test_convnext3.r160_in1k", "test_resnet.r160_in1k",
    "test_convnext2.r160_in1k", "test_vit3.r160_in1k", "dla46x_c.in1k", "mobilevit_xxs.cvnets_in1k", "dla46_c.in1k",
    "dla60x_c.in1k", "edgenext_xx_small.in1k", "mobilevitv2_050.cvnets_in1k", "mobilenetv3_small_050.lamb_in1k",
    "lcnet_050.ra2_in1k", "mobilenetv2_050.lamb_in1k", "mnasnet_small.lamb_in1k", "mobilenetv3_small_075.lamb_in1k",
    "tf_mobilenetv3_small_075.in1k", "tinynet_e.in1k", "tf_mobilenetv3_small_minimal_100.in1k",
    "convnext_zepto_rms.ra4_e3600_r224_in1k", "convnext_zepto_rms_ols.ra4_e3600_r224_in1k",
    "mobilenetv4_conv_small_050.e3000_r224_in1k", "repghostnet_050.in1k", "mobilevit_xs.cvnets_in1k",
    "edgenext_x_small.in1k", "tinynet_d.in1k", "efficientvit_m0.r224_in1k", "lcnet_075.ra2_in1k", "tinynet_c.in1k",
    "mobilenetv3_small_100.lamb_in1k", "tf_mobilenetv3_small_100.in1k", "repghostnet_058.in1k",
    "regnetx_002.pycls_in1k", "cspnext_tiny.rsb_a1_in1k", "mobilevitv2_075.cvnets_in1k", "starnet_s1.in1k",
    "iformer_t.in1k", "semnasnet_075.rmsp_in1k", "lcnet_100.ra2_in1k", "efficientvit_m1.r224_in1k",
]


def pretrained_names(which: str) -> list[str]:
    """`tiny`: TINY as far as the installed timm has them; `all`: one name per architecture (its default tag)."""
    import timm
    from timm.models import get_pretrained_cfg

    known = timm.list_pretrained()
    if which == "tiny":
        return [n for n in TINY if n in set(known)]
    architectures = dict.fromkeys(name.split(".", 1)[0] for name in known)
    return [f"{arch}.{get_pretrained_cfg(arch).tag}" if get_pretrained_cfg(arch).tag else arch for arch in architectures]


def parameter_count(name: str) -> int:
    """Parameters of the model, counted without allocating them."""
    import timm
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in timm.create_model(name).parameters())


def hf_hub_id(name: str) -> str:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(name).hf_hub_id or f"timm/{name}"


def generate(name: str, cache: Path, max_params: int | None = None) -> dict[str, Path] | None:
    """The repo's files (generated once into `cache/<name>`), or None when the model is over `max_params` or timm
    cannot build it."""
    folder = cache / name
    if (folder / "model.safetensors").exists():
        return {p.name: p for p in sorted(folder.iterdir())}
    try:
        if max_params and parameter_count(name) > max_params:
            return None
        partial = cache / f".{name}.{os.getpid()}"
        files = timm_hub_repo(name, partial)
    except Exception as exc:  # noqa: BLE001 - an architecture this timm cannot build is left out, and said so
        print(f"skipped {name}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return None
    os.replace(partial, folder)
    return {path: folder / path for path in files}


def _generate_one(args):
    name, cache, max_params = args
    import torch

    torch.set_num_threads(1)
    return name, generate(name, cache, max_params)


def generate_many(names: list[str], cache: Path, max_params: int | None, workers: int,
                  budget: float | None = None) -> dict[str, dict[str, Path]]:
    """Generate in `workers` processes; stops handing out names after `budget` seconds."""
    started, made = time.monotonic(), {}
    cache.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        for name, files in pool.map(_generate_one, [(n, cache, max_params) for n in names]):
            if files:
                made[name] = files
            if budget and time.monotonic() - started > budget:
                pool.shutdown(cancel_futures=True)
                break
    return made


def serve(hub: FakeHub, models: dict[str, dict[str, Path]]) -> list[str]:
    """Create each model's repo on the Hub imitation; the `timm:` references to pull."""
    for name, files in models.items():
        hub.create_repo(hf_hub_id(name), files)
    return [f"timm:{name}" for name in models]


def pull_all(hubmirror: list[str], refs: list[str], endpoint: str, batch: int = 100) -> None:
    """Pull the references with the real CLI, `batch` at a time."""
    for start in range(0, len(refs), batch):
        subprocess.run([*hubmirror, "pull", *refs[start:start + batch], "--endpoint", endpoint], check=True,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the mirror to fill")
    parser.add_argument("--cache", type=Path, help="where generated repos are kept (default: ROOT/../timm-scale)")
    parser.add_argument("--names", choices=["tiny", "all"], default="tiny")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-params", type=float, help="leave out models with more parameters (e.g. 2e7)")
    parser.add_argument("--shard", default="1/1", help="I/N: the I-th of N interleaved parts of the list")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, help="seconds of generation at most")
    args = parser.parse_args()
    index, count = map(int, args.shard.split("/"))
    names = pretrained_names(args.names)[index - 1::count][:args.limit]
    started = time.monotonic()
    models = generate_many(names, args.cache or args.root.parent / "timm-scale",
                           int(args.max_params) if args.max_params else None, args.workers, args.budget)
    generated = time.monotonic()
    hubmirror = [str(Path(sys.executable).parent / "hubmirror"), "--root", str(args.root), "--quiet"]
    if not shutil.which(hubmirror[0]):
        hubmirror[:1] = [sys.executable, "-m", "hubmirror"]
    with FakeHub(xet=False) as hub:
        pull_all(hubmirror, serve(hub, models), hub.url)
    print(json.dumps({"asked": len(names), "mirrored": len(models), "generate_seconds": round(generated - started, 1),
                      "pull_seconds": round(time.monotonic() - generated, 1), "random_weights": True}))


if __name__ == "__main__":
    main()
