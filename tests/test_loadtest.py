"""The load-test tooling without a service: query sets from a held-out split, thresholds, Locust
CSV summaries, scaling overrides, the replica sampler and the autoscaling plot.

Locust itself is never imported here (it only runs in its own process: tests/test_loadtest_smoke.py).
"""

from __future__ import annotations

import ast
import csv
import json
import sys
import time
from pathlib import Path

import pytest
import typer
from PIL import Image

from loadtests import runner
from loadtests.commands import parse_duration, parse_think, scaling_overrides
from loadtests.plot import plot_autoscaling
from loadtests.queries import QUERY_KINDS, build_query_set, read_query_set
from loadtests.replicas import ReplicaSampler, read_replicas, replica_range
from priorsight.config import ServeConfig
from priorsight.corpus.split import split_corpus
from priorsight.manifest import iter_drawings
from services.api import SearchFilters
from services.commands import read_serve_file
from services.sample import write_sample_corpus

LOADTESTS = Path(__file__).resolve().parents[1] / "loadtests"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("queries")
    corpus = write_sample_corpus(root / "corpus", n_patents=12, views=3)
    counts = split_corpus(corpus, str(root / "splits"), test_fraction=0.3, seed=0)
    assert counts["test_patents"] > 0 and counts["train_patents"] > 0
    return root


def test_query_set_comes_from_the_held_out_split(held_out, tmp_path):
    test, train = held_out / "splits" / "test", held_out / "splits" / "train"
    summary = build_query_set(str(test), tmp_path / "q", catalog=str(train), seed=1)
    data = read_query_set(tmp_path / "q")
    held = {d.patent_id for d in iter_drawings(str(test))}
    served = {d.patent_id for d in iter_drawings(str(train))}
    assert {q["patent_id"] for q in data["queries"]} == held
    assert summary["held_out_in_catalog"] == 0 and not held & set(data["patents"])
    assert set(data["patents"]) == served and len(data["drawings"]) == 3 * len(served)
    kinds = {q["kind"] for q in data["queries"]}
    assert kinds == set(QUERY_KINDS)
    for q in data["queries"]:
        assert (tmp_path / "q" / "images" / q["images"][0]).read_bytes()[:4] == b"\x89PNG"
        if q["kind"] == "multiview":
            assert 2 <= len(q["images"]) <= 3 and len(set(q["images"])) == len(q["images"])
        if q["kind"] == "text":
            assert q["text"] and "design" in q["text"].lower()
        if q["kind"] == "filtered":
            assert q["filters"]
            SearchFilters.model_validate(q["filters"]).to_filter()  # the API accepts them
    again = build_query_set(str(test), tmp_path / "q2", catalog=str(train), seed=1)
    assert again["queries"] == summary["queries"]
    assert json.loads((tmp_path / "q2" / "queries.json").read_text())["queries"] == data["queries"]


def test_read_query_set_rejects_missing_images(held_out, tmp_path):
    build_query_set(str(held_out / "splits" / "test"), tmp_path / "q")
    next((tmp_path / "q" / "images").iterdir()).unlink()
    with pytest.raises(ValueError, match="missing"):
        read_query_set(tmp_path / "q")


