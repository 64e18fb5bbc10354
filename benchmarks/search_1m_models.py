"""(c) Search over a catalog of 1,000,000 synthetic models: p50/p99 of `Catalog.search` for 1-2 word queries (with and
without filters), and the wall time of a cold `hubmirror search` process. Target: p50 <= 10 ms.
The baseline is `python -c pass` for the cold CLI run.

    python benchmarks/search_1m_models.py [--models 1000000] [--queries 500] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import VENV_BIN, median_wall

from hubmirror.catalog import Catalog, search_facets
from hubmirror.records import ModelMetadata

TASKS = ["text-classification", "image-classification", "sentence-similarity", "text-generation", "object-detection",
         "automatic-speech-recognition", "feature-extraction", "translation", "summarization", "image-segmentation"]
LICENSES = ["apache-2.0", "mit", "cc-by-4.0", "openrail", "llama3", "bsd-3-clause", "other"]
LIBRARIES = ["transformers", "timm", "sentence-transformers", "diffusers", "onnx", "keras", "torchscript"]
ARCHS = ["BertModel", "ResNet", "VisionTransformer", "LlamaForCausalLM", "T5ForConditionalGeneration", "WhisperModel",
         "ConvNeXt", "EfficientNet", "GPT2LMHeadModel", "CLIPModel", "YOLOv8", "MistralForCausalLM"]
WORDS = ("model trained fine tuned dataset english multilingual sentence embedding image vision language large small "
         "base tiny distilled quantized instruct chat code medical legal finance speech audio whisper detection "
         "segmentation classification retrieval semantic search clustering summarization translation generation "
         "diffusion stable latent transformer convolutional residual attention contrastive pretrained imagenet coco "
         "squad wikipedia books reddit arxiv pubmed github stackoverflow faster lightweight mobile edge int8 fp16 "
         "lora adapter merged uncensored reasoning math science biology chemistry protein molecule genome weather "
         "satellite remote sensing depth pose face ocr handwriting document table chart video action tracking "
         "anomaly forecasting timeseries tabular recommendation ranking reranker bi encoder cross sparse dense").split()
SYNTHETIC = [f"term{i}" for i in range(20_000)]
SIZES = ["tiny", "small", "base", "large", "xl", "7b", "13b", "70b"]


def build(path: Path, n: int, rng: random.Random) -> None:
    catalog = Catalog(path)
    db = catalog.db
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    rows = []
    start = time.perf_counter()
    for i in range(n):
        org = f"org{rng.randrange(50_000)}"
        arch = rng.choice(ARCHS)
        name = f"{org}/{arch.lower()[:8]}-{rng.choice(SIZES)}-{rng.choice(SYNTHETIC)}-{i}"
        words = rng.choices(WORDS, weights, k=8) + rng.choices(SYNTHETIC, k=4)
        meta = ModelMetadata("hf", name, task=rng.choice(TASKS), library=rng.choice(LIBRARIES), architecture=arch,
                             license=rng.choice(LICENSES), tags=rng.sample(WORDS, 4), description=" ".join(words),
                             downloads=rng.randrange(10_000_000))
        cached = rng.random() < 0.01
        rows.append((meta.key, "hf", name, meta.task, meta.library, arch, meta.license, " ".join(meta.tags),
                     meta.description, meta.downloads, int(cached), search_facets(meta, cached)))
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    print(f"built {n} models in {time.perf_counter() - start:.1f} s", flush=True)
    catalog.close()


def _insert(db, rows) -> None:
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO models (key, source, model_id, task, library, architecture, license, tags, description, "
            "downloads, cached, facets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rebuild", action="store_true", help="build the synthetic catalog even if one is there")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-search")
    args = parser.parse_args()
    rng = random.Random(42)
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "catalog.db"
    if not path.exists() or Catalog(path).db["models"].count != args.models or args.rebuild:
        for p in args.work.glob("catalog.db*"):
            p.unlink()
        build(path, args.models, rng)
    catalog = Catalog(path)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    kinds = {
        "1 word": lambda: (" ".join(rng.choices(WORDS, weights, k=1)), {}),
        "2 words": lambda: (" ".join(rng.choices(WORDS, weights, k=2)), {}),
        "2 words + task filter": lambda: (" ".join(rng.choices(WORDS, weights, k=2)), {"task": rng.choice(TASKS)}),
        "name word + size": lambda: (f"{rng.choice(ARCHS).lower()[:8]} {rng.choice(SIZES)}", {}),
        "exact id": lambda: (f"{rng.randrange(args.models)}", {}),
        "filters only": lambda: ("", {"license": rng.choice(LICENSES), "cached": True}),
    }
    all_times = []
    for name, make in kinds.items():
        times = []
        for _ in range(args.queries):
            query, filters = make()
            t0 = time.perf_counter()
            catalog.search(query, limit=20, **filters)
            times.append((time.perf_counter() - t0) * 1000)
        all_times += times
        q = statistics.quantiles(times, n=100)
        print(f"{name:24s} p50 {statistics.median(times):7.2f} ms  p99 {q[98]:7.2f} ms")
    q = statistics.quantiles(all_times, n=100)
    print(f"all queries: p50 {statistics.median(all_times):.2f} ms, p99 {q[98]:.2f} ms (target p50 <= 10 ms)")
    catalog.close()
    cli = median_wall([str(VENV_BIN / "hubmirror"), "--root", str(args.work), "search", "sentence embedding"], 5)
    base = median_wall([sys.executable, "-c", "pass"], 5)
    print(f"cold `hubmirror search` process: {cli * 1000:.0f} ms (python -c pass: {base * 1000:.0f} ms, "
          f"ratio {cli / base:.2f}x)")


if __name__ == "__main__":
    main()
