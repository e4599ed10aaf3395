"""The Ray Data indexing job, into Milvus Lite (single process) with a real trained checkpoint."""

from __future__ import annotations

import shutil

import pytest

from cluster.index_job import index_corpus
from priorsight.config import MilvusConfig
from priorsight.manifest import read_manifest
from priorsight.milvus import build_filter, connect, live_collection, search
from training.evaluate import resolve_corpus
from training.losses import LossConfig
from training.samplers import BatchConfig
from training.train import TrainConfig, run_training

PATENTS = ("USD0917866-20210504", "USD0917867-20210504", "USD0929296-20210831", "USD0909824-20210209")


@pytest.fixture(scope="module")
def corpus_and_model(uspto_sample, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("index")
    src = tmp / "src"
    for name in PATENTS:
        shutil.copytree(uspto_sample / name, src / name)
    corpus = resolve_corpus(str(src), workdir=str(tmp / "corpus"))
    run = tmp / "run"
    run_training(TrainConfig(model="demo-small", corpus=corpus, run_dir=str(run), epochs=1, max_steps_per_epoch=1,
                             feature_views=0,
                             batch=BatchConfig(batch_size=8, m_per_class=4, views_per_patent=2),
                             loss=LossConfig(image_text=False)))
    return corpus, str(run), tmp


def test_index_resume_and_search(corpus_and_model):
    corpus, run, tmp = corpus_and_model
    cfg = MilvusConfig(target="lite", uri=str(tmp / "milvus.db"))
    n = read_manifest(corpus).num_rows  # 17 drawings
    first = index_corpus(corpus, run, cfg, limit=10, progress=False)
    assert (first.written, first.failed, first.rows_in_collection) == (10, 0, 10)
    assert first.live == first.collection  # the first index becomes live
    # a "killed" job rerun on the whole corpus resumes: only the rest is embedded, nothing duplicated
    again = index_corpus(corpus, run, cfg, progress=False)
    assert again.collection == first.collection
    assert (again.skipped_existing, again.written, again.rows_in_collection) == (10, n - 10, n)
    client = connect(cfg)
    assert live_collection(client, cfg.alias) == first.collection
    shoe = next(r for r in read_manifest(corpus).to_pylist() if r["patent_id"] == "USD0917867")
    from cluster.index_job import DocumentTower, read_and_preprocess
    from priorsight.vectors import FusionWeights

    tower = DocumentTower(run)
    arrays, errors = read_and_preprocess(tower.storage, [shoe["image_uri"]], tower.preprocessing)
    enc = tower.encoder
    image = enc.embed_images(arrays[0][None])
    # the stored vector is [image ; title]: the drawing's own image finds it at similarity 1 ...
    (hits,) = search(client, cfg.alias, enc.queries(image, None, FusionWeights()), k=3,
                     filter=build_filter(locarno_classes=["02-04"]))
    assert hits[0].drawing_id == shoe["drawing_id"] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(h.fields.get("locarno_class", "02-04") == "02-04" for h in hits)
    # ... its image and its title at 1 + 1 (each part unit length, weights 1 and 1)
    words = enc.embed_texts([shoe["title"]])
    (hits,) = search(client, cfg.alias, enc.queries(image, words, FusionWeights()), k=3,
                     filter=build_filter(us_classes=["D2"]))
    assert hits[0].drawing_id == shoe["drawing_id"] and hits[0].score == pytest.approx(2.0, abs=1e-3)
    assert {h.fields["us_class"] for h in hits} <= {"D2-977", "D2-973"}  # the two shoes' US classes
    # the title alone ranks the two shoes ("Shoe") above everything else
    (hits,) = search(client, cfg.alias, enc.queries(None, words, FusionWeights()), k=12)
    shoes = {r["drawing_id"] for r in read_manifest(corpus).to_pylist() if r["title"] == "Shoe"}
    assert {h.drawing_id for h in hits[:len(shoes)]} == shoes
    client.close()


def test_unreadable_images_are_recorded(corpus_and_model, tmp_path):
    corpus, run, tmp = corpus_and_model
    import pyarrow as pa

    from priorsight.manifest import write_table

    table = read_manifest(corpus)
    uris = table.column("image_uri").to_pylist()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    uris[0], uris[1] = str(broken), str(tmp_path / "missing.png")
    bad = tmp_path / "bad"
    write_table(table.set_column(table.schema.get_field_index("image_uri"), "image_uri", pa.array(uris)),
                str(bad / "manifest.parquet"))
    cfg = MilvusConfig(target="lite", uri=str(tmp_path / "m.db"))
    r = index_corpus(str(bad), run, cfg, progress=False)
    assert (r.failed, r.written, r.rows_in_collection) == (2, table.num_rows - 2, table.num_rows - 2)
    from priorsight.manifest import read_table

    fails = read_table(r.failures_uri).to_pylist()
    assert sorted(f["drawing_id"] for f in fails) == sorted(table.column("drawing_id").to_pylist()[:2])
    assert any("cannot decode image" in f["reason"] for f in fails)
    assert any("no such file" in f["reason"] for f in fails)