def test_locustfiles_import_only_stdlib_and_locust():
    """Locust's gevent patching and boto3/ray/pymilvus must never share a process."""
    allowed = set(sys.stdlib_module_names) | {"locust", "__future__"}
    for name in ("locustfile.py", "step_shape.py"):
        tree = ast.parse((LOADTESTS / name).read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert mods <= allowed, (name, mods - allowed)


def test_thresholds_file_and_checks(tmp_path):
    limits = runner.load_thresholds(runner.DEFAULT_THRESHOLDS)
    assert limits["aggregate"]["max_failure_ratio"] <= 0.05
    summary = {
        "requests": 100,
        "failures": 2,
        "failure_ratio": 0.02,
        "rps": 4.0,
        "p50_ms": 80.0,
        "p95_ms": 900.0,
        "p99_ms": 1200.0,
        "by_request": {"POST /v1/search [single]": {"requests": 50, "p95_ms": 1600.0, "rps": 2.0}},
    }
    got = runner.check_thresholds(summary, limits)
    assert any("failure_ratio 0.02 > max 0.01" in v for v in got)
    assert any(v.startswith("POST /v1/search [single]: p95_ms 1600") for v in got)
    ok = {**summary, "failures": 0, "failure_ratio": 0.0, "by_request": {}}
    assert runner.check_thresholds(ok, limits) == []  # absent requests exceed no max_ limit
    assert runner.check_thresholds(ok, {"aggregate": {"min_rps": 10}, "requests": {"GET /x": {"min_requests": 1}}}) == [
        "all requests: rps 4 < min 10",
        "GET /x: requests 0 < min 1",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("aggregate: {max_p99: 5}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        runner.load_thresholds(bad)
    bad.write_text("aggregate: {max_p99_ms: -1}\n")
    with pytest.raises(ValueError, match=">= 0"):
        runner.load_thresholds(bad)


def _write_stats(prefix: Path) -> None:
    pct = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    head = [
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
        *pct,
    ]
    rows = [
        [
            "POST",
            "POST /v1/search [single]",
            40,
            1,
            120,
            130.5,
            60,
            700,
            2000,
            2.0,
            0.05,
            120,
            130,
            140,
            150,
            200,
            300,
            400,
            600,
            700,
            700,
            700,
        ],
        ["GET", "GET /v1/patents/{id}", 10, 0, 5, 6.1, 3, 20, 800, 0.5, 0, 5, 6, 6, 7, 9, 12, 20, 20, 20, 20, 20],
        [
            "",
            "Aggregated",
            50,
            1,
            100,
            105.6,
            3,
            700,
            1760,
            2.5,
            0.05,
            100,
            120,
            130,
            140,
            180,
            290,
            400,
            600,
            700,
            700,
            700,
        ],
    ]
    with open(f"{prefix}_stats.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(rows)
    with open(f"{prefix}_failures.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Method", "Name", "Error", "Occurrences"])
        w.writerow(["POST", "POST /v1/search [single]", "HTTPError('503')", 1])


def test_summarize_reads_locust_csv(tmp_path):
    _write_stats(tmp_path / "locust")
    s = runner.summarize(tmp_path / "locust")
    assert (s["requests"], s["failures"], s["rps"], s["p50_ms"], s["p95_ms"], s["p99_ms"]) == (
        50,
        1,
        2.5,
        100,
        290,
        600,
    )
    assert s["failure_ratio"] == pytest.approx(0.02)
    assert s["by_request"]["GET /v1/patents/{id}"]["p99_ms"] == 20
    assert s["failure_kinds"] == [
        {"request": "POST /v1/search [single]", "error": "HTTPError('503')", "occurrences": 1}
    ]


def test_locust_commands_single_and_distributed(tmp_path):
    run = runner.LocustRun(
        url="http://127.0.0.1:1",
        queries=tmp_path,
        out_dir=tmp_path / "o",
        users=3,
        duration_s=5,
        tags=["search"],
        workers=2,
    )
    master = run.master_command(5599)
    assert master[1:3] == ["-m", "locust"] and "--headless" in master
    assert master[master.index("--users") + 1] == "3" and master[master.index("--run-time") + 1] == "5s"
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"  # never all interfaces
    assert master[master.index("--expect-workers") + 1] == "2" and master[-2:] == ["--tags", "search"]
    worker = run.worker_command(5599)
    assert "--worker" in worker and worker[worker.index("--master-port") + 1] == "5599"
    stepped = runner.LocustRun(url="http://x", queries=tmp_path, out_dir=tmp_path, steps="10:1,20:4")
    cmd = stepped.master_command()
    assert "--users" not in cmd and cmd[cmd.index("-f") + 1].endswith("locustfile.py," + str(runner.STEP_SHAPE))
    env = stepped.env()
    assert json.loads(env["PRIORSIGHT_LOADTEST_STEPS"]) == [[10, 1], [20, 4]] and env[
        "PRIORSIGHT_LOADTEST_QUERIES"
    ] == str(tmp_path.resolve())


def test_parsers():
    assert parse_duration("90") == 90 and parse_duration("1m30s") == 90 and parse_duration("2m") == 120
    assert parse_think("0.5,3") == (0.5, 3.0) and parse_think("2") == (2.0, 2.0)
    assert runner.parse_steps("30:1, 90:16,120:1") == [(30.0, 1), (90.0, 16), (120.0, 1)]
    for bad in ("", "x", "1h2"):
        with pytest.raises(typer.BadParameter):
            parse_duration(bad)
    with pytest.raises(typer.BadParameter):
        parse_think("3,1")
    with pytest.raises(ValueError):
        runner.parse_steps("0:4")


def test_autoscale_overrides_keep_production_limits():
    prod = read_serve_file().config
    demo = scaling_overrides(prod, LOADTESTS / "autoscale_overrides.yaml")
    for name in ("embedder", "searcher", "ingress"):
        p, d = getattr(prod, name), getattr(demo, name)
        assert (d.min_replicas, d.max_replicas, d.num_cpus, d.target_ongoing_requests) == (
            p.min_replicas,
            p.max_replicas,
            p.num_cpus,
            p.target_ongoing_requests,
        )
        assert d.downscale_delay_s < p.downscale_delay_s
        assert d.upscale_delay_s >= d.look_back_period_s > 10 and d.downscale_delay_s >= d.look_back_period_s
    assert demo.checkpoint == prod.checkpoint and demo.sources == prod.sources


def test_scaling_overrides_are_validated(tmp_path):
    bad = tmp_path / "o.yaml"
    bad.write_text("embedder: {look_back_period_s: 5}\n")
    with pytest.raises(ValueError):
        scaling_overrides(ServeConfig(), bad)
    bad.write_text("max_k: 5\n")
    with pytest.raises(ValueError, match="only embedder"):
        scaling_overrides(ServeConfig(), bad)


def test_replica_sampler_and_plot(tmp_path):
    counts = iter(
        [{"Ingress": {"running": 1}, "QueryEmbedder": {"running": 1}}] * 2
        + [{"Ingress": {"running": 1}, "QueryEmbedder": {"running": 2}}] * 50
    )
    with ReplicaSampler(tmp_path / "replicas.csv", interval_s=0.02, counts=lambda _app: next(counts)) as sampler:
        while len(sampler.rows) < 8:
            time.sleep(0.01)
    rows = read_replicas(tmp_path / "replicas.csv")
    assert len(rows) >= 8 and {r["deployment"] for r in rows} == {"Ingress", "QueryEmbedder"}
    assert replica_range(rows)["QueryEmbedder"] == {"first": 1, "max": 2, "last": 2}
    t0 = rows[0]["t"]
    history = [
        {
            "t": t0 + i,
            "users": 1 if i < 5 else 8,
            "rps": 2.0 + i,
            "p50_ms": 50.0 + i,
            "p95_ms": None if i == 3 else 90.0 + 5 * i,
        }
        for i in range(12)
    ]
    replicas = [
        {"t": t0 + i, "deployment": d, "running": 1 + (i > 6 and d == "QueryEmbedder")}
        for i in range(12)
        for d in ("Ingress", "QueryEmbedder")
    ]
    png = plot_autoscaling(history, replicas, tmp_path / "a.png", "test", markers=[(t0, "1 user"), (t0 + 5, "8 users")])
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width == 1200 and img.height > 700
        assert len(img.getcolors(1 << 16) or []) > 10  # lines and text, not a blank canvas
