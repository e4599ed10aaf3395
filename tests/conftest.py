"""Shared fixtures: the read-only shared data folder and a real S3 endpoint (moto server)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRIORSIGHT_SHARED_DIR", REPO.parent / "shared"))
USPTO_SAMPLE = SHARED / "data" / "uspto-design-2021"
DESIGN_2007 = SHARED / "data" / "uspto-design-2007-first-figures"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def uspto_sample() -> Path:
    if not USPTO_SAMPLE.is_dir():
        pytest.skip(f"shared USPTO sample not present at {USPTO_SAMPLE}")
    return USPTO_SAMPLE


@pytest.fixture(scope="session")
def design_2007() -> Path:
    """The 601 real US design patents of 2007 (one drawing each, US class and title)."""
    if not (DESIGN_2007 / "metadata.csv").is_file():
        pytest.skip(f"shared 2007 US design folder not present at {DESIGN_2007}")
    return DESIGN_2007


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 protocol endpoint: moto's threaded server on 127.0.0.1, stopped at the end."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_storage(s3_server, monkeypatch):
    """A Storage bound to the moto endpoint with a fresh bucket."""
    import uuid

    from pydantic import SecretStr

    from priorsight.config import StorageConfig
    from priorsight.storage import Storage

    cfg = StorageConfig(endpoint_url=s3_server, region="us-east-1", access_key_id=SecretStr("testing"),
                        secret_access_key=SecretStr("testing-secret"), multipart_threshold_mb=5,
                        multipart_chunk_mb=5)
    storage = Storage(cfg)
    bucket = f"ps-{uuid.uuid4().hex[:12]}"
    storage.s3.create_bucket(Bucket=bucket)
    storage.bucket = bucket  # for the test's convenience
    return storage
