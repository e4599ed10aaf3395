"""The describe stage end to end without Ray (plain loop), against a real HTTP LLM server:
output table, cache hits, per-patent failures, metadata-only subset, kill and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cluster.describe_job import describe_corpus
from priorsight.describe.cache import DescriptionCache
from priorsight.describe.config import BackendConfig, DescribeConfig, OpenAIConfig
from priorsight.describe.pipeline import DESCRIPTIONS_SCHEMA, format_sample
from priorsight.manifest import read_manifest, read_table
from tests.test_describe_fakes import FakeLLM, write_manifest


def config(server: FakeLLM, **kw) -> DescribeConfig:
    backend = BackendConfig(kind="openai", openai=OpenAIConfig(
        base_url=server.url, model="fake", max_retries=kw.pop("max_retries", 1), backoff_s=0.001, timeout_s=5,
        concurrency=kw.pop("concurrency", 4)))
    return DescribeConfig(backend=backend, **{"k": 6, "n_templates": 2, "batch_size": 1, **kw})


def test_describe_writes_one_row_per_drawing(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=3, views=2)
    out = tmp_path / "out"
    with FakeLLM() as server:
        s = describe_corpus(manifest, str(out), config=config(server), runner="local", progress=False)
    table = read_table(str(out / "descriptions.parquet"))
    assert table.schema.equals(DESCRIPTIONS_SCHEMA)
    rows = table.to_pylist()
    ids = [r["drawing_id"] for r in rows]
    assert sorted(ids) == sorted(read_manifest(str(tmp_path / "corpus")).column("drawing_id").to_pylist())
    assert len(set(ids)) == len(ids) == 6
    for r in rows:
        assert len(r["descriptions"]) == 6
        assert r["descriptions"][0].startswith(("A front perspective view of", "A top plan view of"))
        assert r["model"] == "openai:fake" and r["prompt_version"] == DescribeConfig().prompt_version == "v2" and len(r["cache_key"]) == 32
        assert r["n_llm"] == 3  # k 6 - entry 0 - 2 templates
        assert not any("steel" in d for d in r["descriptions"])  # the invented material was filtered out
    # the two views of a patent share the LLM text (generated once) but not the view phrase
    p0 = [r for r in rows if r["drawing_id"].startswith("USD0000000")]
    assert p0[0]["cache_key"] == p0[1]["cache_key"] and p0[0]["descriptions"][0] != p0[1]["descriptions"][0]
    assert s["drawings"] == 6 and s["patents_generated"] == 3 and s["patents_failed"] == 0
    assert s["completions"] == len(server.requests)
    assert json.loads((out / "summary.json").read_text())["drawings"] == 6
    assert read_table(str(out / "failures.parquet")).num_rows == 0
    assert "USD0000000-D00001" in format_sample(manifest, str(out), 2)


def test_second_run_is_served_from_the_cache(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=2, views=2)
    with FakeLLM() as server:
        describe_corpus(manifest, str(tmp_path / "a"), config=config(server), runner="local", progress=False)
        first = len(server.requests)
        cfg = config(server, cache_dir=str(tmp_path / "a" / "cache"))
        s = describe_corpus(manifest, str(tmp_path / "b"), config=cfg, runner="local", progress=False)
    assert first > 0 and len(server.requests) == first  # nothing generated again
    assert s["patents_cached"] == 2 and s["patents_generated"] == 0
    a = pq.read_table(tmp_path / "a" / "descriptions.parquet").to_pylist()
    b = pq.read_table(tmp_path / "b" / "descriptions.parquet").to_pylist()
    assert a == b


def test_llm_failure_of_one_patent_is_recorded_not_fatal(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=3, views=2)
    broken = "Object: shoe"  # patent 1 is a shoe: the server refuses it
    with FakeLLM(fail_if=lambda body: 400 if broken in body.get("prompt", "") else None) as server:
        s = describe_corpus(manifest, str(tmp_path / "out"), config=config(server), runner="local", progress=False)
    rows = {r["drawing_id"]: r for r in read_table(str(tmp_path / "out" / "descriptions.parquet")).to_pylist()}
    shoe = [r for k, r in rows.items() if k.startswith("USD0000001")]
    assert len(rows) == 6 and len(shoe) == 2
    assert all(r["n_llm"] == 0 and r["model"] == "metadata-only" and len(r["descriptions"]) == 6 for r in shoe)
    assert all(r["n_llm"] == 3 for k, r in rows.items() if not k.startswith("USD0000001"))
    failures = read_table(str(tmp_path / "out" / "failures.parquet")).to_pylist()
    assert sorted(f["drawing_id"] for f in failures) == sorted(r["drawing_id"] for r in shoe)
    assert all(f["stage"] == "describe" and f["severity"] == "warning" and "HTTP 400" in f["reason"] for f in failures)
    assert s["patents_failed"] == 1 and s["patents_generated"] == 2
    # the failed patent is not cached: a later run tries it again
    assert len(DescriptionCache(str(tmp_path / "out" / "cache")).load()) == 2


def test_llm_for_a_subset_metadata_only_for_the_rest(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=4, views=2)
    with FakeLLM() as server:
        s = describe_corpus(manifest, str(tmp_path / "out"), config=config(server), llm_patents=1, limit=7,
                            runner="local", progress=False)
        prompts = {r["prompt"].rsplit("Object: ", 1)[1].split("\n")[0] for r in server.requests}
    rows = read_table(str(tmp_path / "out" / "descriptions.parquet")).to_pylist()
    assert len(rows) == 7  # limit counts drawings
    assert prompts == {"sport spoon"}  # only the first patent went to the LLM
    assert [r["n_llm"] > 0 for r in rows] == [True, True, False, False, False, False, False]
    assert s["patents_llm"] == 1 and s["patents"] == 4


def test_backend_none_writes_metadata_only_descriptions(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=2, views=3)
    cfg = DescribeConfig(k=5, backend=BackendConfig(kind="none"))
    s = describe_corpus(manifest, str(tmp_path / "out"), config=cfg, progress=False)  # needs no Ray
    rows = read_table(str(tmp_path / "out" / "descriptions.parquet")).to_pylist()
    assert len(rows) == 6 and all(len(r["descriptions"]) == 5 and r["n_llm"] == 0 for r in rows)
    assert s["completions"] == 0 and "ray_init_seconds" not in s


KILLED_RUN = """
import sys
from cluster.describe_job import describe_corpus
from priorsight.describe.config import DescribeConfig
cfg = DescribeConfig.model_validate_json(sys.argv[3])
describe_corpus(sys.argv[1], sys.argv[2], config=cfg, runner="local", progress=False)
"""


def test_killed_job_resumes_without_duplicates(tmp_path):
    manifest = write_manifest(tmp_path / "corpus", patents=6, views=2)
    out = tmp_path / "out"
    cache_dir = out / "cache"
    with FakeLLM(sleep_s=0.15) as server:
        cfg = config(server, concurrency=1)
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, manifest, str(out), cfg.model_dump_json()],
                                cwd=Path(__file__).resolve().parents[1])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(list(cache_dir.glob("shard-*.parquet"))) < 2:
                assert proc.poll() is None, "the job ended before it could be killed"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert not (out / "descriptions.parquet").exists()  # killed before writing its output
        done = DescriptionCache(str(cache_dir)).load()
        assert 2 <= len(done) < 6
        before = len(server.requests)
        s = describe_corpus(manifest, str(out), config=cfg, runner="local", progress=False)
    assert s["patents_cached"] == len(done) and s["patents_generated"] == 6 - len(done)
    prompts = [r["prompt"].rsplit("Object: ", 1)[1].split("\n")[0] for r in server.requests[before:]]
    assert not {p for p in prompts} & {patent_object(k) for k in done.values()}  # nothing regenerated
    ids = read_table(str(out / "descriptions.parquet")).column("drawing_id").to_pylist()
    assert len(ids) == len(set(ids)) == 12
    keys = [k for shard in DescriptionCache(str(cache_dir)).shards()
            for k in pq.read_table(shard, columns=["key"]).column("key").to_pylist()]
    assert len(keys) == len(set(keys)) == 6  # every patent generated exactly once


def patent_object(entry) -> str:
    from tests.test_describe_fakes import TITLES

    return TITLES[int(entry.patent_id[3:]) % len(TITLES)].lower()


@pytest.mark.parametrize("bad", [{"k": 0}, {"actor_cpus": 0}, {"backend": {"kind": "gpt"}}])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        DescribeConfig.model_validate(bad)


def test_vllm_rows_one_per_completion_with_distinct_seeds():
    from cluster.describe_job import vllm_rows
    from priorsight.describe.pipeline import PatentWork, sample_plan
    from priorsight.describe.prompts import PatentFacts, PromptSpec

    spec = PromptSpec.load("v1")
    cfg = DescribeConfig(k=10)
    works = [PatentWork(f"key{i}", PatentFacts(f"P{i}", o, o, o.title(), "02-04", "footwear"), cfg.n_llm_wanted)
             for i, o in enumerate(["shoe", "boot"])]
    rows = vllm_rows(works, spec, cfg)
    per_work = sum(s.n for s in sample_plan(works[0], spec, cfg, cfg.n_llm_wanted))
    assert per_work >= cfg.n_llm_wanted * cfg.oversample
    assert len(rows) == 2 * per_work
    assert {r["key"] for r in rows} == {"key0", "key1"}
    seeds = [r["sampling_params"]["seed"] for r in rows if r["key"] == "key0"]
    assert len(set(seeds)) == len(seeds)
    assert all(r["prompt"].endswith("Description:") and r["sampling_params"]["stop"] == spec.stop for r in rows)


class ScriptedBackend:
    """An in-process backend that answers with its texts in turn (no LLM, no server)."""

    model_id = "scripted"

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.calls = 0

    def generate(self, prompts, n=1, max_tokens=64, temperature=0.8, seed=None, stop=()):
        from priorsight.describe.backends import Completion

        out = []
        for _ in prompts:
            out.append([Completion(self.texts[(self.calls + j) % len(self.texts)], 10) for j in range(n)])
            self.calls += n
        return out


@pytest.mark.parametrize("truth,kept", [
    ("strict", ["A sport spoon with a round bowl shaped as a soccer ball and an elongated handle."]),
    ("lists", ["A sports spoon, also called a soccer bowl or a basketball player's football, is designed for "
               "use in sports and outdoor activities.",
               "A sport spoon with a round bowl shaped as a soccer ball and an elongated handle."]),
])
def test_describe_patent_follows_the_truth_mode(truth, kept):
    from priorsight.describe.pipeline import PatentWork, describe_patent
    from priorsight.describe.prompts import PromptSpec, patent_facts
    from tests.test_describe_fakes import drawing

    facts = patent_facts([drawing("USD0909824", 1, "Sport spoon", "perspective", "perspective",
                                  figure_description="FIG. 1 is a perspective view of the soccer sport spoon "
                                  "with the spoon bowl as a soccer ball;")])
    backend = ScriptedBackend([
        " A sports spoon, also called a soccer bowl or a basketball player's football, is designed for use in "
        "sports and outdoor activities.",
        " A sport spoon with a round bowl shaped as a soccer ball and an elongated handle.",
    ])
    cfg = DescribeConfig(k=6, n_templates=2, truth=truth, max_rounds=1)
    result = describe_patent(backend, PromptSpec.load(cfg.prompt_version), PatentWork("k", facts, 3), cfg)
    assert result.descriptions == kept
