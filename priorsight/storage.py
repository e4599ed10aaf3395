"""One storage interface for local paths and ``s3://`` URIs.

Every stage reads and writes images, manifests and checkpoints through :class:`Storage`.
S3 goes through boto3 with endpoint, region and credentials from :class:`StorageConfig`
(or boto3's own chain); credentials are never logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from priorsight.config import StorageConfig

log = logging.getLogger(__name__)


class StorageError(Exception):
    """A storage operation failed; the message names the URI and the reason."""


class NotFound(StorageError, FileNotFoundError):
    """The object or file does not exist."""


def is_s3(uri: str | os.PathLike) -> bool:
    return str(uri).startswith("s3://")


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a local path or an ``s3://`` URI."""
    base = str(base)
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def split_s3(uri: str) -> tuple[str, str]:
    p = urlparse(uri)
    if p.scheme != "s3" or not p.netloc:
        raise StorageError(f"not an s3:// URI: {uri!r}")
    return p.netloc, p.path.lstrip("/")


@dataclass
class ObjectInfo:
    uri: str
    size: int


class Storage:
    """Read, write and list local files and S3 objects by URI."""

    def __init__(self, config: StorageConfig | None = None):
        self.config = config or StorageConfig()
        self._client = None

    # -- S3 plumbing -----------------------------------------------------------------
    @property
    def s3(self):
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            c = self.config
            session = boto3.session.Session(profile_name=c.profile) if c.profile else boto3.session.Session()
            secret = lambda s: s.get_secret_value() if s is not None else None  # noqa: E731
            self._client = session.client(
                "s3",
                endpoint_url=c.endpoint_url,
                region_name=c.region,
                aws_access_key_id=secret(c.access_key_id),
                aws_secret_access_key=secret(c.secret_access_key),
                aws_session_token=secret(c.session_token),
                config=BotoConfig(retries={"max_attempts": c.max_attempts, "mode": "standard"}),
            )
            log.debug("S3 client for endpoint %s", c.endpoint_url or "(AWS default)")
        return self._client

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        mb = 1024 * 1024
        return TransferConfig(
            multipart_threshold=self.config.multipart_threshold_mb * mb,
            multipart_chunksize=self.config.multipart_chunk_mb * mb,
        )

    def _s3_error(self, uri: str, exc: Exception) -> StorageError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFound(f"no such S3 object: {uri}")
            if code == "NoSuchBucket":
                return NotFound(f"no such S3 bucket for {uri}")
            return StorageError(f"S3 error on {uri}: {code or exc}")
        return StorageError(f"S3 error on {uri}: {exc}")

    # -- public API ------------------------------------------------------------------
    def read_bytes(self, uri: str | os.PathLike) -> bytes:
        uri = str(uri)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:  # botocore raises several families
                raise self._s3_error(uri, exc) from exc
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {uri}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc

    def write_bytes(self, uri: str | os.PathLike, data: bytes) -> None:
        with self.open_write(uri) as f:
            f.write(data)

    @contextmanager
    def open_read(self, uri: str | os.PathLike) -> Iterator[IO[bytes]]:
        """A readable, seekable binary file. S3 objects are spooled to a temp file."""
        uri = str(uri)
        if not is_s3(uri):
            try:
                f = open(uri, "rb")
            except FileNotFoundError as exc:
                raise NotFound(f"no such file: {uri}") from exc
            with f:
                yield f
            return
        bucket, key = split_s3(uri)
        with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as tmp:
            try:
                self.s3.download_fileobj(bucket, key, tmp, Config=self._transfer_config())
            except Exception as exc:
                raise self._s3_error(uri, exc) from exc
            tmp.seek(0)
            yield tmp

    @contextmanager
    def open_write(self, uri: str | os.PathLike) -> Iterator[IO[bytes]]:
        """A writable binary file that appears at ``uri`` only when the block succeeds
        (local: atomic rename; S3: uploaded on close, multipart above the threshold)."""
        uri = str(uri)
        if not is_s3(uri):
            path = Path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    yield f
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        bucket, key = split_s3(uri)
        with tempfile.TemporaryFile() as tmp:
            yield tmp
            tmp.seek(0)
            try:
                self.s3.upload_fileobj(tmp, bucket, key, Config=self._transfer_config())
            except Exception as exc:
                raise self._s3_error(uri, exc) from exc

    def upload(self, local: str | os.PathLike, uri: str) -> None:
        """Copy a local file to ``uri`` (multipart for large files on S3)."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                self.s3.upload_file(str(local), bucket, key, Config=self._transfer_config())
            except Exception as exc:
                raise self._s3_error(uri, exc) from exc
        else:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, uri)

    def download(self, uri: str, local: str | os.PathLike) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                self.s3.download_file(bucket, key, str(local), Config=self._transfer_config())
            except Exception as exc:
                raise self._s3_error(uri, exc) from exc
        else:
            if not Path(uri).exists():
                raise NotFound(f"no such file: {uri}")
            shutil.copyfile(uri, local)
        return local

    def exists(self, uri: str | os.PathLike) -> bool:
        uri = str(uri)
        if not is_s3(uri):
            return Path(uri).exists()
        bucket, key = split_s3(uri)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            err = self._s3_error(uri, exc)
            if isinstance(err, NotFound):
                return False
            raise err from exc

    def list(self, prefix: str | os.PathLike) -> Iterator[ObjectInfo]:
        """Every object/file under ``prefix`` (recursively), in key order."""
        prefix = str(prefix)
        if not is_s3(prefix):
            root = Path(prefix)
            if root.is_file():
                yield ObjectInfo(str(root), root.stat().st_size)
                return
            if not root.exists():
                raise NotFound(f"no such directory: {prefix}")
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    yield ObjectInfo(str(p), p.stat().st_size)
            return
        bucket, key = split_s3(prefix)
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=key):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(f"s3://{bucket}/{obj['Key']}", obj["Size"])
        except Exception as exc:
            raise self._s3_error(prefix, exc) from exc

    def delete(self, uri: str | os.PathLike) -> None:
        uri = str(uri)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                self.s3.delete_object(Bucket=bucket, Key=key)
            except Exception as exc:
                raise self._s3_error(uri, exc) from exc
        else:
            Path(uri).unlink(missing_ok=True)

