"""Access, abuse and injection (issue 10): API keys (hashed at rest) and scopes, rate limits, CORS,
secrets kept out of logs, the body-size guard, image roots, the typed filter builder, 503s with
Retry-After, admin endpoints; over the real FastAPI app on in-process objects (real model, real
embeddings in Milvus Lite), as tests/test_serve_api.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from typer.testing import CliRunner

from priorsight.config import MilvusConfig, SecurityConfig
from priorsight.manifest import iter_drawings
from priorsight.milvus import build_filter, connect
from services.api import BackendUnavailable, create_api
from services.auth import RateLimiter, hash_key, read_key_file, warn_if_open
from services.backends import HandleBackend, LocalBackend, local_app
from services.catalog import Catalog, within_roots
from services.search import FanOutSearcher


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from services.sample import sample_setup

    root = tmp_path_factory.mktemp("security")
    milvus = MilvusConfig(target="lite", uri=str(root / "lite.db"))
    config, encoder = sample_setup(root, milvus, text=True, n_patents=4)
    config = config.model_copy(update={"max_upload_mb": 1.0, "max_image_pixels": 4_000_000})
    client = connect(milvus)
    searcher = FanOutSearcher(config.sources, {config.sources[0].name: client})
    drawings = {d.drawing_id: d for d in iter_drawings(config.manifest)}
    yield {
        "root": root,
        "config": config,
        "encoder": encoder,
        "searcher": searcher,
        "client": client,
        "drawings": drawings,
        "milvus": milvus,
    }
    client.close()


def make_app(setup, **security):
    cfg = setup["config"]
    cfg = cfg.model_copy(update={"security": SecurityConfig(**security)})
    return local_app(cfg, setup["encoder"], setup["searcher"])


def cli(*args: str) -> str:
    from priorsight.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture(scope="module")
def keys(setup):
    """A key file with a search key, an admin key and an unlimited load-test key."""
    path = setup["root"] / "keys" / "api-keys.yaml"
    out = {
        name: cli("apikey", "create", name, *scopes, "--file", str(path)).strip().splitlines()[-1]
        for name, scopes in (
            ("examiner", ["--scope", "search"]),
            ("ops", ["--scope", "admin"]),
            ("locust", ["--scope", "search", "--rate-limit", "0"]),
        )
    }
    return path, out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def png(setup, drawing_id: str = "USD0900000-1") -> bytes:
    return Path(setup["drawings"][drawing_id].image_uri).read_bytes()


# -- API keys -----------------------------------------------------------------------------------


def test_key_cli_prints_the_key_once_and_stores_only_its_hash(setup, keys):
    path, raw = keys
    text = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for key in raw.values():
        assert re.fullmatch(r"ps_[A-Za-z0-9_\-]{43}", key)
        assert key not in text and hash_key(key) in text
    stored = {k.name: k for k in read_key_file(path)}
    assert stored["examiner"].scopes == ["search"] and stored["ops"].scopes == ["admin"]
    assert stored["locust"].rate_limit_per_s == 0
    listed = cli("apikey", "list", "--file", str(path))
    assert "examiner\tsearch" in listed and not any(k in listed for k in raw.values())
    res = CliRunner().invoke(
        __import__("priorsight.cli").cli.app, ["apikey", "create", "examiner", "--file", str(path)]
    )
    assert res.exit_code == 2 and "exists" in res.output  # names are unique
    res = CliRunner().invoke(
        __import__("priorsight.cli").cli.app, ["apikey", "create", "x", "--scope", "root", "--file", str(path)]
    )
    assert res.exit_code != 0


def test_keys_and_scopes(setup, keys):
    path, raw = keys
    with TestClient(make_app(setup, api_keys_file=str(path))) as http:
        for headers in (
            {},
            bearer("ps_" + "x" * 43),
            {"Authorization": "Basic " + raw["examiner"]},
            bearer(raw["examiner"] + "x"),
        ):
            r = http.post("/v1/search", data={"text": "ring"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        # no key, a declared 50 MB upload: refused for the key before a byte of the body is read
        r = http.post("/v1/search", content=b"", headers={"Content-Length": str(50 * 2**20)})
        assert r.status_code == 401
        r = http.post("/v1/search", data={"text": "ring", "k": "2"}, headers=bearer(raw["examiner"]))
        assert r.status_code == 200, r.text
        assert http.post("/v1/search", data={"text": "ring"}, headers={"X-API-Key": raw["examiner"]}).status_code == 200
        assert http.get("/v1/patents/USD0900001", headers=bearer(raw["examiner"])).status_code == 200
        assert http.get("/v1/patents/USD0900001").status_code == 401
        assert http.get("/v1/drawings/USD0900001-1/image").status_code == 401
        assert http.get("/v1/info").status_code == 401
        for admin in ("/v1/admin/records", "/v1/admin/index/versions"):
            r = http.get(admin, headers=bearer(raw["examiner"]))
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = http.post(
            "/v1/admin/index/swap",
            json={"source": "sample", "collection": "drawings_v1"},
            headers=bearer(raw["examiner"]),
        )
        assert r.status_code == 403
        # the admin key reads the records: who asked, what, which index answered
        r = http.get("/v1/admin/records", headers=bearer(raw["ops"]))
        assert r.status_code == 200
        recs = r.json()["records"]
        assert [x["asked_by"] for x in recs] == ["examiner", "examiner"] and recs[0]["text"] == "ring"
        assert recs[0]["indexes"] == {"sample": "drawings"}
        assert http.post("/v1/search", data={"text": "ring"}, headers=bearer(raw["ops"])).status_code == 200
        # ops endpoints and the page stay open (liveness probes, Prometheus)
        for open_path in ("/healthz", "/readyz", "/metrics", "/", "/openapi.json"):
            assert http.get(open_path).status_code == 200, open_path
        schema = http.get("/openapi.json").json()
        assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])


def test_revoked_key_stops_working_without_a_restart(setup, tmp_path):
    path = tmp_path / "keys.yaml"
    key = cli("apikey", "create", "temp", "--file", str(path)).strip().splitlines()[-1]
    with TestClient(make_app(setup, api_keys_file=str(path))) as http:
        assert http.get("/v1/patents/USD0900001", headers=bearer(key)).status_code == 200
        cli("apikey", "revoke", "temp", "--file", str(path))
        deadline = time.monotonic() + 10
        while http.get("/v1/patents/USD0900001", headers=bearer(key)).status_code != 401:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.25)
    # a key file that is configured but missing: auth stays on, nothing is accepted (fail closed)
    with TestClient(make_app(setup, api_keys_file=str(tmp_path / "missing.yaml"))) as http:
        assert http.get("/v1/patents/USD0900001", headers=bearer(key)).status_code == 401
    with TestClient(make_app(setup, auth="on")) as http:
        assert http.get("/v1/patents/USD0900001").status_code == 401


def test_rate_limit_per_key_with_retry_after(setup, keys):
    path, raw = keys
    words = {"text": "ring", "k": "1"}
    with TestClient(make_app(setup, api_keys_file=str(path), rate_limit_per_s=0.5, rate_limit_burst=3)) as http:
        codes = [http.post("/v1/search", data=words, headers=bearer(raw["examiner"])).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = http.post("/v1/search", data=words, headers=bearer(raw["examiner"]))
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert http.post("/v1/search", data=words, headers=bearer(raw["ops"])).status_code == 200  # its own bucket
        # a catalog read costs a tenth of a search: a results page's images fit in the burst
        assert all(http.get("/v1/patents/USD0900001", headers=bearer(raw["ops"])).status_code == 200 for _ in range(15))
        assert all(
            http.post("/v1/search", data=words, headers=bearer(raw["locust"])).status_code == 200 for _ in range(6)
        )  # rate_limit_per_s 0: unlimited
        assert http.get("/healthz").status_code == 200  # never limited
    with TestClient(make_app(setup, rate_limit_per_s=0.5, rate_limit_burst=2)) as http:  # auth off: per address
        assert [http.post("/v1/search", data=words).status_code for _ in range(3)] == [200, 200, 429]


def test_this_hosts_clients_are_not_limited_when_keys_are_off(setup):
    import httpx

    app = make_app(setup, rate_limit_per_s=0.5, rate_limit_burst=1)

    async def statuses(client_ip: str) -> list[int]:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
            return [(await http.post("/v1/search", data={"text": "ring", "k": "1"})).status_code for _ in range(3)]

    assert asyncio.run(statuses("127.0.0.1")) == [200, 200, 200]  # the demo, benchmarks, a local proxy
    assert asyncio.run(statuses("10.1.2.3")) == [200, 429, 429]


def test_token_bucket_refills():
    lim = RateLimiter(rate=2.0, burst=2)
    assert lim.acquire("a", now=0.0) == 0 and lim.acquire("a", now=0.0) == 0
    assert lim.acquire("a", now=0.0) == pytest.approx(0.5)
    assert lim.acquire("a", now=0.5) == 0  # one token back after 1/rate
    assert lim.acquire("b", now=0.5) == 0
    assert all(lim.acquire("c", now=1.0, cost=0.25) == 0 for _ in range(8))
    assert lim.acquire("c", now=1.0, cost=0.25) == pytest.approx(0.125)


def test_cors_is_closed_by_default(setup):
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(make_app(setup)) as http:
        r = http.options("/v1/search", headers=pre)
        assert "access-control-allow-origin" not in r.headers
        r = http.get("/v1/patents/USD0900001", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(make_app(setup, cors_origins=["https://examiner.office.example"])) as http:
        ok = http.options("/v1/search", headers={**pre, "Origin": "https://examiner.office.example"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://examiner.office.example"
        bad = http.options("/v1/search", headers=pre)
        assert "access-control-allow-origin" not in bad.headers


def test_secrets_never_logged_or_echoed(setup, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "keys.yaml"
    key = cli("apikey", "create", "audit", "--scope", "admin", "--file", str(path)).strip().splitlines()[-1]
    with TestClient(make_app(setup, api_keys_file=str(path), records_file=str(tmp_path / "records.jsonl"))) as http:
        http.post("/v1/search", data={"text": "ring"}, headers=bearer(key))
        http.post("/v1/search", data={"text": "ring"}, headers=bearer(key + "wrong"))
        http.post("/v1/admin/index/swap", json={"source": "sample", "collection": "drawings_v1"}, headers=bearer(key))
        exported = http.get("/v1/admin/records", headers=bearer(key)).text
        metrics = http.get("/metrics").text
    assert "audit" in caplog.text  # the key's name is logged (swap audit line), never the key
    for where in (caplog.text, exported, metrics, (tmp_path / "records.jsonl").read_text()):
        assert key not in where and key[3:20] not in where
    assert json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])["asked_by"] == "audit"
    cfg = setup["config"].model_copy(update={"security": SecurityConfig(api_keys_file=str(path))})
    assert key not in repr(cfg) and key not in cfg.model_dump_json()


def test_warning_when_open_on_a_non_loopback_host(caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    assert warn_if_open(SecurityConfig(), "0.0.0.0") is True
    assert "API keys are OFF" in caplog.text
    assert warn_if_open(SecurityConfig(), "127.0.0.1") is False
    assert warn_if_open(SecurityConfig(), "::1") is False
    assert warn_if_open(SecurityConfig(api_keys_file=str(tmp_path / "k.yaml")), "0.0.0.0") is False


def test_env_names_the_key_file(monkeypatch, tmp_path):
    from priorsight.config import load_settings, serve_config_from_args

    monkeypatch.setenv("PRIORSIGHT_SERVE__SECURITY__API_KEYS_FILE", str(tmp_path / "k.yaml"))
    monkeypatch.setenv("PRIORSIGHT_SERVE__SECURITY__RATE_LIMIT_PER_S", "5")
    monkeypatch.setenv("PRIORSIGHT_API_KEY", "ps_client_side_only")  # a client's key is not a setting
    assert load_settings().serve.security.api_keys_file == str(tmp_path / "k.yaml")
    cfg = serve_config_from_args({"max_k": 50})
    assert cfg.security.api_keys_file == str(tmp_path / "k.yaml") and cfg.security.rate_limit_per_s == 5
    assert cfg.max_k == 50


# -- bad input the Guard and the endpoint refuse ----------------------------------------------------


def test_unknown_fields_and_empty_requests(setup):
    with TestClient(make_app(setup)) as http:
        r = http.post("/v1/search", data={"text": "ring", "top_k": "5"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_field" and "top_k" in r.text
        r = http.post("/v1/search?debug=1", data={"text": "ring"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_field"
        r = http.post("/v1/search", files=[("image", ("q.png", png(setup), "image/png"))])  # singular: a typo
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_field"
        for kwargs in ({}, {"content": b""}, {"json": {"text": "ring"}}, {"data": {"text": "   "}}):
            r = http.post("/v1/search", **kwargs)
            assert r.status_code == 422 and r.json()["error"]["code"] == "empty_query", kwargs
        r = http.post(
            "/v1/search",
            content=b'--xx\r\nContent-Disposition: form-data; name="text"\r\n\r\nri',
            headers={"Content-Type": "multipart/form-data; boundary=xx"},
        )
        assert 400 <= r.status_code < 500  # a truncated multipart body
        r = http.post("/v1/search", content=b"12", headers={"Content-Length": "abc"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_content_length"
        r = http.post("/v1/admin/index/swap", json={"source": "sample", "collection": "drawings_v1", "x": 1})
        assert r.status_code == 422


def _asgi(app, scope_headers: list[tuple[bytes, bytes]], chunks: int, chunk: bytes = b"0" * 65536):
    """Call the ASGI app with a streamed body of ``chunks`` chunks; returns (status, chunks read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        if read >= chunks:
            return {"type": "http.disconnect"}
        read += 1
        head = b'--b\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n\r\n' if read == 1 else b""
        return {"type": "http.request", "body": head + chunk, "more_body": read < chunks}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/search",
        "raw_path": b"/v1/search",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"), *scope_headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], read, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_oversized_uploads_are_cut_early(setup):
    app = make_app(setup)  # limit 1 MiB = 16 chunks of 64 KiB
    status, read, body = _asgi(app, [(b"content-length", str(100 * 2**20).encode())], chunks=1600)
    assert status == 413 and read == 0 and b"upload_too_large" in body  # declared: refused before reading
    status, read, body = _asgi(app, [(b"transfer-encoding", b"chunked")], chunks=1600)
    assert status == 413 and read <= 17 and b"upload_too_large" in body  # streamed: cut just past the limit
    status, read, body = _asgi(app, [], chunks=3)
    assert status == 411 and read == 0


# -- injection and traversal --------------------------------------------------------------------------

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-%]{0,63}$")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    st.lists(st.text(max_size=20), min_size=1, max_size=3),
    st.lists(st.text(max_size=12), min_size=1, max_size=3),
    st.lists(st.text(max_size=12), min_size=1, max_size=2),
    st.one_of(st.none(), st.text(max_size=12)),
)
def test_filter_values_reach_milvus_only_validated(classes, sources, views, date):
    """Whatever the strings, build_filter either refuses them or every value in the expression is
    a quoted token of the allowed alphabet: the expression's structure is the builder's alone."""
    try:
        f = build_filter(locarno_classes=classes, sources=sources, views=views, date_from=date)
    except ValueError:
        return
    values = _QUOTED.findall(f)
    assert all(_SAFE_VALUE.fullmatch(v) for v in values), f
    skeleton = _QUOTED.sub('""', f)
    assert re.fullmatch(
        r'[a-z_ ()\[\]",<=>0-9-]*', skeleton.replace("like", "").replace("in", "").replace("and", "").replace("or", "")
    ), f


