"""Which S3 client library the S3 store uses: upload and download throughput of one object through boto3 (the
multipart transfer manager, threads) and obstore (Rust object_store, async, multipart), against the same S3 server;
plus hubmirror's own S3BlobStore (writer with 16 MiB parts and server-side assembly; ranged reader), which is built
on boto3.

The server is moto in server mode in a process of its own on 127.0.0.1 (its Python request handling may well be the
bottleneck: the numbers rank clients against one server, they are no S3 ceiling), or any S3 endpoint given with
--endpoint (credentials from the AWS chain). obstore is not a hubmirror dependency: install it elsewhere and put it
on PYTHONPATH, e.g.

    .venv/bin/pip install --target /tmp/s3bench-obstore obstore
    PYTHONPATH=/tmp/s3bench-obstore .venv/bin/python benchmarks/s3_client_choice.py --size-mib 256 --runs 3

Prints MB/s per client and direction (median of --runs), and the ratio obstore / boto3.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import time
import uuid

from common import start_moto, stop  # common also puts the repository root on sys.path

PART = 16 * 1024 * 1024
THREADS = 8




def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def boto3_client():
    from hubmirror.store.s3.location import client

    return client()


def run_boto3(bucket: str, data: bytes, runs: int) -> dict[str, list[float]]:
    from boto3.s3.transfer import TransferConfig

    s3 = boto3_client()
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=THREADS)
    key = f"bench/boto3-{uuid.uuid4().hex}"
    up, down, single = [], [], []
    for _ in range(runs):
        up.append(timed(lambda: s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)))
        sink = io.BytesIO()
        down.append(timed(lambda: s3.download_fileobj(bucket, key, sink, Config=config)))
        assert sink.getbuffer().nbytes == len(data)
        out = []
        single.append(timed(lambda: out.append(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
        assert len(out[0]) == len(data)
    s3.delete_object(Bucket=bucket, Key=key)
    return {"upload": up, "download": down, "get (1 stream)": single}


def run_obstore(bucket: str, data: bytes, runs: int, endpoint: str | None) -> dict[str, list[float]]:
    import obstore
    from obstore.store import S3Store

    config = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    if endpoint:
        config.update(endpoint=endpoint, allow_http=True, virtual_hosted_style_request=False)
    store = S3Store(bucket, config=config)  # credentials from the AWS environment, as boto3
    key = f"bench/obstore-{uuid.uuid4().hex}"
    up, down = [], []
    for _ in range(runs):
        up.append(timed(lambda: obstore.put(store, key, data, chunk_size=PART, max_concurrency=THREADS)))
        out = []
        down.append(timed(lambda: out.append(obstore.get(store, key).bytes())))
        assert len(out[0]) == len(data)
    obstore.delete(store, key)
    return {"upload": up, "download": down}


def run_store(bucket: str, data: bytes, runs: int) -> dict[str, list[float]]:
    from hubmirror.store.s3.store import S3BlobStore

    digest = hashlib.sha256(data).hexdigest()
    up, down = [], []
    for i in range(runs):
        store = S3BlobStore(f"s3://{bucket}/run{i}", part_size=PART)

        def put():
            with store.writer() as w:
                for at in range(0, len(data), 1 << 20):
                    w.write(data[at : at + (1 << 20)])
                w.commit(digest, len(data))

        def get():
            with store.open(digest) as f:
                while f.read(4 << 20):
                    pass

        up.append(timed(put))
        down.append(timed(get))
    return {"upload": up, "download": down}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoint", help="an S3 endpoint instead of a local moto server (bucket must exist)")
    parser.add_argument("--bucket")
    args = parser.parse_args()
    proc = None
    if args.endpoint is None:
        proc, endpoint = start_moto()
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="us-east-1")
    else:
        endpoint = args.endpoint
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        bucket = args.bucket or f"bench-{uuid.uuid4().hex[:12]}"
        if args.bucket is None:
            boto3_client().create_bucket(Bucket=bucket)
        data = os.urandom(args.size_mib << 20)
        mb = len(data) / 1e6
        results = {"boto3": run_boto3(bucket, data, args.runs)}
        try:
            results["obstore"] = run_obstore(bucket, data, args.runs, endpoint)
        except ImportError as exc:
            print(f"obstore: not measured ({exc}); see this script's docstring")
        results["hubmirror S3BlobStore (boto3)"] = run_store(bucket, data, args.runs)
        print(f"{args.size_mib} MiB object, {args.runs} runs (median), server {'moto on 127.0.0.1' if proc else endpoint}"
              f", {os.cpu_count()} CPUs")
        medians = {}
        for name, directions in results.items():
            for direction, seconds in directions.items():
                medians[name, direction] = mb / statistics.median(seconds)
                print(f"  {name:30s} {direction:14s} {medians[name, direction]:8.1f} MB/s   "
                      f"(runs: {', '.join(f'{mb / s:.0f}' for s in seconds)})")
        if "obstore" in results:
            for direction in ("upload", "download"):
                print(f"  obstore / boto3 {direction}: {medians['obstore', direction] / medians['boto3', direction]:.2f}")
    finally:
        if proc is not None:
            stop(proc)


if __name__ == "__main__":
    main()
