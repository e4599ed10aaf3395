"""``priorsight bench serve``'s parts that need no Serve app: the overhead breakdown, the floor
ratio, the report, and the transport floor (a real gRPC server in a child process)."""

from __future__ import annotations

import pytest

from services.serve_bench import floor_ratio, overhead_breakdown, serve_markdown, transport_floor


def _rows() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    http = [{"total": 40.0 + i, "endpoint": 36.0 + i, "embed": 25.0, "milvus": 4.0} for i in range(5)]
    local = [{"total": 30.0, "embed": 25.5, "milvus": 3.5 + 0.1 * i} for i in range(5)]
    return http, local


def test_breakdown_splits_the_http_path_against_the_in_process_one():
    http, local = _rows()
    b = overhead_breakdown(http, local)
    assert b["edge_ms"] == pytest.approx(4.0)  # round trip - endpoint, every query
    assert b["calls_and_endpoint_ms"] == pytest.approx(36.0 + 2 - 25.0 - 4.0)  # median query (i = 2)
    assert b["embed_replica_ms"] == 25.0 and b["embed_in_process_ms"] == 25.5
    assert b["embed_gap_ms"] == pytest.approx(-0.5)
    assert b["milvus_in_process_ms"] == pytest.approx(3.7)
    assert b["rest_in_process_ms"] == pytest.approx(30.0 - 25.5 - 3.7)


def test_floor_ratio_adds_the_edge_and_each_hop_to_the_limit():
    assert floor_ratio(25.0, 3.0, [1.5, 0.5]) == pytest.approx(30.0 / 25.0)
    assert floor_ratio(25.0, 0.0, []) == 1.0


def test_report_names_the_goal_the_breakdown_and_the_floor():
    http, local = _rows()
    res = {"http": {"p50_ms": 42.0, "p99_ms": 44.0, "mean_ms": 42.0},
           "in_process": {"p50_ms": 30.0, "p99_ms": 30.0, "mean_ms": 30.0},
           "overhead_ratio_p50": 1.4, "overhead_ratio_p99": 44 / 30, "goal_ratio": 1.2, "queries": 5, "warmup": 1,
           "k": 10, "model": "m", "drawings_indexed": 3, "sources": ["a"], "embed_threads": 2,
           "breakdown": overhead_breakdown(http, local)}
    md = serve_markdown(res)
    assert "p50 1.40" in md and "goal <= 1.2" in md and "| HTTP edge" in md and "Transport floor" not in md
    res["floor"] = {"payload_bytes": 4096, "no_wait_ms": 0.5,
                    "waits": [{"wait_ms": 25.0, "overhead_ms": 1.3, "server_wait_ms": 25.1}]}
    res["floor_ratio_p50"] = floor_ratio(30.0, 4.0, [1.3])
    md = serve_markdown(res)
    assert "1.30 ms after a 25.0-ms wait" in md and f"would be {(30 + 4 + 1.3) / 30:.2f}" in md


def test_transport_floor_subtracts_the_servers_own_wait():
    floor = transport_floor([5.0], calls=8, warmup=2)
    assert floor["no_wait_ms"] > 0
    (w,) = floor["waits"]
    assert w["wait_ms"] == 5.0
    assert w["server_wait_ms"] >= 4.5  # the server really waited (asyncio may wake a hair early)
    assert 0 < w["overhead_ms"] < w["server_wait_ms"] + 1000  # what is left is the call, not the wait
