"""The /v1 API over in-process query objects: a real model (pretrained backbone, random heads),
real embeddings of generated drawings in Milvus Lite, the FastAPI app the Serve ingress runs."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from priorsight.config import MilvusConfig, SearchSourceConfig
from priorsight.manifest import iter_drawings
from priorsight.milvus import build_filter, connect
from services.backends import local_app
from services.search import FanOutSearcher


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from services.sample import sample_setup

    root = tmp_path_factory.mktemp("serve_api")
    milvus = MilvusConfig(target="lite", uri=str(root / "lite.db"))
    config, encoder = sample_setup(root, milvus, text=True)
    config = config.model_copy(update={"max_upload_mb": 1.0, "max_image_pixels": 4_000_000})
    drawings = {d.drawing_id: d for d in iter_drawings(config.manifest)}
    client = connect(milvus)
    searcher = FanOutSearcher(config.sources, {config.sources[0].name: client})
    app = local_app(config, encoder, searcher)
    with TestClient(app) as http:
        yield {"http": http, "config": config, "drawings": drawings, "encoder": encoder, "client": client,
               "milvus": milvus}
    client.close()


def png(drawing) -> bytes:
    return Path(drawing.image_uri).read_bytes()


def post(http, files, **data):
    form = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in data.items()}
    return http.post("/v1/search", files=[("images", f) for f in files], data=form)


def test_indexed_drawing_finds_its_patent_first_with_all_views(setup):
    d = setup["drawings"]["USD0900002-2"]
    r = post(setup["http"], [("q.png", png(d), "image/png")], k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["results"][0]
    assert top["patent_id"] == d.patent_id
    assert top["score"] == pytest.approx(1.0, abs=1e-4)  # same preprocessing + model as the index
    views = {x["drawing_id"] for x in top["drawings"]}
    assert views == {i for i, x in setup["drawings"].items() if x.patent_id == d.patent_id}
    assert top["title"] == d.title and top["locarno_class"] == d.locarno_class and top["grant_date"] == d.grant_date
    assert len(body["results"]) == 3 and body["partial"] is False
    rec = body["record"]
    assert rec["model"]["name"] == "demo-small" and rec["indexes"] == {"sample": "drawings"}
    assert rec["images"][0]["filename"] == "q.png" and len(rec["images"][0]["sha256"]) == 64
    img = setup["http"].get(top["drawings"][0]["image_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content == Path(setup["drawings"][top["drawings"][0]["drawing_id"]].image_uri).read_bytes()


def test_several_views_and_words_are_fused(setup):
    """Each view's vector carries the words: an indexed view scores w.image x 1 (its own image)
    + w.text x the words' similarity to its title (this model has no class head); the views are
    then fused by max or RRF."""
    ds = [setup["drawings"]["USD0900001-1"], setup["drawings"]["USD0900001-3"]]
    words = "ornamental square design"
    enc = setup["encoder"]
    title_sim = float((enc.embed_texts([words]) @ enc.embed_texts([ds[0].title]).T)[0, 0])
    for fusion in ("max", "rrf"):
        r = post(setup["http"], [(f"v{i}.png", png(d), "image/png") for i, d in enumerate(ds)],
                 text=words, fusion=fusion, k=4)
        assert r.status_code == 200, r.text
        body = r.json()
        scores = {p["patent_id"]: p["score"] for p in body["results"]}
        if fusion == "max":  # both views are indexed drawings of USD0900001
            assert body["results"][0]["patent_id"] == "USD0900001"
            w = setup["config"].query_weights
            assert scores["USD0900001"] == pytest.approx(w.image + w.text * title_sim, abs=1e-4)
        else:  # ranked first by both views: at least 2 / (rrf_k + 1)
            assert scores["USD0900001"] >= 2 / (setup["config"].rrf_k + 1) - 1e-6
        keys = {int(q) for p in body["results"] for x in p["drawings"] for q in x["query_scores"]}
        assert keys == {0, 1}  # one vector per view, each with the words
        assert body["record"]["fusion"] == fusion and body["record"]["text"] == words


def test_us_class_filter(setup):
    """The sample corpus has no US classes: a US class filter finds nothing, and says so (200)."""
    r = post(setup["http"], [("q.png", png(setup["drawings"]["USD0900000-1"]), "image/png")], k=5,
             filters={"us_classes": ["D14", "D7-654"]})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []
    assert 'us_class like "D14-%"' in r.json()["record"]["filter_expression"]


def test_words_only_query(setup):
    """Words alone rank by the drawings' titles: "ring" finds the ring designs first."""
    r = setup["http"].post("/v1/search", data={"text": "Ornamental ring design", "k": "2"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    rings = {d.patent_id for d in setup["drawings"].values() if "ring" in d.title}
    if rings:
        w = setup["config"].query_weights
        assert results[0]["patent_id"] in rings and results[0]["score"] == pytest.approx(w.text, abs=1e-4)


def test_filters_restrict_results(setup):
    d = setup["drawings"]["USD0900002-1"]
    other_class = setup["drawings"]["USD0900004-1"].locarno_class
    r = post(setup["http"], [("q.png", png(d), "image/png")], k=10,
             filters={"locarno_classes": [other_class], "views": ["front", "top"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"], body
    for p in body["results"]:
        assert p["locarno_class"] == other_class
        assert {x["view"] for x in p["drawings"]} <= {"front", "top"}
    assert body["record"]["filter_expression"] == str(build_filter(locarno_classes=[other_class], views=["front", "top"]))
    grant = d.grant_date
    r = post(setup["http"], [("q.png", png(d), "image/png")], k=10, filters={"date_from": grant, "date_to": grant})
    assert [p["patent_id"] for p in r.json()["results"]] == [d.patent_id]  # one patent granted that day


def test_ungrouped_drawings_and_crop(setup):
    d = setup["drawings"]["USD0900003-1"]
    r = post(setup["http"], [("q.png", png(d), "image/png")], k=5, group_by_patent="false")
    body = r.json()
    assert r.status_code == 200 and body["results"] == [] and len(body["drawings"]) == 5
    assert body["drawings"][0]["drawing_id"] == d.drawing_id
    crop = {"x0": 0.0, "y0": 0.0, "x1": 0.5, "y1": 0.5}
    r = post(setup["http"], [("q.png", png(d), "image/png")], k=5, group_by_patent="false", crops=[crop])
    assert r.status_code == 200, r.text
    cropped = r.json()
    assert cropped["record"]["images"][0]["crop"] == crop
    assert cropped["drawings"][0]["score"] < body["drawings"][0]["score"]  # a different query: not the whole drawing


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (3000, 3000), 1).save(buf, format="PNG")  # 9 Mpx, tiny file; limit here is 4 Mpx
    return buf.getvalue()


@pytest.mark.parametrize("case, status, code", [
    ("not_an_image", 415, "bad_image"),
    ("truncated", 415, "bad_image"),
    ("too_many", 422, "too_many_images"),
    ("huge_upload", 413, "upload_too_large"),
    ("bomb", 413, "bad_image"),
    ("k_zero", 422, "invalid_request"),
    ("k_huge", 422, "invalid_request"),
    ("k_text", 422, "invalid_request"),
    ("filters_not_json", 422, "invalid_filters"),
    ("filters_unknown_key", 422, "invalid_filters"),
    ("bad_class", 422, "invalid_filters"),
    ("bad_us_class", 422, "invalid_filters"),
    ("us_class_injection", 422, "invalid_filters"),
    ("bad_view", 422, "invalid_filters"),
    ("bad_date", 422, "invalid_filters"),
    ("injection", 422, "invalid_filters"),
    ("dates_reversed", 422, "invalid_filters"),
    ("bad_crop", 422, "invalid_crops"),
    ("crops_wrong_length", 422, "invalid_crops"),
    ("empty", 422, "empty_query"),
    ("bad_fusion", 422, "invalid_request"),
])
def test_bad_input_is_a_clear_4xx(setup, case, status, code):
    good = ("q.png", png(setup["drawings"]["USD0900000-1"]), "image/png")
    files, data = [good], {}
    if case == "not_an_image":
        files = [("notes.txt", b"claims: 1. An ornamental design", "text/plain")]
    elif case == "truncated":
        files = [("q.png", good[1][: len(good[1]) // 2], "image/png")]
    elif case == "too_many":
        files = [good] * 8
    elif case == "huge_upload":
        files = [("big.png", b"\x89PNG" + b"0" * (1024 * 1024 + 10), "image/png")]
    elif case == "bomb":
        files = [("bomb.png", _bomb(), "image/png")]
    elif case == "k_zero":
        data = {"k": 0}
    elif case == "k_huge":
        data = {"k": 10_000}
    elif case == "k_text":
        data = {"k": "ten"}
    elif case == "filters_not_json":
        data = {"filters": "{locarno: 26"}
    elif case == "filters_unknown_key":
        data = {"filters": {"office": "EP"}}
    elif case == "bad_class":
        data = {"filters": {"locarno_classes": ["99"]}}
    elif case == "bad_us_class":
        data = {"filters": {"us_classes": ["D40"]}}
    elif case == "us_class_injection":
        data = {"filters": {"us_classes": ['D14" or 1==1 or us_class=="']}}
    elif case == "bad_view":
        data = {"filters": {"views": ["diagonal"]}}
    elif case == "bad_date":
        data = {"filters": {"date_from": "2020-13-45"}}
    elif case == "injection":
        data = {"filters": {"sources": ['x" or 1==1 or source=="y']}}
    elif case == "dates_reversed":
        data = {"filters": {"date_from": "2021-01-01", "date_to": "2020-01-01"}}
    elif case == "bad_crop":
        data = {"crops": [{"x0": 0.6, "y0": 0, "x1": 0.2, "y1": 1}]}
    elif case == "crops_wrong_length":
        data = {"crops": [None, None]}
    elif case == "empty":
        files = []
    elif case == "bad_fusion":
        data = {"fusion": "mean"}
    r = post(setup["http"], files, **data)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


def test_patent_and_image_endpoints_serve_catalog_ids_only(setup):
    http = setup["http"]
    r = http.get("/v1/patents/USD0900001")
    assert r.status_code == 200
    p = r.json()
    assert [d["drawing_id"] for d in p["drawings"]] == ["USD0900001-1", "USD0900001-2", "USD0900001-3"]
    assert "image_uri" not in p["drawings"][0]
    assert http.get("/v1/patents/NOPE").status_code == 404
    for bad in ("/v1/drawings/..%2F..%2Fetc%2Fpasswd/image", "/v1/drawings/%2Fetc%2Fpasswd/image",
                "/v1/drawings/unknown-id/image", "/v1/drawings/../../etc/passwd/image"):
        r = http.get(bad)
        assert r.status_code == 404, bad
        assert "root:" not in r.text


def test_ops_endpoints_schema_and_metrics(setup):
    http = setup["http"]
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["sources"] == {"sample": True}
    schema = http.get("/openapi.json").json()
    assert "/v1/search" in schema["paths"] and "/v1/patents/{patent_id}" in schema["paths"]
    assert "SearchResponse" in json.dumps(schema)
    page = http.get("/")
    assert page.status_code == 200 and "PriorSight" in page.text
    post(http, [("q.png", png(setup["drawings"]["USD0900000-1"]), "image/png")], k=2)
    text = http.get("/metrics").text
    for name in ("priorsight_request_seconds_bucket", "priorsight_embed_seconds_count",
                 'priorsight_search_seconds_count{source="sample"}', "priorsight_embed_batch_size_count",
                 "priorsight_errors_total", "priorsight_partial_results_total"):
        assert name in text, name
    assert 'endpoint="/v1/search"' in text


class SlowClient:
    """A Milvus client stand-in that answers after the source's timeout."""

    def search(self, *args, **kwargs):
        time.sleep(1.0)
        return []

    def get_load_state(self, name):
        return {"state": "LoadState.Loaded"}

    def query(self, *args, **kwargs):
        return []


def test_a_source_whose_collection_is_not_loaded_is_not_ready(setup):
    """After a Milvus restart a collection exists before it can be searched: not ready yet."""
    client, cfg = setup["client"], setup["config"]
    client.create_collection("not_loaded_yet", dimension=8)
    try:
        client.release_collection("not_loaded_yet")
        other = SearchSourceConfig(name="other", milvus=setup["milvus"], collection="not_loaded_yet")
        searcher = FanOutSearcher([cfg.sources[0], other], {"sample": client, "other": client})
        assert searcher.ready() == {"sample": True, "other": False}
        client.load_collection("not_loaded_yet")
        assert searcher.ready() == {"sample": True, "other": True}
    finally:
        client.drop_collection("not_loaded_yet")


def test_failed_or_slow_source_marks_the_result_partial(setup):
    cfg = setup["config"]
    good = cfg.sources[0]
    broken = SearchSourceConfig(name="broken", milvus=setup["milvus"], collection="no_such_collection")
    slow = SearchSourceConfig(name="slow", milvus=setup["milvus"], timeout_s=0.2)
    searcher = FanOutSearcher([good, broken, slow], {"sample": setup["client"], "broken": setup["client"],
                                                     "slow": SlowClient()})
    vec = setup["encoder"].embed_queries([([np.zeros((3, 128, 128), np.float32)], None)])[0]  # fused query vectors
    out = searcher.search(vec, k=3)
    assert out.partial and out.answered
    reasons = {f.source: f.reason for f in out.failures}
    assert set(reasons) == {"broken", "slow"} and reasons["slow"].startswith("timeout")
    assert len(out.patents) == 3
    none = FanOutSearcher([broken], {"broken": setup["client"]}).search(vec, k=3)
    assert not none.answered and none.patents == []
    app = local_app(cfg.model_copy(update={"sources": [good, broken]}), setup["encoder"],
                    FanOutSearcher([good, broken], {"sample": setup["client"], "broken": setup["client"]}))
    with TestClient(app) as http:
        r = post(http, [("q.png", png(setup["drawings"]["USD0900000-1"]), "image/png")], k=2)
        assert r.status_code == 200 and r.json()["partial"] is True
        assert [f["source"] for f in r.json()["failed_sources"]] == ["broken"]
        assert "priorsight_partial_results_total 1.0" in http.get("/metrics").text
    app = local_app(cfg.model_copy(update={"sources": [broken]}), setup["encoder"],
                    FanOutSearcher([broken], {"broken": setup["client"]}))
    with TestClient(app) as http:
        r = post(http, [("q.png", png(setup["drawings"]["USD0900000-1"]), "image/png")], k=2)
        assert r.status_code == 503 and r.json()["error"]["code"] == "index_unavailable"


def test_a_bad_upload_in_a_batch_does_not_fail_the_other_queries(setup):
    enc = setup["encoder"]
    good = png(setup["drawings"]["USD0900000-1"])
    out = enc.embed_uploads([([(good, None)], None), ([(good, None), (b"junk", None)], "words"), ([], "ring")])
    assert out[0].error is None and out[0].vectors.shape == (1, enc.info.embed_dim)
    assert out[1].vectors is None and out[1].error_image == 1 and "cannot decode" in out[1].error
    assert out[2].error is None and out[2].vectors.shape == (1, enc.info.embed_dim)
    alone = enc.embed_uploads([([(good, None)], None)])[0].vectors
    np.testing.assert_allclose(out[0].vectors, alone, atol=1e-5)  # batching does not change a query's vector
