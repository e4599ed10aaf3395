"""Storage against a real S3 protocol endpoint (moto server on 127.0.0.1) and local paths."""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pytest

from priorsight.manifest import read_table, write_table
from priorsight.storage import NotFound, Storage, StorageError, join, split_s3


def test_s3_round_trip_and_listing(s3_storage):
    base = f"s3://{s3_storage.bucket}/corpus"
    s3_storage.write_bytes(join(base, "a.txt"), b"alpha")
    s3_storage.write_bytes(join(base, "sub", "b.txt"), b"beta!")
    s3_storage.write_bytes(f"s3://{s3_storage.bucket}/other/c.txt", b"gamma")
    assert s3_storage.read_bytes(join(base, "a.txt")) == b"alpha"
    listed = list(s3_storage.list(base))
    assert [o.uri for o in listed] == [join(base, "a.txt"), join(base, "sub", "b.txt")]
    assert [o.size for o in listed] == [5, 5]
    assert s3_storage.exists(join(base, "a.txt"))
    assert not s3_storage.exists(join(base, "nope.txt"))
    s3_storage.delete(join(base, "a.txt"))
    assert not s3_storage.exists(join(base, "a.txt"))


def test_s3_missing_key_is_a_clear_error(s3_storage):
    uri = f"s3://{s3_storage.bucket}/does/not/exist.png"
    with pytest.raises(NotFound, match="no such S3 object: s3://.*/does/not/exist.png"):
        s3_storage.read_bytes(uri)
    with pytest.raises(NotFound):
        with s3_storage.open_read(uri):
            pass
    with pytest.raises(NotFound, match="bucket"):
        s3_storage.read_bytes("s3://no-such-bucket-priorsight/x")


def test_s3_large_object_goes_multipart(s3_storage, tmp_path):
    data = os.urandom(12 * 1024 * 1024 + 123)  # > 5 MiB threshold: 3 parts of 5 MiB
    uri = f"s3://{s3_storage.bucket}/big/blob.bin"
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    s3_storage.upload(local, uri)
    head = s3_storage.s3.head_object(Bucket=s3_storage.bucket, Key="big/blob.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's ETag counts its parts
    back = s3_storage.download(uri, tmp_path / "back.bin")
    assert back.read_bytes() == data
    with s3_storage.open_write(f"s3://{s3_storage.bucket}/big/stream.bin") as f:
        f.write(data)
    assert s3_storage.read_bytes(f"s3://{s3_storage.bucket}/big/stream.bin") == data


def test_parquet_tables_through_s3(s3_storage):
    uri = f"s3://{s3_storage.bucket}/tables/descriptions.parquet"
    table = pa.table({"drawing_id": ["a", "b"], "text": ["x", "y"]})
    write_table(table, uri, s3_storage)
    assert read_table(uri, s3_storage).to_pylist() == table.to_pylist()
    with pytest.raises(ValueError, match="drawing_id"):
        write_table(pa.table({"id": [1]}), uri, s3_storage)


def test_credentials_are_never_logged(s3_storage, caplog):
    caplog.set_level(logging.DEBUG)
    Storage(s3_storage.config).s3  # noqa: B018 - builds a client, which logs at debug
    assert "testing-secret" not in caplog.text
    assert "testing-secret" not in repr(s3_storage.config)


def test_local_storage(tmp_path):
    st = Storage()
    p = tmp_path / "x" / "y.bin"
    st.write_bytes(p, b"123")
    assert st.read_bytes(p) == b"123"
    assert [o.uri for o in st.list(tmp_path)] == [str(p)]
    with pytest.raises(NotFound, match="no such file"):
        st.read_bytes(tmp_path / "missing")
    with pytest.raises(NotFound):
        list(st.list(tmp_path / "missing-dir"))
    # a failed write leaves nothing behind
    with pytest.raises(RuntimeError):
        with st.open_write(tmp_path / "partial.bin") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert not (tmp_path / "partial.bin").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x"]


def test_split_s3_rejects_non_s3():
    assert split_s3("s3://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(StorageError):
        split_s3("http://bucket/a")
