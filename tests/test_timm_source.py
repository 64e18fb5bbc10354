"""`timm:` sources: the registry index, weights through the HF imitation, and timm itself loading from it."""

import hashlib
import os
import subprocess
import sys

import pytest

pytest.importorskip("timm")

from hubmirror.plugins.timm_models import timm_registry  # noqa: E402

from tests.fakes.model_files import timm_hub_repo  # noqa: E402

NAME = "test_vit.r160_in1k"


@pytest.fixture(scope="session")
def test_vit_files(tmp_path_factory):
    return timm_hub_repo(NAME, tmp_path_factory.mktemp("timm-repo"))


@pytest.fixture
def timm_hub(hub, test_vit_files):
    hub.create_repo(f"timm/{NAME}", test_vit_files)
    return hub


def test_index_puts_every_pretrained_config_in_the_catalog(run):
    registry = timm_registry()
    out = run.json("index", "timm")
    assert out["models"] == len(registry["models"]) > 1000
    hits = run.json("search", "resnet50 a1", "--source", "timm", "--not-cached")
    assert "timm:resnet50.a1_in1k" in [h["key"] for h in hits]
    shown = run.json("show", "timm:resnet50.a1_in1k")
    assert shown["cached"] == 0 and shown["architecture"] == "resnet50" and shown["license"] == "apache-2.0"
    assert shown["metadata"]["hf_hub_id"] == "timm/resnet50.a1_in1k"
    assert shown["metadata"]["input_size"] == [3, 224, 224]
    assert "arxiv:2110.00476" in shown["tags"]
    assert run.json("list") == []  # indexed, not cached
    assert len(run.json("list", "--all")) == out["models"]


def test_pull_fetches_weights_through_the_hf_source(timm_hub, test_vit_files, run, root):
    out = run.json("pull", f"timm:{NAME}")
    assert out[0]["model"] == f"timm:{NAME}"
    assert out[0]["commit"] == timm_hub.repos[f"timm/{NAME}"].branches["main"]
    shown = run.json("show", f"timm:{NAME}")
    assert shown["cached"] == 1 and shown["architecture"] == "test_vit" and shown["task"] == "image-classification"
    files = {f["path"]: f["sha256"] for f in shown["files"]}
    assert files == {p: hashlib.sha256(test_vit_files[p].read_bytes()).hexdigest()
                     for p in ("config.json", "model.safetensors")}
    # a bare architecture name takes timm's default tag
    assert run.json("pull", "timm:test_vit")[0]["model"] == f"timm:{NAME}"


def test_unknown_name_suggests_close_ones(run):
    result = run("pull", "timm:resnet5O.a1_in1k")
    assert result.exit_code == 1
    assert "no pretrained model 'resnet5O.a1_in1k'" in result.output and "resnet50.a1_in1k" in result.output
    assert run("pull", "timm:a/b").exit_code == 2


def test_timm_create_model_pretrained_loads_from_the_imitation(timm_hub, test_vit_files, tmp_path):
    code = (
        "import timm, torch\n"
        f"m = timm.create_model('{NAME}', pretrained=True)\n"
        "from safetensors.torch import load_file\n"
        f"ref = load_file({str(test_vit_files['model.safetensors'])!r})\n"
        "print(all(torch.equal(v, ref[k]) for k, v in m.state_dict().items()))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": timm_hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_url_only_configs_go_through_the_github_release_with_their_hash_prefix(github, run):
    """gcvit_xxtiny.in1k has no hf_hub_id: timm loads its github.com release URL, which follows the GitHub mirror.
    The imitation cannot hold bytes with the real hash prefix, so the check must refuse them."""
    cfg = timm_registry()["models"]["gcvit_xxtiny.in1k"]
    assert not cfg.get("hf_hub_id")
    owner, repo, _, _, tag, name = cfg["url"].split("/", 3)[3].split("/")
    github.create_repo(f"{owner}/{repo}", {"README.md": b"timm"})
    github.add_release(f"{owner}/{repo}", tag, {name: b"not the real weights"})
    result = run("pull", "timm:gcvit_xxtiny.in1k")
    assert result.exit_code == 1
    assert f"does not start with the {name.rsplit('-', 1)[1].split('.')[0]}" in result.output
    assert any(r["path"].endswith(f"/releases/tags/{tag}") for r in github.requests if r["host"] == "api")
    assert any(r["path"].startswith("/releases/") for r in github.requests if r["host"] == "storage")
    assert run.json("list") == []
