"""A static security check in CI: bandit over the package and the built-in plugins, with the exclusions pyproject.toml
justifies ([tool.bandit]); anything else it finds fails the build."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_bandit_finds_nothing_unjustified():
    done = subprocess.run([sys.executable, "-m", "bandit", "-q", "-c", "pyproject.toml", "-r", "hubmirror", "plugins",
                           "-f", "custom", "--msg-template", "{test_id} {relpath}:{line} {msg}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
