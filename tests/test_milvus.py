"""The Milvus wiring: Milvus Lite unit tests and one integration test on the embedded server."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import psutil
import pytest
from pydantic import ValidationError

from priorsight.config import MilvusConfig
from priorsight.milvus import (
    OUTPUT_FIELDS,
    EmbeddedMilvus,
    Filter,
    MilvusUnavailable,
    build_filter,
    collection_rows,
    connect,
    create_drawing_collection,
    create_indexes,
    drop_version,
    grant_date_int,
    list_versions,
    live_collection,
    next_version_name,
    search,
    search_params,
    swap_alias,
    upsert_drawings,
    vector_index,
)
from priorsight.records import VIEWS

DIM = 16
CLASSES = ["01-01", "02-03", "28-03", "28-07"]


def make_rows(n: int, model_version: str = "m1", seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [{
        "drawing_id": f"D{i:05d}", "patent_id": f"P{i // 3:05d}", "locarno_class": CLASSES[i % len(CLASSES)],
        "us_class": f"D{1 + i % 3}-{100 + i}", "view": VIEWS[i % len(VIEWS)], "grant_date": grant_date_int(f"{2000 + i % 20}-0{1 + i % 9}-15"),
        "source": "uspto" if i % 2 else "synthetic", "model_version": model_version, "embedding": vecs[i].tolist(),
    } for i in range(n)]


def count(client, collection: str) -> int:
    return len(client.query(collection, filter='drawing_id != ""', output_fields=["drawing_id"], limit=16384))


@pytest.fixture()
def lite(tmp_path):
    cfg = MilvusConfig(target="lite", uri=str(tmp_path / "lite.db"), consistency_level="Strong")
    client = connect(cfg)
    yield client, cfg
    client.close()


# -- filter builder -----------------------------------------------------------------------

def test_build_filter_validates_and_normalises():
    assert build_filter() == ""
    f = build_filter(locarno_classes=["2803", "28-03", "7-01"], date_from="2010-01-01",
                     date_to="2019-12-31", views=["front", "top"], sources="uspto", patent_ids=["USD912345"])
    assert isinstance(f, Filter)
    assert f == ('locarno_class in ["07-01", "28-03"] and grant_date >= 20100101 and grant_date <= 20191231'
                 ' and view in ["front", "top"] and source in ["uspto"] and patent_id in ["USD912345"]')
    assert build_filter(locarno_classes=["28", "02-03"]) == '(locarno_class in ["02-03"] or locarno_class like "28-%")'


@pytest.mark.parametrize("kwargs", [
    {"locarno_classes": ['01-01" or drawing_id != "']},
    {"locarno_classes": ["01-01 or 1==1"]},
    {"locarno_classes": ["33-01"]},
    {"locarno_classes": ["99"]},
    {"locarno_classes": []},
    {"locarno_classes": [101]},
    {"views": ['front"] or view not in ["']},
    {"views": ["Front"]},
    {"sources": ['uspto" || source != "']},
    {"sources": ["a b"]},
    {"sources": ["x\n"]},
    {"patent_ids": ['US1") or (1 == 1']},
    {"patent_ids": ["US1\\"]},
    {"patent_ids": ["\u201cUS1\u201d"]},
    {"patent_ids": ["-leading"]},
    {"date_from": "2020-01-01 or 1==1"},
    {"date_from": "2020-13-01"},
    {"date_to": "20200101"},
    {"date_to": "2020-01-01\n"},
    {"views": "front\n"},
    {"date_from": "2021-01-01", "date_to": "2020-01-01"},
])
def test_build_filter_rejects_injection_and_bad_values(kwargs):
    with pytest.raises(ValueError):
        build_filter(**kwargs)


def test_drawing_row_from_record():
    from priorsight.milvus import drawing_row
    from priorsight.records import Drawing

    d = Drawing(drawing_id="USD900001-2", patent_id="USD900001", image_uri="s3://b/x.png", source="uspto",
                view="top", locarno_class="28-03", grant_date="2021-03-09")
    row = drawing_row(d, np.full(DIM, 0.25, dtype=np.float64), "m1")
    assert row["grant_date"] == 20210309 and row["locarno_class"] == "28-03" and row["view"] == "top"
    assert row["drawing_id"] == "USD900001-2" and len(row["embedding"]) == DIM
    assert drawing_row(Drawing("a", "p", "u", "s"), np.zeros(DIM), "m1")["grant_date"] == 0


def test_index_and_search_params_of_both_index_types():
    cfg = MilvusConfig(search_ef=32, search_nprobe=8, search_reorder_k=50)
    assert cfg.index_type == "auto" and cfg.scann_min_rows == 100_000
    assert vector_index(cfg, 99_999) == ("HNSW", {"M": 32, "efConstruction": 200})
    assert vector_index(cfg, 100_000) == ("SCANN", {"nlist": 1024})
    assert vector_index(cfg.model_copy(update={"index_type": "HNSW"}), 10**7)[0] == "HNSW"
    assert vector_index(cfg.model_copy(update={"index_type": "SCANN", "scann_nlist": 64}), 0) == ("SCANN", {"nlist": 64})
    # every search carries both indexes' parameters, raised to what k needs
    assert search_params(cfg, 10) == {"ef": 32, "nprobe": 8, "reorder_k": 50}
    assert search_params(cfg, 100) == {"ef": 100, "nprobe": 8, "reorder_k": 100}
    assert search_params(cfg, 10, ef=200) == {"ef": 200, "nprobe": 8, "reorder_k": 50}
    assert search_params(cfg, 10, nprobe=16) == {"ef": 32, "nprobe": 16, "reorder_k": 50}
    with pytest.raises(ValidationError):
        MilvusConfig(index_type="IVF_PQ")


def test_search_rejects_raw_filter_strings(lite):
    client, cfg = lite
    create_drawing_collection(client, "drawings_v1", DIM, cfg)
    with pytest.raises(TypeError):
        search(client, "drawings_v1", np.ones(DIM), filter='view != ""')  # type: ignore[arg-type]


# -- Lite: schema, upsert, aliases, search ------------------------------------------------

def test_collection_schema(lite):
    client, cfg = lite
    create_drawing_collection(client, "drawings_v1", DIM, cfg, model_version="effnet-2026-11")
    desc = client.describe_collection("drawings_v1")
    fields = {f["name"]: f for f in desc["fields"]}
    assert set(fields) == {"drawing_id", "patent_id", "locarno_class", "us_class", "view", "grant_date", "source",
                           "model_version", "embedding"}
    assert fields["drawing_id"].get("is_primary") and fields["drawing_id"]["type"].name == "VARCHAR"
    assert fields["grant_date"]["type"].name == "INT64"
    assert fields["embedding"]["type"].name == "FLOAT_VECTOR" and int(fields["embedding"]["params"]["dim"]) == DIM
    assert not desc["auto_id"]
    index = client.describe_index("drawings_v1", "embedding")
    assert index["metric_type"] == "IP"
    with pytest.raises(ValueError):
        create_drawing_collection(client, "drawings_v1", DIM, cfg)


def test_upsert_is_idempotent_by_drawing_id(lite):
    client, cfg = lite
    create_drawing_collection(client, "drawings_v1", DIM, cfg)
    rows = make_rows(50)
    assert upsert_drawings(client, "drawings_v1", rows, batch_size=16) == 50
    changed = [dict(r, view="rear") if r["drawing_id"] == "D00007" else r for r in rows]
    upsert_drawings(client, "drawings_v1", changed, batch_size=7)
    assert count(client, "drawings_v1") == 50
    got = client.query("drawings_v1", filter=build_filter(patent_ids=["P00002"]), output_fields=["view"])
    assert {g["drawing_id"]: g["view"] for g in got}["D00007"] == "rear"
    assert collection_rows(client, "drawings_v1") == 50


def test_search_with_filters(lite):
    client, cfg = lite
    create_drawing_collection(client, "drawings_v1", DIM, cfg)
    rows = make_rows(200)
    upsert_drawings(client, "drawings_v1", rows)
    q = np.array(rows[10]["embedding"])
    top = search(client, "drawings_v1", q, k=5, output_fields=OUTPUT_FIELDS)[0]
    assert top[0].drawing_id == "D00010" and top[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)

    f = build_filter(locarno_classes=["28"], date_from="2005-01-01", date_to="2012-12-31", views=["left", "rear"])
    expected = {r["drawing_id"] for r in rows if r["locarno_class"].startswith("28-")
                and 20050101 <= r["grant_date"] <= 20121231 and r["view"] in ("left", "rear")}
    assert expected  # the data must make the filter meaningful
    hits = search(client, "drawings_v1", q, k=len(rows), filter=f, output_fields=OUTPUT_FIELDS)[0]
    assert {h.drawing_id for h in hits} == expected
    for h in hits:
        assert h.fields["locarno_class"].startswith("28-") and h.fields["view"] in ("left", "rear")
    # US design classes: a main class (all its subclasses) or exact subclasses
    f = build_filter(us_classes=["D2", "D1-110"])
    expected = {r["drawing_id"] for r in rows if r["us_class"].startswith("D2-") or r["us_class"] == "D1-110"}
    hits = search(client, "drawings_v1", q, k=len(rows), filter=f, output_fields=OUTPUT_FIELDS)[0]
    assert expected and {h.drawing_id for h in hits} == expected


def test_versions_behind_alias(lite):
    client, cfg = lite
    assert next_version_name(client, "drawings") == "drawings_v1"
    create_drawing_collection(client, "drawings_v1", DIM, cfg, model_version="m1")
    upsert_drawings(client, "drawings_v1", make_rows(30, "m1"))
    assert swap_alias(client, "drawings", "drawings_v1") is None
    v2 = next_version_name(client, "drawings")
    assert v2 == "drawings_v2"
    create_drawing_collection(client, v2, DIM, cfg, model_version="m2")
    upsert_drawings(client, v2, make_rows(40, "m2", seed=1))
    q = np.ones(DIM)
    assert {h.fields["model_version"] for h in search(client, "drawings", q, k=5, output_fields=["model_version"])[0]} == {"m1"}

    assert swap_alias(client, "drawings", v2) == "drawings_v1"
    assert live_collection(client, "drawings") == v2
    assert {h.fields["model_version"] for h in search(client, "drawings", q, k=5, output_fields=["model_version"])[0]} == {"m2"}
    versions = {v.name: v for v in list_versions(client, "drawings")}
    assert versions["drawings_v1"].rows == 30 and not versions["drawings_v1"].live
    assert versions[v2].rows == 40 and versions[v2].live
    with pytest.raises(ValueError):
        drop_version(client, "drawings", v2)  # live
    assert swap_alias(client, "drawings", "drawings_v1") == v2  # rollback
    drop_version(client, "drawings", v2)
    assert [v.name for v in list_versions(client, "drawings")] == ["drawings_v1"]


def test_connect_embedded_not_running_is_a_clear_error(tmp_path):
    with pytest.raises(MilvusUnavailable, match="not running"):
        connect(MilvusConfig(target="embedded", data_dir=tmp_path / "milvus"))


def test_cli_status_when_stopped(tmp_path):
    from typer.testing import CliRunner

    from priorsight.cli import app

    res = CliRunner().invoke(app, ["milvus", "status", "--data-dir", str(tmp_path / "m")])
    assert res.exit_code == 3, res.output
    assert "stopped" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args, message", [
    (["--index-type", "IVF_PQ"], "--index-type must be auto, HNSW or SCANN"),
    (["--breadths", "64,x"], "--breadths must be comma-separated integers"),
])
def test_cli_bench_index_rejects_bad_options(tmp_path, args, message):
    from typer.testing import CliRunner

    from priorsight.cli import app

    res = CliRunner().invoke(app, ["bench", "index", "--data-dir", str(tmp_path / "m"), *args])
    assert res.exit_code != 0 and message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "m").exists()  # refused before any server start


# -- integration: the embedded server ------------------------------------------------------

@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    """One embedded Milvus for the session (first start unpacks ~500 MB into its data dir)."""
    data_dir = tmp_path_factory.mktemp("milvus")
    server = EmbeddedMilvus(data_dir, start_timeout_s=240, stop_timeout_s=30)
    st = server.start()
    yield server, st
    server.stop()


@pytest.mark.slow
def test_index_bench_keeps_and_reuses_its_collection(embedded):
    """``bench index --keep`` then ``--reuse``: the second run searches the kept collection
    (adding the scalar indexes it lacks) and measures the same recall; other HNSW settings
    do not reuse it."""
    from priorsight.bench_index import reusable, run_index_bench

    server, _ = embedded
    cfg = MilvusConfig(target="embedded", data_dir=server.data_dir, hnsw_m=8, hnsw_ef_construction=64)
    common = dict(rows=3000, dim=32, n_queries=60, breadths=(16, 64), keep=True, record=False, settle_timeout_s=20)
    first = run_index_bench(cfg.model_copy(update={"scalar_indexes": False}), **common)
    assert "reused_collection" not in first and first["insert_rows_per_s"] > 0
    assert first["index"]["scalar_indexes"] == {}
    client = connect(cfg)
    name = live_collection(client, "bench_drawings")
    assert name and collection_rows(client, name) == 3000
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0", cfg) == name
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0", cfg.model_copy(update={"hnsw_m": 16})) is None
    assert reusable(client, "bench_drawings", 2000, "synthetic-32d-seed0", cfg) is None

    second = run_index_bench(cfg, reuse=True, **common)
    assert second["reused_collection"] == name and "insert_rows_per_s" not in second
    assert second["index"]["scalar_indexes"] == {"grant_date": "STL_SORT", "locarno_class": "Trie",
                                                 "source": "Trie", "us_class": "Trie", "view": "Trie"}
    assert client.describe_index(name, "locarno_class")["index_type"] == "Trie"
    for a, b in zip(first["sweep"], second["sweep"], strict=True):
        assert (a["ef"], a["filter"]) == (b["ef"], b["filter"])
        assert b["recall@10"] >= 0.9 and abs(a["recall@10"] - b["recall@10"]) <= 0.05
    client.drop_alias("bench_drawings")
    client.drop_collection(name)


def _indexed(client, name: str, rows: int, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (info := client.describe_index(name, "embedding")).get("indexed_rows", 0) < rows:
        assert time.monotonic() < deadline, info
        time.sleep(0.5)
    return info


@pytest.mark.slow
def test_a_grown_collection_gets_the_index_its_rows_call_for(embedded):
    """The index job's last step on a collection that was indexed already (a run resumed after a
    kill was indexed on the rows written before it; a re-run adds drawings): HNSW built on 1,500
    rows becomes SCANN once the collection holds ``scann_min_rows``, and searches; the collection
    an alias serves keeps its index."""
    from cluster.index_job import settle_vector_index

    server, _ = embedded
    auto = MilvusConfig(target="embedded", data_dir=server.data_dir, consistency_level="Strong", alias="grown",
                        scann_min_rows=2000, scann_nlist=16, search_nprobe=16, hnsw_m=8, hnsw_ef_construction=64)
    client = connect(auto)
    rows = make_rows(3000, "m1")
    create_drawing_collection(client, "grown_v1", DIM, auto, model_version="m1", build_index=False)
    upsert_drawings(client, "grown_v1", rows[:1500], batch_size=1500)
    client.flush("grown_v1")
    create_indexes(client, "grown_v1", auto)
    assert _indexed(client, "grown_v1", 1500)["index_type"] == "HNSW"  # (segments under 1,024 rows get none)
    assert not settle_vector_index(client, "grown_v1", auto)  # right for 1,500 rows
    client.load_collection("grown_v1")

    upsert_drawings(client, "grown_v1", rows[1500:], batch_size=1500)
    client.flush("grown_v1")
    assert settle_vector_index(client, "grown_v1", auto)
    info = _indexed(client, "grown_v1", 3000)
    assert info["index_type"] == "SCANN" and int(info["nlist"]) == 16
    assert not settle_vector_index(client, "grown_v1", auto)  # settled
    client.load_collection("grown_v1")
    vecs = np.array([r["embedding"] for r in rows], np.float32)
    hits = search(client, "grown_v1", vecs[2500], k=5, params=search_params(auto, 5))[0]
    assert hits[0].drawing_id == rows[2500]["drawing_id"]

    swap_alias(client, "grown", "grown_v1")  # served: not released for a rebuild
    assert not settle_vector_index(client, "grown_v1", auto.model_copy(update={"index_type": "HNSW"}))
    assert client.describe_index("grown_v1", "embedding")["index_type"] == "SCANN"
    client.drop_alias("grown")
    client.drop_collection("grown_v1")
    client.close()


@pytest.mark.slow
def test_scann_index_on_the_embedded_server(embedded):
    """``index_type: SCANN`` is built with its nlist and found by its search parameters; the
    parameters of either configured type search a collection of the other (an alias may swap
    from HNSW to SCANN); ``auto`` picks SCANN from ``scann_min_rows``; ``bench index`` then sweeps
    nprobe and does not reuse a collection of another index type."""
    from priorsight.bench_index import reusable, run_index_bench

    server, _ = embedded
    hnsw = MilvusConfig(target="embedded", data_dir=server.data_dir, consistency_level="Strong",
                        index_type="HNSW", hnsw_m=8, hnsw_ef_construction=64)
    scann = hnsw.model_copy(update={"index_type": "SCANN", "scann_nlist": 16, "search_nprobe": 16})
    client = connect(scann)
    rows = make_rows(3000, "m1")
    vecs = np.array([r["embedding"] for r in rows], np.float32)
    for name, cfg in (("scann_v1", scann), ("hnsw_v1", hnsw)):
        create_drawing_collection(client, name, DIM, cfg, model_version="m1", build_index=False)
        upsert_drawings(client, name, rows, batch_size=1000)
        client.flush(name)
        create_indexes(client, name, cfg)
        _indexed(client, name, len(rows))
        client.load_collection(name)
    index = client.describe_index("scann_v1", "embedding")
    assert index["index_type"] == "SCANN" and int(index["nlist"]) == 16 and index["metric_type"] == "IP"
    assert client.describe_index("hnsw_v1", "embedding")["index_type"] == "HNSW"

    rng = np.random.default_rng(5)
    queries = vecs[:40] + 0.3 * rng.standard_normal((40, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    for name in ("scann_v1", "hnsw_v1"):
        for cfg in (scann, hnsw):
            found = search(client, name, queries, k=10, params=search_params(cfg, 10))
            recall = np.mean([len({int(h.drawing_id[1:]) for h in hits} & set(want.tolist())) / 10
                              for hits, want in zip(found, exact, strict=True)])
            assert recall >= 0.9, (name, cfg.index_type, recall)
    f = build_filter(locarno_classes=["02-03"])
    hits = search(client, "scann_v1", queries[0], k=10, filter=f, params=search_params(scann, 10),
                  output_fields=OUTPUT_FIELDS)[0]
    assert len(hits) == 10 and all(h.fields["locarno_class"] == "02-03" for h in hits)
    for name in ("scann_v1", "hnsw_v1"):
        client.drop_collection(name)

    auto = scann.model_copy(update={"index_type": "auto", "scann_min_rows": 2000})  # 3000 rows: SCANN
    r = run_index_bench(auto, rows=3000, dim=32, n_queries=60, breadths=(1, 16), keep=True, record=False,
                        settle_timeout_s=20)
    assert r["index"]["type"] == "SCANN" and r["index"]["nlist"] == 16 and r["index"]["search_knob"] == "nprobe"
    assert [(row["nprobe"], row["filter"]) for row in r["sweep"]] == [
        (1, "none"), (1, "locarno_class"), (16, "none"), (16, "locarno_class")]
    assert all(row["recall@10"] >= 0.9 for row in r["sweep"] if row["nprobe"] == 16)
    name = live_collection(client, "bench_drawings")
    assert client.describe_index(name, "embedding")["index_type"] == "SCANN"
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0", auto) == name
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0", scann) == name
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0", hnsw) is None
    assert reusable(client, "bench_drawings", 3000, "synthetic-32d-seed0",
                    scann.model_copy(update={"scann_nlist": 32})) is None
    client.drop_alias("bench_drawings")
    client.drop_collection(name)
    client.close()


@pytest.mark.slow
def test_embedded_server_end_to_end(embedded):
    server, st = embedded
    assert st.running and st.port
    assert server.start().pid == st.pid  # idempotent
    cfg = MilvusConfig(target="embedded", data_dir=server.data_dir, consistency_level="Strong",
                       hnsw_m=8, hnsw_ef_construction=64)
    client = connect(cfg)
    assert client.list_collections() == []
    with pytest.raises(ValueError, match="30772"):
        create_drawing_collection(client, "x_v1", DIM, cfg.model_copy(update={"partition_key": True}))

    rows = make_rows(1500, "m1")
    create_drawing_collection(client, "drawings_v1", DIM, cfg, model_version="m1")
    upsert_drawings(client, "drawings_v1", rows, batch_size=500)
    upsert_drawings(client, "drawings_v1", rows[:700], batch_size=500)  # a re-run
    client.flush("drawings_v1")
    index = _indexed(client, "drawings_v1", len(rows))
    assert index["index_type"] == "HNSW" and index["metric_type"] == "IP"
    assert client.describe_index("drawings_v1", "locarno_class")["index_type"] == "Trie"
    assert client.describe_index("drawings_v1", "grant_date")["index_type"] == "STL_SORT"
    assert count(client, "drawings_v1") == len(rows)
    swap_alias(client, "drawings", "drawings_v1")

    q = np.array(rows[123]["embedding"])
    top = search(client, "drawings", q, k=10, params={"ef": 64})[0]
    assert top[0].drawing_id == "D00123" and len(top) == 10
    f = build_filter(locarno_classes=["02-03"], date_from="2005-01-01")
    hits = search(client, "drawings", q, k=10, filter=f, params={"ef": 64}, output_fields=OUTPUT_FIELDS)[0]
    assert hits and all(h.fields["locarno_class"] == "02-03" and h.fields["grant_date"] >= 20050101 for h in hits)
    main = build_filter(locarno_classes=["28"], views=["left"])  # prefix match and view, on their indexes
    hits = search(client, "drawings", q, k=10, filter=main, params={"ef": 64}, output_fields=OUTPUT_FIELDS)[0]
    want = {r["drawing_id"] for r in rows if r["locarno_class"].startswith("28-") and r["view"] == "left"}
    assert len(hits) == 10 and {h.drawing_id for h in hits} <= want

    # build v2 beside the live v1, swap while a client keeps searching through the alias
    create_drawing_collection(client, "drawings_v2", DIM, cfg, model_version="m2")
    upsert_drawings(client, "drawings_v2", make_rows(800, "m2", seed=3), batch_size=400)
    seen, errors, stop = [], [], threading.Event()

    def searcher() -> None:
        c = connect(cfg)
        while not stop.is_set():
            try:
                seen.append(search(c, "drawings", q, k=3, output_fields=["model_version"])[0][0].fields["model_version"])
            except Exception as exc:  # noqa: BLE001 - any failure during the swap is the finding
                errors.append(repr(exc))
        c.close()

    t = threading.Thread(target=searcher)
    t.start()
    while len(seen) < 20 and t.is_alive():
        time.sleep(0.05)
    assert swap_alias(client, "drawings", "drawings_v2") == "drawings_v1"
    n_at_swap = len(seen)
    while len(seen) < n_at_swap + 20 and t.is_alive():
        time.sleep(0.05)
    stop.set()
    t.join(timeout=30)
    assert errors == []
    assert seen[0] == "m1" and seen[-1] == "m2"
    assert sorted(v.name for v in list_versions(client, "drawings")) == ["drawings_v1", "drawings_v2"]
    client.close()

    state = json.loads(server.state_file.read_text())
    assert server.stop()
    for pid in (state["pid"], state["server_pid"]):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not server.state_file.exists()
    assert not server.status().running
    assert not server.stop()  # already stopped


@pytest.mark.slow
def test_serve_commands_stop_only_the_servers_they_started(embedded):
    """`priorsight serve` / `bench serve` stop, on exit (Ctrl-C included), the embedded Milvus
    they started, and leave one that was running before."""
    from services.commands import stop_started_servers

    server, _ = embedded
    server.stop()
    with pytest.raises(KeyboardInterrupt), stop_started_servers([server.data_dir]):
        assert server.start().running
        raise KeyboardInterrupt
    assert not server.status().running
    server.start()
    with stop_started_servers([server.data_dir]):
        pass
    assert server.status().running
    assert server.stop()
