"""What signing a site's bucket costs (`[site]` keys, hubmirror/sitelog/signed.py), in one run, loopback only.

--models small repos are pulled into a site (moto S3 in a process of its own) by an unsigning host under one prefix
and by a signing host under another; then an empty root rebuilds its catalog from each log (`refresh(full=True)`:
every log entry, ref object and record read, and every signature checked), taking turns going first. Prints the
median wall times of --runs and the ratios signed / unsigned, for the pulls and for the rebuild.

    python benchmarks/site_signing.py [--models 100] [--runs 5]

moto is a single-process Python S3 server on the same machine: each object read costs it milliseconds, so the
ratios show signing's share of a site's own work next to a slow-ish bucket, not next to real S3's latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from common import start_moto, stop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.fakes.hf_hub import FakeHub


def host(root: Path, url: str, keys):
    from hubmirror.catalog import Catalog
    from hubmirror.mirror import Mirror
    from hubmirror.sitelog.log import SiteLog
    from hubmirror.sitelog.signed import SignedBucket
    from hubmirror.sitelog.writer import SiteWriter
    from hubmirror.store import LocalBlobStore
    from hubmirror.store.s3.bucket import S3Bucket
    from hubmirror.store.s3.location import BucketLocation

    root.mkdir(parents=True)
    store = LocalBlobStore(root.parent / "blobs")
    store.initialise()
    catalog = Catalog(root / "catalog.db")
    bucket = S3Bucket(BucketLocation.parse(url))
    site = SiteLog(SignedBucket(bucket, *keys) if keys else bucket, root.name)
    return Mirror(root, catalog, store, SiteWriter(catalog, store, site))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from hubmirror.cli.selection import parse_ref
    from hubmirror.plugin_manager import PluginRegistry
    from hubmirror.pull import pull

    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-signing-"))
    moto, endpoint = start_moto()
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    registry = PluginRegistry(load_entry_points=False)
    key = Ed25519PrivateKey.generate()
    modes = {"unsigned": None, "signed": (key, [key.public_key()])}
    try:
        from hubmirror.store.s3.location import client

        bucket = f"models-{uuid.uuid4().hex[:12]}"
        client().create_bucket(Bucket=bucket)
        pulls = {}
        with FakeHub(xet=False) as hub:
            for i in range(args.models):
                hub.create_repo(f"org/m{i}", {"config.json": json.dumps({"n": i}).encode(), "w.txt": b"w" * i})
            for mode, keys in modes.items():
                writer = host(work / f"writer-{mode}", f"s3://{bucket}/{mode}", keys)
                start = time.perf_counter()
                for i in range(args.models):
                    ref = parse_ref(registry, f"hf:org/m{i}")
                    pull(writer, registry, ref, writer.source_context(registry, hub.url))
                pulls[mode] = time.perf_counter() - start
                writer.close()
        print(f"{args.models} pulls into the site: unsigned {pulls['unsigned']:.2f} s, signed {pulls['signed']:.2f} s;"
              f" ratio signed/unsigned {pulls['signed'] / pulls['unsigned']:.2f}x", flush=True)
        times = {mode: [] for mode in modes}
        for run in range(args.runs):
            for mode in list(modes)[:: 1 if run % 2 == 0 else -1]:
                reader = host(work / f"reader-{mode}-{run}", f"s3://{bucket}/{mode}", modes[mode])
                start = time.perf_counter()
                applied = reader.writer.refresh(full=True)
                times[mode].append(time.perf_counter() - start)
                assert applied == args.models and len(reader.catalog.models()) == args.models
                reader.close()
        print("rebuild times (s): " + "; ".join(f"{m} " + ", ".join(f"{t:.2f}" for t in ts) for m, ts in times.items()))
        unsigned, signed = statistics.median(times["unsigned"]), statistics.median(times["signed"])
        print(f"rebuild of an empty root from {args.models} models (median of {args.runs}): unsigned {unsigned:.2f} s,"
              f" signed {signed:.2f} s; ratio signed/unsigned {signed / unsigned:.2f}x")
    finally:
        stop(moto)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
