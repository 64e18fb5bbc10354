"""Web catalog pages over a catalog of 1,000,000 synthetic models (search_1m_models.py's generator) plus one really
pulled model (MiniLM, through the Hugging Face imitation, with benchmark rows): p50/p99 of `/`, `/models?search=…`
(with and without filters) and the model page, each fetched from a `hubmirror serve` process over keep-alive HTTP.
The baseline, measured in the same run against the same server: the Hub API's JSON for the same model
(`/api/models/{repo}`). Target: every page well under 100 ms.

    python benchmarks/web_pages.py [--models 1000000] [--requests 200] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests
from common import VENV_BIN, free_port, start_listening, stop
from search_1m_models import TASKS, WORDS, build

from hubmirror.catalog import Catalog
from tests.conftest import Cli
from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import MINILM_REPO_ID, minilm_files


def prepare(root: Path, models: int) -> None:
    """The synthetic catalog (built once, reused), then MiniLM pulled into it with three benchmark rows."""
    path = root / "catalog.db"
    if not path.exists() or Catalog(path).db["models"].count < models:
        for old in root.glob("catalog.db*"):
            old.unlink()
        build(path, models, random.Random(42))
    catalog = Catalog(path)
    model = catalog.model(f"hf:{MINILM_REPO_ID}")
    if model is None or not model["cached"]:
        with FakeHub(xet=False) as hub:
            hub.create_repo(MINILM_REPO_ID, minilm_files())
            result = Cli(root, hub.url)("pull", f"hf:{MINILM_REPO_ID}")
            assert result.exit_code == 0, result.output
        commit = catalog.model(f"hf:{MINILM_REPO_ID}")["latest_commit"]
        for batch, p50 in ((1, 4.0), (8, 19.0), (32, 70.0)):
            catalog.record_benchmark({"model_key": f"hf:{MINILM_REPO_ID}", "commit_id": commit, "status": "ok",
                                      "device": "cpu", "dtype": "fp32", "batch_size": batch, "latency_p50_ms": p50,
                                      "latency_p90_ms": p50 * 1.1, "latency_p99_ms": p50 * 1.3,
                                      "throughput": batch * 1000 / p50, "parameters": 22_713_216})
    catalog.close()


def timed(session: requests.Session, url: str) -> float:
    """Milliseconds for one GET, body read; anything but a 200 stops the benchmark."""
    start = time.perf_counter()
    response = session.get(url, timeout=30)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-web")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work, args.models)
    rng = random.Random(7)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    port = free_port()
    server = start_listening([str(VENV_BIN / "hubmirror"), "--root", str(args.work), "serve", "--port", str(port)],
                             port)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "API JSON (baseline)": lambda: f"/api/models/{MINILM_REPO_ID}",
        "/": lambda: "/",
        "/models?search=1 word": lambda: f"/models?search={rng.choices(WORDS, weights)[0]}",
        "/models?search=2 words": lambda: f"/models?search={'+'.join(rng.choices(WORDS, weights, k=2))}",
        "/models search+task+p=2": lambda: f"/models?search={rng.choices(WORDS, weights)[0]}"
                                           f"&pipeline_tag={rng.choice(TASKS)}&p=2",
        "/models filters only": lambda: f"/models?pipeline_tag={rng.choice(TASKS)}&cached=true",
        "model page": lambda: f"/{MINILM_REPO_ID}",
        "tree page": lambda: f"/{MINILM_REPO_ID}/tree/main",
    }
    try:
        with requests.Session() as session:
            first = timed(session, base + "/")  # the first `/` counts the catalog (later ones reuse the counts)
            print(f"first / after start: {first:.1f} ms (counts a million models once per catalog change)")
            results = {}
            for name, path in pages.items():
                for _ in range(10):  # warm-up: connections, caches
                    timed(session, base + path())
                times = [timed(session, base + path()) for _ in range(args.requests)]
                results[name] = (statistics.median(times), statistics.quantiles(times, n=100)[98])
    finally:
        stop(server)
    baseline = results["API JSON (baseline)"][0]
    for name, (p50, p99) in results.items():
        print(f"{name:26s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  p50 ratio to API JSON {p50 / baseline:5.2f}x")
    worst = max(p99 for name, (_, p99) in results.items() if name != "API JSON (baseline)")
    print(f"worst page p99: {worst:.1f} ms (target: well under 100 ms) over {args.models:,} catalogued models")


if __name__ == "__main__":
    main()
