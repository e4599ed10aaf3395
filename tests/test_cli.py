"""The ``priorsight`` command line, run as a user runs it (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "priorsight")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"priorsight {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def test_import_uspto_and_stats(uspto_sample, tmp_path):
    src = tmp_path / "src"
    for name in ("USD0909824-20210209", "USD0917867-20210504", "USD0917866-20210504"):
        shutil.copytree(uspto_sample / name, src / name)
    out = tmp_path / "corpus"
    p = run("corpus", "import-uspto", str(src), "--out", str(out))
    assert "14 drawings" in p.stdout
    p = run("corpus", "stats", str(out))
    assert "drawings: 14" in p.stdout and "patents:  3" in p.stdout
    assert "02-04" in p.stdout and "head" in p.stdout
    stats = json.loads(run("corpus", "stats", str(out), "--json").stdout)
    assert stats["class_counts"] == {"02-04": 10, "07-03": 4}
    assert sum(b["drawings"] for b in stats["buckets"]) == 14


def test_import_to_s3_and_stats_from_s3(uspto_sample, s3_storage, tmp_path, monkeypatch):
    import os

    env = dict(os.environ, PRIORSIGHT_STORAGE__ENDPOINT_URL=s3_storage.config.endpoint_url,
               PRIORSIGHT_STORAGE__REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    out = f"s3://{s3_storage.bucket}/uspto"
    subprocess.run([EXE, "corpus", "import-uspto", str(uspto_sample / "USD0929296-20210831"), "--out", out],
                   env=env, check=True, capture_output=True, timeout=300)
    keys = sorted(o.uri for o in s3_storage.list(out))
    assert f"{out}/manifest.parquet" in keys and f"{out}/failures.parquet" in keys
    assert sum(k.endswith(".png") for k in keys) == 3
    p = subprocess.run([EXE, "corpus", "stats", out, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(p.stdout)["drawings"] == 3


@pytest.mark.parametrize("args,message", [
    (["corpus", "import-uspto", "/no/such/dir", "--out", "/tmp/x"], "no such directory"),
    (["corpus", "stats", "/no/such/corpus"], "no such file"),
])
def test_clear_errors(args, message):
    p = run(*args, check=False)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr
