"""Hugging Face datasets beside models: `hf:datasets/ORG/NAME` pulled through the same pipeline (verification,
admission, catalog rows of their own kind), searched by kind, and served at the Hub's dataset URLs to the official
clients: `datasets.load_dataset`, `HfFileSystem` (`hf://datasets/…`) with pandas, on `serve` and through a cold
`serve --upstream`. The dataset is a real one, built in the test by the `datasets` library (parquet, two splits, a
card with its YAML header)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hubmirror.catalog import Catalog
from hubmirror.mirror import Mirror
from tests.conftest import Cli
from tests.fakes.mirror_server import MirrorServer
from tests.site_fixtures import bucket_url, hosts, registry  # noqa: F401 (fixtures)
from tests.test_proxy import wait_catalogued

datasets = pytest.importorskip("datasets")
hf = pytest.importorskip("huggingface_hub")
REPO = "org/tiny-reviews"
CARD = """---
license: mit
task_categories:
- text-classification
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
# Tiny reviews

Five short reviews and their labels, for tests.
"""
LOAD = """
import json, sys, datasets
loaded = datasets.load_dataset(sys.argv[1])
print(json.dumps({split: loaded[split].to_dict() for split in sorted(loaded)}, sort_keys=True))
"""
READ_PARQUET = """
import json, sys, pandas
from huggingface_hub import HfFileSystem
fs = HfFileSystem(endpoint=sys.argv[2])
names = sorted(fs.glob(f"datasets/{sys.argv[1]}/data/*.parquet"))
frames = {name.rsplit("/", 1)[1]: pandas.read_parquet(fs.open(name)).to_dict("list") for name in names}
print(json.dumps(frames, sort_keys=True))
"""


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> dict[str, Path]:
    """The files of a small real dataset repo, written by the `datasets` library: a parquet file per split."""
    folder = tmp_path_factory.mktemp("tiny-dataset")
    splits = {"train": {"text": ["good", "bad", "fine"], "label": [1, 0, 1]},
              "test": {"text": ["great", "awful"], "label": [1, 0]}}
    files = {"README.md": folder / "README.md"}
    files["README.md"].write_text(CARD)
    for split, columns in splits.items():
        path = folder / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(exist_ok=True)
        datasets.Dataset.from_dict(columns).to_parquet(str(path))
        files[f"data/{path.name}"] = path
    return files


def in_client(code: str, endpoint: str, home: Path, *args: str) -> str:
    """The last line `code` prints in a fresh interpreter whose huggingface_hub and datasets ask `endpoint`."""
    env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_ENDPOINT": endpoint, "HF_HOME": str(home),
           "HF_DATASETS_CACHE": str(home / "datasets"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_dataset_is_pulled_searched_by_kind_and_loaded_from_serve(hub, run, root, tiny_dataset, tmp_path):
    hub.create_repo(REPO, tiny_dataset, repo_type="dataset")
    hub.create_repo(REPO, {"config.json": b"{}"})  # a model of the same id: another repository
    direct = in_client(LOAD, hub.url, tmp_path / "direct", REPO)
    assert run("pull", f"hf:datasets/{REPO}").exit_code == 0
    assert run("pull", f"hf:{REPO}").exit_code == 0
    shown = run.json("show", f"hf:datasets/{REPO}")
    assert shown["kind"] == "dataset" and shown["task"] == "text-classification" and shown["license"] == "mit"
    assert [r["key"] for r in run.json("search", "tiny", "--kind", "dataset")] == [f"hf:datasets/{REPO}"]
    assert [r["key"] for r in run.json("search", "tiny", "--kind", "model")] == [f"hf:{REPO}"]
    with MirrorServer(root) as server:
        assert in_client(LOAD, server.url, tmp_path / "served", REPO) == direct
        frames = in_client(READ_PARQUET, server.url, tmp_path / "fs", REPO, server.url)
        assert frames == in_client(READ_PARQUET, hub.url, tmp_path / "fs-direct", REPO, hub.url)
        api = hf.HfApi(endpoint=server.url)
        info = api.dataset_info(REPO)
        assert info.id == REPO and {s.rfilename for s in info.siblings} == set(tiny_dataset)
        assert [d.id for d in api.list_datasets()] == [REPO] and [m.id for m in api.list_models()] == [REPO]
        assert api.model_info(REPO).sha != info.sha  # the model and the dataset of one id stay apart
        assert requests.get(f"{server.url}/api/models/datasets/{REPO}").status_code == 404


def test_a_cold_proxy_serves_a_dataset_and_catalogues_it(hub, root, tiny_dataset, tmp_path):
    hub.create_repo(REPO, tiny_dataset, repo_type="dataset")
    direct = in_client(LOAD, hub.url, tmp_path / "direct", REPO)
    Mirror.open(root, create=True).close()
    frames = in_client(READ_PARQUET, hub.url, tmp_path / "fs-direct", REPO, hub.url)
    with MirrorServer(root, upstream={"endpoint": hub.url}) as server:
        assert in_client(LOAD, server.url, tmp_path / "cold", REPO) == direct
        assert in_client(READ_PARQUET, server.url, tmp_path / "fs", REPO, server.url) == frames
        wait_catalogued(root, f"datasets/{REPO}")
        hub.stop()
        assert in_client(LOAD, server.url, tmp_path / "fresh", REPO) == direct
    catalog = Catalog(root / "catalog.db", create=False)
    assert catalog.model(f"hf:datasets/{REPO}")["kind"] == "dataset"
    catalog.close()


def test_a_dataset_travels_in_a_bundle_and_into_an_offline_client_cache(hub, run, root, tiny_dataset, tmp_path):
    hub.create_repo(REPO, tiny_dataset, repo_type="dataset")
    direct = in_client(LOAD, hub.url, tmp_path / "direct", REPO)
    assert run("pull", f"hf:datasets/{REPO}").exit_code == 0
    bundle = tmp_path / "tiny.tar"
    assert run("export", str(bundle), f"hf:datasets/{REPO}").exit_code == 0
    other = Cli(tmp_path / "airgapped")
    assert other("import", str(bundle)).exit_code == 0
    assert other.json("show", f"hf:datasets/{REPO}")["kind"] == "dataset"
    cache = tmp_path / "hf-cache"
    assert other("materialize", "--layout", "hf-cache", str(cache)).exit_code == 0
    assert (cache / "datasets--org--tiny-reviews").is_dir() and not list(cache.glob("models--*"))
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "offline-datasets")}
    # offline, `datasets` loads a Hub dataset from the folder huggingface_hub finds in its cache
    offline = LOAD.replace("load_dataset(sys.argv[1])", "load_dataset(__import__('huggingface_hub').snapshot_download("
                                                        "sys.argv[1], repo_type='dataset'))")
    done = subprocess.run([sys.executable, "-c", offline, REPO], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == direct


def test_the_web_catalog_lists_datasets_by_kind_with_their_own_snippets(hub, run, root, tiny_dataset):
    hub.create_repo(REPO, tiny_dataset, repo_type="dataset")
    hub.create_repo("org/a-model", {"config.json": b"{}"})
    assert run("pull", f"hf:datasets/{REPO}").exit_code == 0
    assert run("pull", "hf:org/a-model").exit_code == 0
    with MirrorServer(root) as server:
        page = requests.get(f"{server.url}/models", params={"kind": "dataset"}).text
        assert f'href="/datasets/{REPO}"' in page and "org/a-model" not in page
        page = requests.get(f"{server.url}/models", params={"kind": "model"}).text
        assert "org/a-model" in page and REPO not in page
        assert requests.get(f"{server.url}/models", params={"kind": "space"}).status_code == 400
        dataset_page = requests.get(f"{server.url}/datasets/{REPO}")
        assert dataset_page.status_code == 200 and "load_dataset" in dataset_page.text
        assert "AutoModel" not in dataset_page.text and "data/train-00000-of-00001.parquet" in dataset_page.text
        assert requests.get(f"{server.url}/datasets/{REPO}/tree/main/data").status_code == 200


def test_a_cold_proxy_in_front_of_olah_serves_a_dataset(root, tiny_dataset, tmp_path):
    from tests.fakes.independent_hf import olah_hub, unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(unavailable_reason())
    Mirror.open(root, create=True).close()
    with olah_hub(REPO, tiny_dataset, base_dir=tmp_path, repo_type="datasets") as olah:
        with MirrorServer(root, upstream={"endpoint": olah}) as server:
            loaded = in_client(LOAD, server.url, tmp_path / "cold", REPO)
            frames = in_client(READ_PARQUET, server.url, tmp_path / "fs", REPO, server.url)
            wait_catalogued(root, f"datasets/{REPO}")
    assert '"label": [1, 0, 1]' in loaded and '"text": ["good", "bad", "fine"]' in loaded
    assert "train-00000-of-00001.parquet" in frames


def test_a_dataset_crosses_an_oci_registry_and_a_shared_bucket(hub, run, tiny_dataset, tmp_path, hosts,  # noqa: F811
                                                                registry):  # noqa: F811
    from tests.fakes import registry as fake_registry
    from tests.test_site_catalog import do_pull

    hub.create_repo(REPO, tiny_dataset, repo_type="dataset")
    assert run("pull", f"hf:datasets/{REPO}").exit_code == 0
    with fake_registry.registry(tmp_path / "registry") as reg:
        pushed = run.json("export", f"oci://{reg.host}/data/tiny:v1", f"hf:datasets/{REPO}", "--plain-http")
        target = Cli(tmp_path / "airgapped")
        target.json("import", f"oci://{reg.host}/data/tiny:v1", "--plain-http")
    assert pushed["tags"] and target.json("show", f"hf:datasets/{REPO}")["kind"] == "dataset"
    a, b = hosts("a"), hosts("b")  # one bucket (moto), two hosts: the dataset's kind and refs travel
    hub.repos[f"datasets/{REPO}"].tags["v1"] = hub.repos[f"datasets/{REPO}"].branches["main"]
    do_pull(a, registry, hub, f"hf:datasets/{REPO}@v1")
    assert b.writer.refresh() == 1
    model = b.catalog.model(f"hf:datasets/{REPO}")
    assert model["kind"] == "dataset" and [(r["name"], r["kind"]) for r in b.catalog.refs(model["key"])] == \
        [("v1", "tag")]
    assert b.catalog.search("tiny", kind="dataset")[0]["key"] == f"hf:datasets/{REPO}"
