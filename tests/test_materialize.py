"""`hubmirror materialize`: HF caches and TORCH_HOME written from the store load with no network at all, and timm
loads through `hubmirror serve`."""

import hashlib
import os
import subprocess
import sys

import pytest

from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID, silero_hub_repo, timm_hub_repo

TIMM_NAME = "test_vit.r160_in1k"


def run_py(code: str, env: dict, *args) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2500:]
    return done.stdout.strip().splitlines()[-1]


def offline_env(**extra) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", **extra}
    return env


def test_hf_cache_loads_offline_with_sentence_transformers(minilm_hub, minilm, run, tmp_path):
    pytest.importorskip("sentence_transformers")
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    cache = tmp_path / "hf-cache"
    out = run.json("materialize", "--layout", "hf-cache", str(cache), f"hf:{MINILM_REPO_ID}")
    assert out["files"] == len(minilm) and out["linked"] == len(minilm)
    folder = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    commit = (folder / "refs" / "main").read_text()
    snapshot = folder / "snapshots" / commit
    assert (snapshot / "model.safetensors").is_symlink()
    assert (cache / "CACHEDIR.TAG").is_file()
    code = ("import sys, json\nfrom sentence_transformers import SentenceTransformer\n"
            "m = SentenceTransformer(sys.argv[1], device='cpu')\n"
            "print(json.dumps(m.encode(['offline'])[0][:4].tolist()))")
    offline = run_py(code, offline_env(HF_HUB_CACHE=str(cache)), MINILM_REPO_ID)
    direct = run_py(code, offline_env(), str(minilm["config.json"].parent))
    assert offline == direct
    # hf cache verify (huggingface_hub's own checker) agrees with the layout
    import huggingface_hub as hf

    info = hf.scan_cache_dir(cache)
    assert [r.repo_id for r in info.repos] == [MINILM_REPO_ID]


def test_timm_loads_through_the_server_and_from_a_materialised_cache(hub, run, root, tmp_path):
    pytest.importorskip("timm")
    hub.create_repo(f"timm/{TIMM_NAME}", timm_hub_repo(TIMM_NAME, tmp_path / "repo"))
    assert run("pull", f"timm:{TIMM_NAME}").exit_code == 0
    hub.stop()
    code = (f"import timm, torch\nm = timm.create_model('{TIMM_NAME}', pretrained=True)\n"
            "print(round(float(sum(p.double().sum() for p in m.parameters())), 6))")
    from safetensors.torch import load_file

    expected = round(float(sum(t.double().sum() for t in load_file(tmp_path / "repo" / "model.safetensors").values()
                                if t.is_floating_point())), 6)
    with MirrorServer(root) as server:
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
        assert float(run_py(code, env)) == pytest.approx(expected, rel=1e-6)
    cache = tmp_path / "materialised"
    run.json("materialize", "--layout", "hf-cache", str(cache), f"timm:{TIMM_NAME}")
    assert float(run_py(code, offline_env(HF_HUB_CACHE=str(cache)))) == pytest.approx(expected, rel=1e-6)


def test_torch_home_loads_torch_hub_repos_and_checkpoints_offline(github, run, tmp_path):
    torch = pytest.importorskip("torch")
    github.create_repo("snakers4/silero-vad", silero_hub_repo())
    assert run("pull", "torchhub:snakers4/silero-vad::silero_vad").exit_code == 0
    weights = tmp_path / f"tiny-{'0' * 8}.pth"
    torch.save({"w": torch.arange(4.0)}, weights)
    named = tmp_path / f"tiny-{hashlib.sha256(weights.read_bytes()).hexdigest()[:8]}.pth"
    weights.rename(named)
    assert run("pull", f"file:{named}").exit_code == 0
    home = tmp_path / "torch-home"
    run.json("materialize", "--layout", "torch-home", str(home))
    assert (home / "hub" / "snakers4_silero-vad_main" / "hubconf.py").is_file()
    assert "snakers4_silero-vad" in (home / "hub" / "trusted_list").read_text()
    (tmp_path / "stubs" / "torchaudio").mkdir(parents=True)
    (tmp_path / "stubs" / "torchaudio" / "__init__.py").write_text("")
    code = ("import sys, torch\n"
            "model, utils = torch.hub.load('snakers4/silero-vad:main', 'silero_vad', trust_repo=True, verbose=False)\n"
            "sd = torch.hub.load_state_dict_from_url('http://127.0.0.1:9/models/' + sys.argv[1], check_hash=True)\n"
            "print(round(model(torch.zeros(512), 16000).item(), 3) >= 0, sd['w'].tolist())")
    env = offline_env(TORCH_HOME=str(home), PYTHONPATH=str(tmp_path / "stubs"))
    assert run_py(code, env, named.name) == "True [0.0, 1.0, 2.0, 3.0]"


def test_dir_layout_and_copy_mode(hub, run, tmp_path):
    hub.create_repo("org/m", {"config.json": b'{"a": 1}', "sub/w.bin": b"weights"})
    assert run("pull", "hf:org/m").exit_code == 0
    out = run.json("materialize", "--layout", "dir", "--copy", str(tmp_path / "plain"))
    assert out["copied"] == 2 and out["linked"] == 0
    assert (tmp_path / "plain" / "org" / "m" / "sub" / "w.bin").read_bytes() == b"weights"
    assert os.access(tmp_path / "plain" / "org" / "m" / "config.json", os.R_OK)


def test_unknown_layouts_and_escaping_paths_are_refused(tmp_path):
    """The core names the registered layouts when asked for another, and its placer keeps every write inside."""
    from hubmirror.errors import HubmirrorError, UsageError
    from hubmirror.exchange.materialize import MaterializeReport, Placer, materialize
    from hubmirror.mirror import Mirror
    from hubmirror.plugin_manager import PluginRegistry

    registry = PluginRegistry(load_entry_points=False)
    mirror = Mirror.open(tmp_path / "mirror", create=True)
    try:
        with pytest.raises(UsageError, match=r"unknown layout 'nope' \(registered: dir, hf-cache, torch-home\)"):
            materialize(mirror, registry, "nope", tmp_path / "out", [])
        target = tmp_path / "target"
        target.mkdir()
        (target / "away").symlink_to(tmp_path)
        placer = Placer(mirror, registry, target, False, MaterializeReport())
        for path in ("../escaped", "away/escaped"):
            with pytest.raises(HubmirrorError, match="escaped"):
                placer.write_text(path, "no")
        assert not (tmp_path / "escaped").exists()
    finally:
        mirror.close()
