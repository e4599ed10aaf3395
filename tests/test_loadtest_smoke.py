"""Locust smoke run: the Serve app on the held-out sample (embedded Milvus, 127.0.0.1), then
``priorsight loadtest run`` as a subprocess (Locust in its own processes, never imported here)
for a few seconds with 2 examiners; a second, distributed run (master + 1 worker) exceeds a
threshold and must exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from priorsight.config import DeploymentScaling, MilvusConfig, ServeConfig
from priorsight.milvus import EmbeddedMilvus
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_service(tmp_path_factory):
    from ray import serve

    from loadtests.sample import loadtest_sample
    from services.commands import start_serving

    root = tmp_path_factory.mktemp("loadtest")
    # a throw-away server: a short graceful stop (Milvus 2.3.5 often needs the full 60 s otherwise)
    milvus = MilvusConfig(target="embedded", data_dir=root / "milvus", start_timeout_s=120, stop_timeout_s=5)
    server = EmbeddedMilvus.from_config(milvus)
    try:
        small = DeploymentScaling(num_cpus=0.25, min_replicas=1, max_replicas=1, max_ongoing_requests=16)
        base = ServeConfig(text_queries=False, embedder=small, searcher=small, ingress=small, embed_threads=1)
        config, queries = loadtest_sample(base, root, n_patents=12, test_fraction=0.3, milvus=milvus)
        url = start_serving(config, "127.0.0.1", free_port(), num_cpus=2, ready_timeout_s=100)
        yield {"url": url, "queries": queries, "root": root}
    finally:
        import ray

        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            server.stop()


def loadtest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from priorsight.cli import app; app()", "loadtest", "run", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_locust_smoke_run_and_threshold_exit_code(sample_service, tmp_path):
    url, queries = sample_service["url"], sample_service["queries"]
    common = ["--url", url, "--queries", str(queries), "--users", "2", "--spawn-rate", "2", "--think", "0.1,0.5"]
    ok = loadtest(*common, "--duration", "5s", "--out", str(tmp_path / "ok"))
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0, summary.get("failure_kinds")
    assert summary["thresholds"]["passed"] is True and summary["p99_ms"] > 0
    searches = [n for n in summary["by_request"] if n.startswith("POST /v1/search [")]
    assert searches and sum(summary["by_request"][n]["requests"] for n in searches) > 0
    for f in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "report.html"):
        assert (tmp_path / "ok" / f).stat().st_size > 0, f
    assert "thresholds: passed" in ok.stdout

    strict = tmp_path / "strict.yaml"
    strict.write_text("aggregate:\n  min_rps: 100000\n")
    bad = loadtest(
        *common, "--duration", "4s", "--workers", "1", "--thresholds", str(strict), "--out", str(tmp_path / "bad")
    )
    assert bad.returncode == 1, bad.stdout[-3000:] + bad.stderr[-3000:]
    assert "threshold exceeded: all requests: rps" in bad.stderr
    s2 = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert s2["workers"] == 1 and s2["requests"] > 0 and s2["thresholds"]["passed"] is False


def test_unreachable_service_is_an_error_not_a_pass(tmp_path, sample_service):
    r = loadtest(
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--queries",
        str(sample_service["queries"]),
        "--duration",
        "2s",
        "--out",
        str(tmp_path),
    )
    assert r.returncode == 2 and "does not answer /readyz" in r.stderr


def test_replica_counts_from_serve(sample_service):
    from loadtests.replicas import replica_counts

    counts = replica_counts()
    assert set(counts) == {"Ingress", "QueryEmbedder", "Searcher"}
    assert all(c["running"] == 1 and c["status"] == "HEALTHY" for c in counts.values()), counts