def test_image_ids_cannot_escape_the_image_root(setup, tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.png").write_bytes(png(setup))
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (root / "link.png").symlink_to(secret)
    rows = [
        dict(drawing_id=i, patent_id="P1", image_uri=u, source="t")
        for i, u in (
            ("ok", str(root / "a.png")),
            ("dotdot", str(root / ".." / "secret.txt")),
            ("link", str(root / "link.png")),
            ("abs", "/etc/hostname"),
            ("bucket", "s3://other-bucket/images/a.png"),
        )
    ]
    catalog = Catalog(rows, image_roots=[str(root)])
    app = create_api(LocalBackend(setup["encoder"], setup["searcher"]), setup["encoder"].info, catalog, setup["config"])
    with TestClient(app) as http:
        assert http.get("/v1/drawings/ok/image").status_code == 200
        for did in ("dotdot", "link", "abs", "bucket"):
            r = http.get(f"/v1/drawings/{did}/image")
            assert r.status_code == 404 and r.json()["error"]["code"] == "image_unavailable", did
            assert "root:x" not in r.text
        for bad in ("..%2Fsecret.txt", "%2Fetc%2Fhostname", "s3:%2F%2Fother-bucket%2Fa.png", "ok%00", ".."):
            r = http.get(f"/v1/drawings/{bad}/image")
            assert r.status_code == 404, bad
    assert within_roots("s3://b/images/x/1.png", ["s3://b/images/"])
    for uri in ("s3://b/images/../secret", "s3://b2/images/1.png", "s3://b/imagesX/1.png", "s3://b/img/1.png"):
        assert not within_roots(uri, ["s3://b/images/"]), uri
    derived = Catalog(
        rows[:1] + [dict(drawing_id="x", patent_id="P", image_uri=str(root / "sub" / "b.png"), source="t")]
    )
    assert derived.image_roots == [str(root.resolve()) + "/"]


# -- 503 and Retry-After -----------------------------------------------------------------------------


class _Down:
    """A backend whose embedder is gone (what HandleBackend raises after its retry)."""

    def __init__(self, inner):
        self.inner = inner

    async def embed(self, images, text):
        raise BackendUnavailable("QueryEmbedder unavailable (ActorDiedError)")

    async def search(self, *args):
        return await self.inner.search(*args)

    async def ready(self):
        return {"sample": False}


def test_unavailable_backend_is_a_503_with_retry_after(setup):
    app = create_api(_Down(None), setup["encoder"].info, Catalog.load(setup["config"].manifest), setup["config"])
    with TestClient(app) as http:
        r = http.post("/v1/search", data={"text": "ring"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
        assert r.headers["retry-after"] == "2"
        r = http.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "2"


class _Response:
    def __init__(self, outcome, delay=0.0):
        self.outcome, self.delay = outcome, delay

    def __await__(self):
        async def run():
            await asyncio.sleep(self.delay)
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return run().__await__()


class _Method:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def remote(self, *args):
        self.calls += 1
        return self.outcomes.pop(0)


class _Handle:
    deployment_name = "Searcher"

    def __init__(self, outcomes):
        self.ready = _Method(outcomes)


def test_handle_backend_retries_a_dead_replica_once_then_503():
    from ray.exceptions import ActorDiedError
    from ray.serve.exceptions import BackPressureError

    ok = _Handle([_Response(ActorDiedError()), _Response({"sample": True})])
    backend = HandleBackend(None, ok, timeout_s=5)
    assert asyncio.run(backend.ready()) == {"sample": True} and backend.retries == 1 and ok.ready.calls == 2
    dead = _Handle(
        [_Response(ActorDiedError()), _Response(BackPressureError(num_queued_requests=9, max_queued_requests=8))]
    )
    with pytest.raises(BackendUnavailable, match="Searcher unavailable"):
        asyncio.run(HandleBackend(None, dead, timeout_s=5).ready())
    slow = _Handle([_Response({"sample": True}, delay=5)])
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match="timed out"):
        asyncio.run(HandleBackend(None, slow, timeout_s=0.3).ready())
    assert time.monotonic() - t0 < 2
    bug = _Handle([_Response(KeyError("a bug, not a dead replica"))])
    with pytest.raises(KeyError):  # application errors are not retried nor hidden
        asyncio.run(HandleBackend(None, bug, timeout_s=5).ready())
    assert bug.ready.calls == 1


# -- admin: index versions and alias swap ------------------------------------------------------------


def test_admin_swaps_the_alias_between_versions_only(setup, keys):
    from services.sample import index_corpus

    path, raw = keys
    index_corpus(setup["encoder"], setup["config"].manifest, setup["milvus"])  # drawings_v2, now live
    admin = bearer(raw["ops"])
    with TestClient(make_app(setup, api_keys_file=str(path))) as http:
        v = http.get("/v1/admin/index/versions", headers=admin).json()["sources"]["sample"]
        assert v["alias"] == "drawings" and v["live"] == "drawings_v2"
        assert [x["name"] for x in v["versions"]] == ["drawings_v1", "drawings_v2"]
        r = http.post("/v1/admin/index/swap", json={"source": "sample", "collection": "drawings_v1"}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"source": "sample", "alias": "drawings", "previous": "drawings_v2", "live": "drawings_v1"}
        v = http.get("/v1/admin/index/versions", headers=admin).json()["sources"]["sample"]
        assert v["live"] == "drawings_v1"
        for body, status, code in (
            ({"source": "sample", "collection": "other_collection"}, 422, "invalid_collection"),
            ({"source": "sample", "collection": 'drawings_v1" or 1==1'}, 422, "invalid_collection"),
            ({"source": "sample", "collection": "drawings_v99"}, 422, "invalid_collection"),
            ({"source": "nope", "collection": "drawings_v1"}, 404, "unknown_source"),
            ({"source": "sample"}, 422, "invalid_request"),
        ):
            r = http.post("/v1/admin/index/swap", json=body, headers=admin)
            assert r.status_code == status and r.json()["error"]["code"] == code, (body, r.text)
        r = http.post("/v1/search", data={"text": "ring", "k": "1"}, headers=bearer(raw["examiner"]))
        assert r.status_code == 200 and r.json()["results"]


# -- fuzzing the OpenAPI schema -------------------------------------------------------------------

FUZZ_EXAMPLES = {"positive": 150, "negative": 150}  # per operation: 12 operations -> ~3,000 cases


def test_fuzz_openapi_no_server_errors(setup, keys):
    """schemathesis over every operation of /openapi.json, valid and invalid requests alike,
    with an admin key (every endpoint reachable): not one 5xx."""
    import schemathesis
    from schemathesis import GenerationMode

    path, raw = keys
    app = make_app(setup, api_keys_file=str(path), rate_limit_per_s=0)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = bearer(raw["ops"])
    counts: dict[str, int] = {}
    server_errors: list[str] = []
    skipped: list[str] = []
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # malformed bodies are the point here
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 10, [o.label for o in ops]
    t0 = time.monotonic()
    for op in ops:
        for mode, n in FUZZ_EXAMPLES.items():
            gen_mode = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE

            @settings(
                max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
            )
            @given(case=op.as_strategy(generation_mode=gen_mode))
            def run(case):
                response = case.call(headers=headers)
                key = f"{response.status_code // 100}xx"
                counts[key] = counts.get(key, 0) + 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.operation.label}: {response.status_code} {response.text[:200]}")

            try:
                run()
            except Unsatisfiable:  # nothing invalid to make (an operation without inputs)
                skipped.append(f"{op.label} {mode}")
    total = sum(counts.values())
    print(
        f"schemathesis: {total} cases over {len(ops)} operations in {time.monotonic() - t0:.1f} s: {counts}; "
        f"no invalid input for {skipped}"
    )
    assert server_errors == []
    assert total >= 1500 and counts.get("2xx", 0) > 50 and counts.get("4xx", 0) > 500
