"""Integration: the Serve application on a local Ray, searching the embedded Milvus server,
over real HTTP on 127.0.0.1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from priorsight.config import DeploymentScaling, MilvusConfig, SearchSourceConfig, ServeConfig
from priorsight.manifest import iter_drawings
from priorsight.milvus import EmbeddedMilvus
from tests.conftest import free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ray import serve

    from services.commands import start_serving
    from services.embedding import QueryEncoder
    from services.sample import index_corpus, write_random_checkpoint, write_sample_corpus

    root = tmp_path_factory.mktemp("serve_ray")
    # a throw-away server: a short graceful stop (Milvus 2.3.5 often needs the full 60 s otherwise)
    milvus = MilvusConfig(target="embedded", data_dir=root / "milvus", start_timeout_s=120, stop_timeout_s=5)
    server = EmbeddedMilvus.from_config(milvus)
    with ThreadPoolExecutor(1) as pool:  # the server starts while the model loads
        started = pool.submit(server.start)
        encoder = QueryEncoder.load(write_random_checkpoint(root / "model" / "sample.pt"), text=False)
        corpus = write_sample_corpus(root / "corpus", n_patents=5)
        started.result()
    try:
        index_corpus(encoder, corpus, milvus)
        del encoder
        config = ServeConfig(checkpoint=str(root / "model" / "sample.pt"), manifest=corpus, text_queries=False,
                             sources=[SearchSourceConfig(name="sample", milvus=milvus)])
        small = DeploymentScaling(num_cpus=0.25, min_replicas=1, max_replicas=1, max_ongoing_requests=16)
        config = config.model_copy(update={"embedder": small, "searcher": small, "ingress": small,
                                           "embed_threads": 1, "start_embedded_milvus": True})
        port = free_port()
        url = start_serving(config, "127.0.0.1", port, num_cpus=2, ready_timeout_s=100)
        yield {"url": url, "port": port, "config": config,
               "drawings": {d.drawing_id: d for d in iter_drawings(config.manifest)}}
    finally:
        import ray

        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            server.stop()


def test_concurrent_searches_over_http(served):
    url, drawings = served["url"], served["drawings"]
    ids = sorted(drawings)[:6]

    def one(did: str) -> httpx.Response:
        data = Path(drawings[did].image_uri).read_bytes()
        return httpx.post(f"{url}/v1/search", files=[("images", (f"{did}.png", data, "image/png"))],
                          data={"k": "3", "filters": '{"date_from": "2020-01-01"}'}, timeout=60)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, ids))
    for did, r in zip(ids, answers, strict=True):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["results"][0]["patent_id"] == drawings[did].patent_id
        assert body["record"]["indexes"] == {"sample": "drawings"} and body["partial"] is False
    metrics = httpx.get(f"{url}/metrics").text
    # one observation per query: the size of the batch that embedded it (concurrent queries may
    # share a forward pass: greedy batching), between 1 and 6 each
    assert "priorsight_embed_batch_size_count 6.0" in metrics
    seen = float(metrics.split("priorsight_embed_batch_size_sum ")[1].split()[0])
    assert 6 <= seen <= 36
    assert 'priorsight_search_seconds_count{source="sample"} 6.0' in metrics


def test_several_views_and_bad_input_through_serve(served):
    url, drawings = served["url"], served["drawings"]
    d1, d2 = drawings["USD0900001-1"], drawings["USD0900001-2"]
    r = httpx.post(f"{url}/v1/search", timeout=60, data={"k": "2", "fusion": "rrf"},
                   files=[("images", ("a.png", Path(d1.image_uri).read_bytes(), "image/png")),
                          ("images", ("b.png", Path(d2.image_uri).read_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"][0]["patent_id"] == "USD0900001"  # first for both views
    assert body["results"][0]["score"] == pytest.approx(2 / (served["config"].rrf_k + 1), abs=1e-6)
    words = httpx.post(f"{url}/v1/search", data={"text": "square"}, timeout=60)  # this server embeds no words
    assert words.status_code == 422 and words.json()["error"]["code"] == "text_not_supported"
    bad = httpx.post(f"{url}/v1/search", files=[("images", ("x.txt", b"not a drawing", "text/plain"))], timeout=60)
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "bad_image"
    assert httpx.get(f"{url}/v1/patents/USD0900001").json()["drawings"][0]["drawing_id"] == "USD0900001-1"
    img = httpx.get(f"{url}/v1/drawings/USD0900001-1/image")
    assert img.status_code == 200 and img.content == Path(d1.image_uri).read_bytes()
    assert httpx.get(f"{url}/readyz").json()["sources"] == {"sample": True}


def _listeners(port_ok) -> list:
    return [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and port_ok(c.laddr.port)]


def test_http_listens_on_loopback_only(served):
    listening = [c.laddr for c in _listeners(lambda p: p == served["port"])]
    assert listening and all(a.ip == "127.0.0.1" for a in listening)
    # the ingress replicas answer HTTP themselves behind HAProxy (direct ingress): loopback too
    direct = [c.laddr for c in _listeners(lambda p: 30000 <= p < 31000)]
    assert direct and all(a.ip == "127.0.0.1" for a in direct)


def test_haproxy_is_in_front_of_the_ingress_replicas(served):
    """Serve's fast path (cluster.ray_env.SERVE_ENV) is on when `start_serving` starts Ray."""
    owners = {c.pid for c in _listeners(lambda p: p == served["port"])}
    if None in owners:
        pytest.skip("listening processes are not visible to this user")
    assert {psutil.Process(pid).name() for pid in owners} == {"haproxy"}


def test_bench_serve_measures_both_paths_and_splits_the_difference(served):
    """`priorsight bench serve`'s measurement over the running app: both paths answer every query,
    and the breakdown comes from the HTTP answers' search records."""
    from services.serve_bench import bench_serve

    res = bench_serve(served["url"], served["config"], queries=5, warmup=1)
    assert res["queries"] == 5 and res["drawings_indexed"] == len(served["drawings"])
    assert res["overhead_ratio_p50"] == pytest.approx(res["http"]["p50_ms"] / res["in_process"]["p50_ms"])
    b = res["breakdown"]
    assert b["edge_ms"] > 0 and b["calls_and_endpoint_ms"] > 0  # the HTTP path's own costs
    assert b["embed_replica_ms"] > 0 and b["milvus_replica_ms"] > 0 and b["milvus_in_process_ms"] > 0
    # the parts of the HTTP path lie inside its round trip
    assert b["embed_replica_ms"] + b["milvus_replica_ms"] < res["http"]["p99_ms"]
