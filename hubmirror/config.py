"""A mirror's own settings: `config.toml` at its root (optional).

    [import]
    trusted_keys = ["keys/site.pub", "MCowBQYDK2VwAyEA..."]   # files (relative to the root) or base64 keys

With trusted keys set, `import` accepts only bundles whose index.json is signed by one of them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from hubmirror.errors import UsageError

CONFIG_NAME = "config.toml"


def load_config(root: Path) -> dict:
    path = Path(root) / CONFIG_NAME
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def trusted_keys(root: Path) -> list:
    """The Ed25519 public keys pinned for imports."""
    from hubmirror.exchange.signing import load_public_key

    keys = []
    for entry in load_config(root).get("import", {}).get("trusted_keys", []):
        path = Path(root) / entry
        keys.append(load_public_key(path.read_text() if path.is_file() else entry))
    return keys
