"""Class-aware batches and description sampling: composition, determinism, sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.samplers import BatchConfig, ClassAwareBatchSampler, DescriptionBank, class_counts, encode_labels


def _long_tail():
    """Classes with 60, 20, 6, 2 and 1 drawings; patents of 1 to 3 views."""
    classes, patents = [], []
    for c, n in zip(["06-01", "07-02", "26-03", "28-03", "21-01"], [60, 20, 6, 2, 1], strict=True):
        i = 0
        while i < n:
            views = min(1 + (i % 3), n - i)
            for _ in range(views):
                classes.append(c)
                patents.append(f"{c}/P{i}")
            i += views
    return classes, patents


def test_batches_have_m_per_class_and_patent_pairs():
    classes, patents = _long_tail()
    cfg = BatchConfig(batch_size=16, m_per_class=4, views_per_patent=2, seed=1, batches_per_epoch=30)
    s = ClassAwareBatchSampler(classes, patents, cfg)
    for batch in s:
        assert len(batch) == 16
        per_class = Counter(classes[i] for i in batch)
        assert set(per_class.values()) == {4}  # 4 distinct classes, 4 drawings each
        per_patent = Counter(patents[i] for i in batch)
        assert all(v % 2 == 0 for v in per_patent.values())  # every patent has a positive
        for k in range(0, 16, 2):  # consecutive pairs are views of one patent
            assert patents[batch[k]] == patents[batch[k + 1]]


def test_uniform_class_sampling_reaches_the_tail():
    classes, patents = _long_tail()
    s = ClassAwareBatchSampler(classes, patents, BatchConfig(batch_size=8, m_per_class=4, class_power=0.0,
                                                             batches_per_epoch=200))
    seen = Counter(classes[b[0]] for b in s) + Counter(classes[b[4]] for b in s)
    # 2 of 5 classes per batch, uniformly: each class in ~40% of 200 batches
    for c in set(classes):
        assert 50 <= seen[c] <= 110, seen
    inst = ClassAwareBatchSampler(classes, patents, BatchConfig(batch_size=8, m_per_class=4, class_power=1.0,
                                                                batches_per_epoch=200))
    seen_inst = Counter(classes[b[0]] for b in inst) + Counter(classes[b[4]] for b in inst)
    assert seen_inst["21-01"] < seen["21-01"] and seen_inst["06-01"] > seen["06-01"]


def test_expected_class_counts_follow_the_class_power():
    classes, patents = _long_tail()  # 60, 20, 6, 2, 1 drawings
    sizes = {"06-01": 60, "07-02": 20, "26-03": 6, "28-03": 2, "21-01": 1}
    for power in (0.0, 0.5, 1.0):
        s = ClassAwareBatchSampler(classes, patents, BatchConfig(batch_size=8, m_per_class=4, class_power=power,
                                                                 batches_per_epoch=10))
        w = np.array([sizes[c] ** power for c in s.class_vocab])
        np.testing.assert_allclose(s.expected_class_counts(), w / w.sum() * 80)


def test_deterministic_per_epoch_seed():
    classes, patents = _long_tail()
    cfg = BatchConfig(batch_size=8, m_per_class=4, seed=5, batches_per_epoch=10)
    a, b = ClassAwareBatchSampler(classes, patents, cfg), ClassAwareBatchSampler(classes, patents, cfg)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    other = ClassAwareBatchSampler(classes, patents, BatchConfig(batch_size=8, m_per_class=4, seed=6,
                                                                 batches_per_epoch=10))
    assert list(other) != first


def test_shards_reassemble_the_global_batch():
    classes, patents = _long_tail()
    cfg = BatchConfig(batch_size=16, m_per_class=4, seed=2, batches_per_epoch=5)
    single = list(ClassAwareBatchSampler(classes, patents, cfg))
    shards = [list(ClassAwareBatchSampler(classes, patents, cfg, num_replicas=2, rank=r)) for r in range(2)]
    for step, batch in enumerate(single):
        assert shards[0][step] + shards[1][step] == batch
    assert len(shards[0]) == len(single) == 5
    with pytest.raises(ValueError, match="divisible"):
        ClassAwareBatchSampler(classes, patents, BatchConfig(batch_size=12, m_per_class=4), num_replicas=5)


def test_config_validation():
    with pytest.raises(ValueError, match="divide batch_size"):
        BatchConfig(batch_size=10, m_per_class=4)
    with pytest.raises(ValueError, match="divide m_per_class"):
        BatchConfig(batch_size=12, m_per_class=3, views_per_patent=2)


def test_encode_labels_and_counts():
    codes, vocab = encode_labels(["b", "a", None, "b"])
    assert vocab == ["a", "b", None] and codes.tolist() == [1, 0, 2, 1]
    assert class_counts(codes) == [1, 2, 1]
    assert class_counts(np.array([0, 0]), num_classes=3) == [2, 0, 0]


# -- descriptions ------------------------------------------------------------------------------

def _table():
    return pa.table({
        "drawing_id": ["d1", "d2", "d3"],
        "descriptions": [["meta d1", "llm d1 a", "llm d1 b", "llm d1 c"], ["meta d2"], ["meta d3", "llm d3 a"]],
        "model": ["m"] * 3,
        "prompt_version": ["v1"] * 3,
    })


def test_description_bank_layout_and_read(tmp_path):
    path = tmp_path / "descriptions.parquet"
    pq.write_table(_table(), path)
    bank = DescriptionBank.read(str(path))
    assert len(bank) == 3 and len(bank.texts) == 7
    assert bank.offsets.tolist() == [0, 4, 5, 7]
    assert bank.texts[bank.offsets[2]] == "meta d3"
    with pytest.raises(KeyError, match="d9"):
        bank.choose(["d9"], 0, 0, 0)
    with pytest.raises(ValueError, match="lacks column"):
        DescriptionBank.from_table(pa.table({"drawing_id": ["x"]}))
    with pytest.raises(ValueError, match="without any description"):
        DescriptionBank(["x"], [[]])


def test_description_choice_is_deterministic_and_covers_all():
    bank = DescriptionBank.from_table(_table())
    ids = ["d1", "d2", "d3", "d1"]
    a = bank.choose(ids, seed=0, epoch=0, step=3)
    np.testing.assert_array_equal(a, bank.choose(ids, seed=0, epoch=0, step=3))
    assert a[0] == a[3]  # depends on the drawing, not on its position
    # the choice for a drawing does not depend on the rest of the batch (rank slicing)
    assert bank.choose(["d3"], 0, 0, 3)[0] == a[2]
    picks = Counter(bank.sample_texts(["d1"], 0, 0, step)[0] for step in range(800))
    assert set(picks) == {"meta d1", "llm d1 a", "llm d1 b", "llm d1 c"}
    assert all(150 <= v <= 250 for v in picks.values()), picks
    assert {bank.texts[i] for i in bank.choose(["d2"] * 5, 1, 2, 3)} == {"meta d2"}


def test_description_first_p():
    bank = DescriptionBank.from_table(_table())
    picks = Counter(bank.sample_texts(["d1"], 0, 0, step, first_p=0.5)[0] for step in range(1200))
    assert 500 <= picks["meta d1"] <= 700
    assert all(130 <= picks[t] <= 270 for t in ("llm d1 a", "llm d1 b", "llm d1 c")), picks
    never = Counter(bank.sample_texts(["d1"], 0, 0, step, first_p=0.0)[0] for step in range(200))
    assert "meta d1" not in never
    always = {bank.sample_texts(["d1", "d3"], 0, 0, step, first_p=1.0)[0] for step in range(50)}
    assert always == {"meta d1"}
