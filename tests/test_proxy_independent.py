"""`hubmirror serve --upstream` in front of a Hugging Face-compatible server nobody here wrote: olah (PyPI), offline
on 127.0.0.1. Unmodified clients load through a cold proxy; once olah is stopped, fresh client caches still load
everything through the proxy, and the proxied revision is a normal catalog revision."""

import contextlib
from pathlib import Path

import pytest
import requests

from hubmirror.mirror import Mirror
from tests.conftest import Cli
from tests.fakes.independent_hf import olah_hub, unavailable_reason
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID, timm_hub_repo
from tests.test_proxy import TIMM_LOAD, TIMM_NAME, in_client, sha256, tree, wait_catalogued
from tests.test_serve import EMBED

hf = pytest.importorskip("huggingface_hub")
pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@contextlib.contextmanager
def proxy_outliving_olah(root: Path, repo: str, files: dict, base_dir: Path):
    """(olah's URL, the proxy's URL, a function that stops olah): a proxy of a new mirror at `root` in front of olah
    serving `files` as `repo`, that keeps running after olah stops."""
    Mirror.open(root, create=True).close()
    with contextlib.ExitStack() as proxy_stack, contextlib.ExitStack() as olah_stack:
        olah = olah_stack.enter_context(olah_hub(repo, files, base_dir=base_dir))
        server = proxy_stack.enter_context(MirrorServer(root, upstream={"endpoint": olah}))

        def stop_olah() -> None:
            olah_stack.close()
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{olah}/api/models/{repo}/revision/main", timeout=5)

        yield olah, server.url, stop_olah


def test_minilm_through_a_cold_proxy_in_front_of_olah_and_after_it_stops(minilm, root, tmp_path):
    pytest.importorskip("sentence_transformers")
    expected = {name: sha256(path) for name, path in minilm.items()}
    with proxy_outliving_olah(root, MINILM_REPO_ID, minilm, tmp_path) as (olah, proxy, stop_olah):
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=proxy, cache_dir=tmp_path / "a")
        assert Path(folder).name == olah.commit and tree(folder) == expected
        path = hf.hf_hub_download(MINILM_REPO_ID, "modules.json", endpoint=proxy, cache_dir=tmp_path / "b")
        assert sha256(path) == expected["modules.json"]
        local = str(Path(minilm["config.json"]).parent)  # the same files read from disk, no server involved
        direct = in_client(EMBED, proxy, tmp_path / "local", local)
        assert in_client(EMBED, proxy, tmp_path / "cold", MINILM_REPO_ID) == direct
        api = hf.HfApi(endpoint=proxy)  # olah says RepoNotFound for a missing revision: the client is told which
        with pytest.raises(hf.errors.RevisionNotFoundError):
            api.model_info(MINILM_REPO_ID, revision="no-such-branch")
        with pytest.raises(hf.errors.RepositoryNotFoundError):
            api.model_info("nobody/nothing", revision="no-such-branch")
        stop_olah()
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=proxy, cache_dir=tmp_path / "c")
        assert Path(folder).name == olah.commit and tree(folder) == expected
        path = hf.hf_hub_download(MINILM_REPO_ID, "config.json", endpoint=proxy, cache_dir=tmp_path / "d")
        assert sha256(path) == expected["config.json"]
        assert in_client(EMBED, proxy, tmp_path / "fresh", MINILM_REPO_ID) == direct
        wait_catalogued(root, MINILM_REPO_ID)
    run = Cli(root)
    shown = run.json("show", f"hf:{MINILM_REPO_ID}")
    assert {f["path"]: f["sha256"] for f in shown["files"]} == expected
    assert run.json("verify")["ok"] is True


def test_timm_create_model_through_a_cold_proxy_in_front_of_olah_and_after_it_stops(root, tmp_path):
    pytest.importorskip("timm")
    files = timm_hub_repo(TIMM_NAME, tmp_path / "repo")
    weights = str(files["model.safetensors"])
    with proxy_outliving_olah(root, f"timm/{TIMM_NAME}", files, tmp_path) as (_, proxy, stop_olah):
        assert in_client(TIMM_LOAD, proxy, tmp_path / "cold", TIMM_NAME, weights) == "True"
        stop_olah()
        assert in_client(TIMM_LOAD, proxy, tmp_path / "fresh", TIMM_NAME, weights) == "True"
        wait_catalogued(root, f"timm/{TIMM_NAME}")
