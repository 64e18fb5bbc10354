"""Export + import of a model through a real OCI registry (Debian's docker-registry on 127.0.0.1) vs the same
revision through a bundle tar (`export bundle.tar` + `import bundle.tar`), and vs oras-py pushing and pulling the same
files, all in one run. Each side is measured in wall time and in CPU time (user + sys of the client process, and of
the registry process while the client ran): the machine is shared, so wall time is noisy, and CPU time says where
the work is. Every figure is the median of --runs runs, each against a fresh registry. Target: the registry path
within 2x of the bundle tar (it moves every byte over HTTP twice, and the registry hashes and durably writes its own
copy), and no slower than oras.

    python benchmarks/oci_registry.py [--gib 1.0] [--files 4] [--runs 3] [--chunk-mib 64] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, report, require_free_space, wall_and_cpu, write_random_files

from tests.fakes import registry as fake_registry
from tests.fakes.hf_hub import FakeHub

REPO = "bench/oci-model"
SCRATCH = ("via-tar", "via-registry", "bundle.tar", "registry", "oras-out")
# oras-py in a process of its own, like hubmirror: argv = push HOST/REPO:TAG FILE... | pull HOST/REPO:TAG OUTDIR
ORAS = """
import sys
import oras.client
action, target, *rest = sys.argv[1:]
client = oras.client.OrasClient(hostname=target.split("/")[0], insecure=True)
if action == "push":
    client.push(target=target, files=[f"{name}:application/vnd.cncf.model.weight.v1.raw" for name in rest], quiet=True)
else:
    client.pull(target=target, outdir=rest[0])
"""


@dataclass
class Cost:
    """One side of one run: seconds of wall time, of the client's CPU and of the registry's CPU."""

    wall: float
    cpu: float
    registry_cpu: float = 0.0


def measure(cmd: list[str], reg: fake_registry.Registry | None = None, cwd: Path | None = None) -> Cost:
    """Run `cmd` to its end; its wall time, its CPU time and the registry's CPU time meanwhile."""
    reg_before = reg.cpu_seconds() if reg else 0.0
    seconds, cpu = wall_and_cpu(cmd, cwd=str(cwd) if cwd else None)
    return Cost(seconds, cpu, reg.cpu_seconds() - reg_before if reg else 0.0)


def hubmirror(root: Path, *args: str) -> list[str]:
    return [str(VENV_BIN / "hubmirror"), "--root", str(root), "--quiet", *args]


def remove(paths) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def one_run(work: Path, source: Path, files: dict[str, Path], chunk: int) -> dict[str, Cost]:
    """Every side once, from clean scratch directories and a fresh registry."""
    remove(work / name for name in SCRATCH)
    bundle = work / "bundle.tar"
    costs = {"bundle export": measure(hubmirror(source, "export", str(bundle), f"hf:{REPO}")),
             "bundle import": measure(hubmirror(work / "via-tar", "import", str(bundle)))}
    with fake_registry.registry(work / "registry") as reg:
        target = f"{reg.host}/bench/model:v1"
        costs["hubmirror push"] = measure(hubmirror(source, "export", f"oci://{target}", f"hf:{REPO}",
                                                    "--plain-http", "--chunk-size", str(chunk)), reg)
        costs["hubmirror pull"] = measure(hubmirror(work / "via-registry", "import", f"oci://{target}",
                                                    "--plain-http"), reg)
        oras_target = f"{reg.host}/bench/oras:v1"
        costs["oras push"] = measure([sys.executable, "-c", ORAS, "push", oras_target, *files], reg,
                                     cwd=next(iter(files.values())).parent)
        costs["oras pull"] = measure([sys.executable, "-c", ORAS, "pull", oras_target, str(work / "oras-out")], reg)
    return costs


def median(runs: list[dict[str, Cost]], sides: tuple[str, ...], *fields: str) -> float:
    """The median over the runs of the sum of `fields` over `sides`."""
    return statistics.median(sum(getattr(run[side], field) for side in sides for field in fields) for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-oci")
    args = parser.parse_args()
    if not fake_registry.available():
        raise SystemExit("needs Debian's docker-registry (apt-get install docker-registry)")
    total = int(args.gib * (1 << 30))
    require_free_space(args.work, 6 * total)
    remove([args.work / "source"])
    files = write_random_files(args.work / "repo", args.files, total // args.files)
    source = args.work / "source"
    with FakeHub(xet=False) as hub:
        hub.create_repo(REPO, {".gitattributes": LFS_ATTRS, **files})
        subprocess.run(hubmirror(source, "pull", f"hf:{REPO}", "--endpoint", hub.url), check=True,
                       stdout=subprocess.DEVNULL)
    runs = [one_run(args.work, source, files, args.chunk_mib << 20) for _ in range(args.runs)]

    print(f"{args.files} files, {total / (1 << 30):.2f} GiB; median of {args.runs} runs, in seconds:")
    for side in runs[0]:
        line = f"  {side:14s} wall {median(runs, (side,), 'wall'):7.3f}  client CPU {median(runs, (side,), 'cpu'):7.3f}"
        if "push" in side or "pull" in side:
            line += f"  registry CPU {median(runs, (side,), 'registry_cpu'):7.3f}"
        print(line)
    ours, oras = ("hubmirror push", "hubmirror pull"), ("oras push", "oras pull")
    tar = ("bundle export", "bundle import")
    report("export+import through the registry vs bundle tar", median(runs, ours, "wall"), median(runs, tar, "wall"),
           "bundle tar", "<= 2x")
    report("export+import through the registry vs oras push+pull", median(runs, ours, "wall"),
           median(runs, oras, "wall"), "oras-py", "<= 1x")
    report("client CPU through the registry vs oras push+pull", median(runs, ours, "cpu"), median(runs, oras, "cpu"),
           "oras-py", "<= 1x")
    report("client+registry CPU through the registry vs oras push+pull",
           median(runs, ours, "cpu", "registry_cpu"), median(runs, oras, "cpu", "registry_cpu"), "oras-py", "<= 1x")
    remove(args.work / name for name in ("source", "repo", *SCRATCH))


if __name__ == "__main__":
    main()
