"""A real S3 server for the tests: moto in server mode on 127.0.0.1, with the AWS environment pointed at it."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def moto_s3(monkeypatch) -> Iterator[str]:
    """Start moto's S3 server on a free loopback port, point the AWS chain at it, create a fresh bucket; yield the
    store URL `s3://<bucket>/site`. The server stops on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        from hubmirror.store.s3.location import client

        bucket = f"models-{uuid.uuid4().hex[:12]}"
        client().create_bucket(Bucket=bucket)
        yield f"s3://{bucket}/site"
    finally:
        server.stop()
