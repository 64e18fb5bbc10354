"""A mirror's own settings: `config.toml` at its root (optional).

    [import]
    trusted_keys = ["keys/site.pub", "MCowBQYDK2VwAyEA..."]   # files (relative to the root) or base64 keys

    [admission]
    unscanned = "quarantine"   # or "admit": files in formats the scanner does not inspect (HDF5, GGUF, TensorFlow)

    [site]                     # a mirror on a bucket many hosts share (docs/site-s3.md)
    signing_key = "keys/site.key"      # this host signs the refs, allowances and log entries it publishes
    trusted_keys = ["keys/site.pub"]   # and accepts from the bucket only what one of these (or its own key) signed

    [xet]
    layouts_over = 50_000_000_000   # bytes: a larger file that arrives without a Xet layout gets one at admission
                                    # (hubmirror.xet.own_layouts), so serve can hand it to huggingface_hub

    [store]
    url = "s3://bucket/prefix"   # blobs in a bucket instead of blobs/ (overridden by --store and HUBMIRROR_STORE);
                                 # endpoint and credentials come from the AWS chain, never from this file

With trusted keys set, `import` accepts only bundles whose index.json is signed by one of them.
"""

from __future__ import annotations

from pathlib import Path

from hubmirror.errors import UsageError

CONFIG_NAME = "config.toml"
# A file the scanner could not look into is not known to be safe: a legacy Keras .h5 can carry Lambda bytecode, a
# SavedModel graph ops that read and write files, a GGUF a chat template that loaders run. So by default such files
# are quarantined like any other non-clean verdict (fail closed, as scan errors are), and an operator who mirrors
# Keras or TF Hub models on purpose opts in with one line, or allows files one by one.
UNSCANNED_POLICIES = ("quarantine", "admit")
# huggingface_hub downloads a file larger than this through Xet only (its MAX_HTTP_DOWNLOAD_SIZE)
CLIENT_XET_ONLY_OVER = 50_000_000_000


_parsed: dict[Path, tuple[tuple[int, int], dict]] = {}  # path -> ((mtime_ns, size), settings): re-read on change


def load_config(root: Path) -> dict:
    """The settings in `root`/config.toml ({} without one); parsed again only when the file changes."""
    path = Path(root) / CONFIG_NAME
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _parsed.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    import tomllib  # only when there is a file to parse

    try:
        settings = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    _parsed[path] = (stamp, settings)
    return settings


def trusted_keys(root: Path, section: str = "import") -> list:
    """The Ed25519 public keys pinned in `[section] trusted_keys` (files relative to the root, or base64 keys)."""
    from hubmirror.exchange.signing import load_public_key

    entries = load_config(root).get(section, {}).get("trusted_keys", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise UsageError(f"{Path(root) / CONFIG_NAME}: [{section}] trusted_keys must be a list of strings")
    keys = []
    for entry in entries:
        path = Path(root) / entry
        keys.append(load_public_key(path.read_text() if path.is_file() else entry))
    return keys


def site_keys(root: Path) -> tuple | None:
    """`[site]`: (the private key this host signs with or None, the public keys it trusts), or None where the site
    is not signed (neither is set)."""
    from hubmirror.exchange.signing import load_private_key

    path = load_config(root).get("site", {}).get("signing_key")
    if path is not None and not isinstance(path, str):
        raise UsageError(f"{Path(root) / CONFIG_NAME}: [site] signing_key must be a path")
    trusted = trusted_keys(root, "site")
    if path is None and not trusted:
        return None
    return (load_private_key(Path(root) / path) if path else None), trusted


def unscanned_policy(root: Path) -> str:
    """`[admission] unscanned`: whether files with the `unscanned` verdict are quarantined (default) or admitted."""
    policy = load_config(root).get("admission", {}).get("unscanned", UNSCANNED_POLICIES[0])
    if policy not in UNSCANNED_POLICIES:
        raise UsageError(f"{Path(root) / CONFIG_NAME}: [admission] unscanned must be one of "
                         f"{', '.join(map(repr, UNSCANNED_POLICIES))}, not {policy!r}")
    return policy


def layouts_over(root: Path) -> int:
    """`[xet] layouts_over`: files larger than this many bytes get a Xet layout at admission when they arrive
    without one (default: the size above which huggingface_hub downloads through Xet only)."""
    value = load_config(root).get("xet", {}).get("layouts_over", CLIENT_XET_ONLY_OVER)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{Path(root) / CONFIG_NAME}: [xet] layouts_over must be a number of bytes, not {value!r}")
    return value


def store_url(root: Path) -> str | None:
    """`[store] url`: where the blobs live (None: the local `blobs/`)."""
    url = load_config(root).get("store", {}).get("url")
    if url is not None and not isinstance(url, str):
        raise UsageError(f"{Path(root) / CONFIG_NAME}: [store] url must be a string, not {url!r}")
    return url or None
