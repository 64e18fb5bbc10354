import json
import os
import sys

import pytest
from click.testing import CliRunner

from hubmirror.cli import cli
from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import MINILM_REPO_ID, minilm_files

TOKEN = "hf_test_secret_token_value"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the user's HF token, HF endpoint or mirror home."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HUBMIRROR_HOME", "HUBMIRROR_PLUGINS_DIR",
                 "HUBMIRROR_KAGGLE_ENDPOINT", "GITHUB_TOKEN", "KAGGLE_API_TOKEN", "NGC_API_KEY", "NGC_CLI_API_KEY",
                 "HUBMIRROR_STORE", "HUBMIRROR_RAY_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HUBMIRROR_RETRY_BASE", "0.01")  # retries keep their count; tests need not sleep through them
    monkeypatch.setenv("HUBMIRROR_RETRY_MAX_WAIT", "0.05")


@pytest.fixture
def hub():
    # The resolve path: the faults these tests inject (corruption, resets, throttling) are on it; Xet has its own
    # imitation and tests (tests/test_xet.py), and HF_HUB_DISABLE_XET keeps clients and pulls off it here.
    with FakeHub(tree_page_size=4, tokens={TOKEN}, xet=False) as fake:
        yield fake


@pytest.fixture(scope="session")
def minilm():
    return minilm_files()


@pytest.fixture
def minilm_hub(hub, minilm):
    hub.create_repo(MINILM_REPO_ID, minilm)
    return hub


@pytest.fixture
def root(tmp_path):
    return tmp_path / "mirror"


class Cli:
    """Runs the real click app in-process against one mirror root and one hub."""

    def __init__(self, root, endpoint=None):
        self.root = root
        self.endpoint = endpoint

    def __call__(self, *args, env=None):
        full_env = {"HF_ENDPOINT": self.endpoint} if self.endpoint else {}
        full_env.update(env or {})
        result = CliRunner().invoke(cli, ["--root", str(self.root), "--quiet", *args], env=full_env,
                                    catch_exceptions=False)
        return result

    def json(self, *args, env=None):
        result = self(*args, "--json", env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def run(root, hub):
    return Cli(root, hub.url)


def pytest_configure(config):
    sys._called_from_test = True
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def github(monkeypatch):
    from tests.fakes.github import FakeGitHub

    with FakeGitHub() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


def noise(n: int) -> bytes:
    """Random bytes that cannot pass for a pickle's PROTO header nor a safetensors header (a `{` at byte 8), which
    admission would rightly judge as such."""
    data = bytearray(b"\x00" + os.urandom(max(0, n - 1)))
    if len(data) > 8 and data[8] == ord("{"):
        data[8] = 0
    return bytes(data)


def flip_byte(path, offset: int) -> bytes:
    """Flip one bit of the byte at `offset` of a stored (read-only) blob in place; return the original bytes."""
    os.chmod(path, 0o644)
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return original


# bench settings for tests: a couple of timed steps per model, on the CPU
FAST_BENCH = ["--min-iters", "2", "--min-seconds", "0", "--warmup", "1", "--device", "cpu"]


@pytest.fixture(scope="session")
def tiny_timm(tmp_path_factory):
    """Generated once per session: the first 16 tiny timm models (real architectures, random weights)."""
    from tests.fakes.timm_scale import generate_many, pretrained_names

    pytest.importorskip("timm")
    return generate_many(pretrained_names("tiny")[:16], tmp_path_factory.mktemp("timm-scale"), None, workers=2)
