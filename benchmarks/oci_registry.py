"""Export + import of a model through a real OCI registry (Debian's docker-registry on 127.0.0.1) vs the same
revision through a bundle tar (`export bundle.tar` + `import bundle.tar`), and vs oras-py pushing and pulling the same
files, all in one run. Target: the registry path within 2x of the bundle tar (it moves every byte over HTTP twice,
and the registry writes its own copy), and no slower than oras.

    python benchmarks/oci_registry.py [--gib 1.0] [--files 4] [--chunk-mib 64] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, report, require_free_space, wall, write_random_files

from tests.fakes import registry as fake_registry
from tests.fakes.hf_hub import FakeHub

REPO = "bench/oci-model"


def hubmirror(root: Path, *args: str) -> list[str]:
    return [str(VENV_BIN / "hubmirror"), "--root", str(root), "--quiet", *args]


def oras_push_pull(host: str, files: dict[str, Path], out: Path) -> float:
    """Seconds oras-py takes to push the files (chunked like hubmirror, which it does not do by default) and pull
    them back."""
    import oras.client

    client = oras.client.OrasClient(hostname=host, insecure=True)
    cwd = os.getcwd()
    os.chdir(next(iter(files.values())).parent)
    try:
        start = time.perf_counter()
        client.push(target=f"{host}/bench/oras:v1", quiet=True,
                    files=[f"{name}:application/vnd.cncf.model.weight.v1.raw" for name in files])
        client.pull(target=f"{host}/bench/oras:v1", outdir=str(out))
        return time.perf_counter() - start
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-oci")
    args = parser.parse_args()
    if not fake_registry.available():
        raise SystemExit("needs Debian's docker-registry (apt-get install docker-registry)")
    total = int(args.gib * (1 << 30))
    require_free_space(args.work, 6 * total)
    for name in ("source", "via-tar", "via-registry", "bundle.tar", "registry", "oras-out"):
        shutil.rmtree(args.work / name, ignore_errors=True) if name != "bundle.tar" else \
            (args.work / name).unlink(missing_ok=True)
    files = write_random_files(args.work / "repo", args.files, total // args.files)
    source = args.work / "source"
    with FakeHub() as hub:
        hub.create_repo(REPO, {".gitattributes": LFS_ATTRS, **files})
        subprocess.run(hubmirror(source, "pull", f"hf:{REPO}", "--endpoint", hub.url), check=True,
                       stdout=subprocess.DEVNULL)

    bundle = args.work / "bundle.tar"
    tar = wall(hubmirror(source, "export", str(bundle), f"hf:{REPO}")) + \
        wall(hubmirror(args.work / "via-tar", "import", str(bundle)))
    with fake_registry.registry(args.work / "registry") as reg:
        target = f"oci://{reg.host}/bench/model:v1"
        push = wall(hubmirror(source, "export", target, f"hf:{REPO}", "--plain-http",
                              "--chunk-size", str(args.chunk_mib << 20)))
        pull = wall(hubmirror(args.work / "via-registry", "import", target, "--plain-http"))
        oras = oras_push_pull(reg.host, files, args.work / "oras-out")
    print(f"{args.files} files, {total / (1 << 30):.2f} GiB; registry push {push:.3f} s, pull {pull:.3f} s")
    report("export+import through the registry vs bundle tar", push + pull, tar, "bundle tar", "<= 2x")
    report("export+import through the registry vs oras push+pull", push + pull, oras, "oras-py", "<= 1x")
    for name in ("source", "via-tar", "via-registry", "registry", "oras-out", "repo"):
        shutil.rmtree(args.work / name, ignore_errors=True)
    bundle.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
