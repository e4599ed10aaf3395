"""The Ray Data job: local Ray with worker env vars, actors with fractional CPUs, same output as
the plain loop. One Ray start for the module (Ray takes seconds to start on 2 cores)."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")

from cluster.describe_job import describe_corpus, ray_runner  # noqa: E402
from cluster.ray_env import WORKER_ENV, init_ray  # noqa: E402
from priorsight.describe.config import BackendConfig, DescribeConfig, OpenAIConfig  # noqa: E402
from priorsight.manifest import read_table  # noqa: E402
from tests.test_describe_fakes import FakeLLM, write_manifest  # noqa: E402


@pytest.fixture(scope="module")
def ray_handle():
    handle = init_ray(num_cpus=2)
    yield handle
    handle.shutdown()


def test_init_ray_sets_worker_env_and_is_reentrant(ray_handle):
    assert ray_handle.started and ray_handle.cpus == 2

    @ray.remote(num_cpus=0.25)
    def env() -> tuple[dict, int]:
        return {k: os.environ.get(k) for k in WORKER_ENV}, os.nice(0)

    env_vars, niceness = ray.get(env.remote())
    assert env_vars == WORKER_ENV
    assert niceness == 0  # not Ray's default 15: workers must not lose to every other process
    again = init_ray()  # already connected: reuse, and do not stop it on shutdown
    assert not again.started
    again.shutdown()
    assert ray.is_initialized()


def test_ray_job_matches_the_plain_loop(ray_handle, tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=5, views=2)
    with FakeLLM() as server:
        cfg = DescribeConfig(k=5, n_templates=1, batch_size=2, actors=2, actor_cpus=0.5,
                             backend=BackendConfig(kind="openai", openai=OpenAIConfig(base_url=server.url, model="fake")))
        s_ray = describe_corpus(manifest, str(tmp_path / "ray"), config=cfg, runner="ray", progress=False)
        n_ray = len(server.requests)
        describe_corpus(manifest, str(tmp_path / "loop"), config=cfg, runner="local", progress=False)
    assert s_ray["patents_generated"] == 5 and s_ray["runner"] == "ray"
    assert n_ray == len(server.requests) - n_ray  # same requests both ways
    ray_rows = read_table(str(tmp_path / "ray" / "descriptions.parquet")).to_pylist()
    loop_rows = read_table(str(tmp_path / "loop" / "descriptions.parquet")).to_pylist()
    assert ray_rows == loop_rows and len(ray_rows) == 10
    assert all(r["n_llm"] == 3 for r in ray_rows)
    # the actors wrote the cache: one shard per batch of 2 patents
    assert len(list((tmp_path / "ray" / "cache").glob("shard-*.parquet"))) == 3
    assert ray.is_initialized()  # describe_corpus reused this process's Ray and left it running


def test_ray_runner_reports_failures_per_patent(ray_handle, tmp_path):
    from priorsight.describe.pipeline import PatentWork
    from priorsight.describe.prompts import PatentFacts

    works = [PatentWork(f"k{i}", PatentFacts(f"P{i}", obj, obj, obj.title(), "07-03", "table utensils"), 2)
             for i, obj in enumerate(["spoon", "fork"])]
    with FakeLLM(fail_if=lambda body: 400 if "Object: fork" in body["prompt"] else None) as server:
        cfg = DescribeConfig(k=3, backend=BackendConfig(kind="openai", openai=OpenAIConfig(base_url=server.url)))
        results = {r.patent_id: r for r in ray_runner(cfg, None, progress=False)(works)}
    assert results["P0"].error is None and results["P0"].n_descriptions == 2
    assert "HTTP 400" in results["P1"].error and results["P1"].n_descriptions == 0


def test_bench_compares_ray_with_the_plain_loop(ray_handle, tmp_path):
    from cluster.describe_job import bench_describe, bench_markdown
    from priorsight.bench import record

    manifest = write_manifest(tmp_path / "corpus", patents=2, views=1)
    with FakeLLM() as server:
        cfg = DescribeConfig(k=4, backend=BackendConfig(kind="openai", openai=OpenAIConfig(base_url=server.url)))
        r = bench_describe(manifest, patents=1, config=cfg, repeats=2)
        assert len(server.requests) == 4 * r["loop"]["completions"] / 2  # 2 loop + 2 ray runs, same work
    assert r["patents"] == 1 and len(r["pairs"]) == 2
    for key in ("descriptions", "completions", "tokens"):
        assert r["loop"][key] == r["ray"][key] > 0
    # same tokens both ways: the throughput ratio is the time ratio (seconds are rounded to ms)
    assert r["ratio_tokens_per_s"] == pytest.approx(r["loop"]["seconds"] / r["ray"]["seconds"], rel=0.05)
    md = bench_markdown(r)
    path = record("describe", r, md, "priorsight bench describe test", docs_dir=tmp_path / "docs")
    assert path.exists() and "| ray |" in (tmp_path / "docs" / "benchmarks.md").read_text()
    assert ray.is_initialized()  # the bench reused this process's Ray
