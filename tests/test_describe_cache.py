"""The description cache: keys, shards, newest-wins, partial shards ignored."""

from __future__ import annotations

from priorsight.describe.cache import CacheEntry, DescriptionCache, cache_key


def entry(key: str, texts: tuple[str, ...], n_requested: int = 2) -> CacheEntry:
    return CacheEntry(key, "P1", "llama-cpp:m", "v1", n_requested, texts, n_raw=3, completion_tokens=30, seconds=0.5)


def test_key_depends_on_metadata_model_prompt_and_sampling():
    base = dict(content_hash="abc", model="m", prompt_version="v1", prompt_fingerprint="fp",
                temperature=0.8, max_tokens=64, seed=0)
    k = cache_key(**base)
    assert k == cache_key(**base)
    for field, value in [("content_hash", "abd"), ("model", "m2"), ("prompt_version", "v2"),
                         ("prompt_fingerprint", "fq"), ("temperature", 0.7), ("max_tokens", 32), ("seed", 1)]:
        assert cache_key(**{**base, field: value}) != k, field


def test_write_and_load_round_trip(tmp_path):
    cache = DescriptionCache(str(tmp_path / "cache"))
    assert cache.load() == {}  # no directory yet
    uri = cache.write([entry("k1", ("A spoon.", "A ladle.")), entry("k2", ())])
    assert uri is not None and uri.endswith(".parquet")
    assert cache.write([]) is None
    loaded = cache.load()
    assert set(loaded) == {"k1", "k2"}
    assert loaded["k1"].descriptions == ("A spoon.", "A ladle.")
    assert loaded["k1"].completion_tokens == 30 and loaded["k1"].created


def test_newest_shard_wins_and_partial_files_are_ignored(tmp_path):
    cache = DescriptionCache(str(tmp_path))
    cache.write([entry("k1", ("old",))])
    cache.write([entry("k1", ("new",))])
    (tmp_path / ".shard-99999999T000000000000-dead.parquet.x.part").write_bytes(b"half a file")
    (tmp_path / "shard-broken.parquet").write_bytes(b"not parquet")  # sorts last, unreadable: skipped
    assert cache.load()["k1"].descriptions == ("new",)
    assert len(cache.shards()) == 3


def test_entry_satisfies_requests_up_to_what_was_asked():
    e = entry("k", ("a",), n_requested=4)
    assert e.satisfies(4) and e.satisfies(2)
    assert not e.satisfies(5)


def test_patent_key_differs_between_truth_modes():
    """Descriptions kept by one truth filter mode are never reused under another."""
    from priorsight.describe.config import DescribeConfig
    from priorsight.describe.pipeline import patent_key
    from priorsight.describe.prompts import PatentFacts, PromptSpec

    facts = PatentFacts("P1", "sport spoon", "sport spoon", "Sport spoon", "07-03", "table utensils")
    spec = PromptSpec.load("v2")
    strict = patent_key(facts, spec, DescribeConfig(truth="strict"), "m")
    assert strict == patent_key(facts, spec, DescribeConfig(), "m")  # strict is the default
    assert strict != patent_key(facts, spec, DescribeConfig(truth="lists"), "m")
    assert strict != patent_key(facts, PromptSpec.load("v1"), DescribeConfig(truth="strict"), "m")
