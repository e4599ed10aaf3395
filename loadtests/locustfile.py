"""Examiners searching prior art: the Locust load test of the PriorSight API.

Runs only in Locust's own process (``priorsight loadtest run``, or ``locust -f`` by hand):
it imports nothing but the standard library and Locust (Locust's gevent patching breaks a
process that imported boto3 / ray / pymilvus first, and the other way round).

Environment:
  PRIORSIGHT_LOADTEST_QUERIES  the query-set folder (``priorsight loadtest queries``), required
  PRIORSIGHT_LOADTEST_THINK    think time "MIN,MAX" seconds between an examiner's actions (default "1,4")
  PRIORSIGHT_API_KEY           sent as ``Authorization: Bearer ...`` when set
  PRIORSIGHT_LOADTEST_K        results per search (default 10)

Tags select scenarios (``--tags`` / ``-T``): ``search`` (all searches), ``single``,
``multiview``, ``text``, ``filtered``, ``browse`` (``detail`` + ``image``: opening a result).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import deque
from pathlib import Path

from locust import FastHttpUser, between, events, tag, task

QUERIES_ENV = "PRIORSIGHT_LOADTEST_QUERIES"
THINK_ENV = "PRIORSIGHT_LOADTEST_THINK"
KEY_ENV = "PRIORSIGHT_API_KEY"
K_ENV = "PRIORSIGHT_LOADTEST_K"

SEARCH = "/v1/search"
MEDIA = {
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}


def think_range(raw: str | None) -> tuple[float, float]:
    lo, _, hi = (raw or "1,4").partition(",")
    a, b = float(lo), float(hi or lo)
    if a < 0 or b < a:
        raise ValueError(f"{THINK_ENV} must be 'MIN,MAX' with 0 <= MIN <= MAX, got {raw!r}")
    return a, b


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body (FastHttpUser takes bytes): ``(body, content_type)``."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for name, filename, data, media in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {media}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class QuerySet:
    """The queries (images read once per process) grouped by kind, and catalog ids."""

    def __init__(self, folder: Path):
        data = json.loads((folder / "queries.json").read_text())
        self.images: dict[str, bytes] = {}
        self.by_kind: dict[str, list[dict]] = {}
        for q in data["queries"]:
            for name in q["images"]:
                if name not in self.images:
                    self.images[name] = (folder / "images" / name).read_bytes()
            self.by_kind.setdefault(q["kind"], []).append(q)
        self.patents: list[str] = list(data.get("patents") or [])
        self.drawings: list[str] = list(data.get("drawings") or [])

    def pick(self, kind: str, rng: random.Random) -> dict:
        pool = self.by_kind.get(kind) or self.by_kind.get("single") or next(iter(self.by_kind.values()))
        return rng.choice(pool)


_QUERIES: QuerySet | None = None


def query_set() -> QuerySet:
    global _QUERIES
    if _QUERIES is None:
        folder = os.environ.get(QUERIES_ENV)
        if not folder:
            raise RuntimeError(f"set {QUERIES_ENV} to a query-set folder (priorsight loadtest queries)")
        _QUERIES = QuerySet(Path(folder))
    return _QUERIES


@events.init.add_listener
def _load_queries(environment, **_kwargs) -> None:
    query_set()  # fail at start, not in every user, when the query set is missing


class Examiner(FastHttpUser):
    """One examiner: searches with drawings (one view, several views, with words, with
    filters), then opens patents and drawings from the answers; thinks in between."""

    wait_time = between(*think_range(os.environ.get(THINK_ENV)))

    def on_start(self) -> None:
        self.rng = random.Random()
        self.k = int(os.environ.get(K_ENV, "10"))
        key = os.environ.get(KEY_ENV)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.seen_patents: deque[str] = deque(maxlen=50)
        self.seen_drawings: deque[str] = deque(maxlen=200)
        self.words = True
        with self.client.get("/v1/info", name="GET /v1/info", headers=self.headers, catch_response=True) as r:
            if r.status_code == 200:
                self.words = bool(r.json().get("model", {}).get("text", False))
            else:
                r.failure(f"/v1/info answered {r.status_code}")

    # -- searches ---------------------------------------------------------------------------
    def search(self, kind: str) -> None:
        qs = query_set()
        q = qs.pick(kind, self.rng)
        fields = [("k", str(self.k))]
        text = q.get("text")
        if text and self.words:  # a server without a text tower gets the drawing alone
            fields.append(("text", text))
        if q.get("filters"):
            fields.append(("filters", json.dumps(q["filters"])))
        if len(q["images"]) > 1:
            fields.append(("fusion", self.rng.choice(("max", "rrf"))))
        files = [
            ("images", name, qs.images[name], MEDIA.get(Path(name).suffix.lower(), "application/octet-stream"))
            for name in q["images"]
        ]
        body, ctype = multipart(fields, files)
        with self.client.post(
            SEARCH,
            data=body,
            headers={**self.headers, "Content-Type": ctype},
            name=f"POST {SEARCH} [{kind}]",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
                return
            try:
                answer = r.json()
            except ValueError:
                r.failure("answer is not JSON")
                return
            if "record" not in answer:
                r.failure("answer without a search record")
                return
            for p in answer.get("results", []):
                self.seen_patents.append(p["patent_id"])
                self.seen_drawings.extend(d["drawing_id"] for d in p.get("drawings", []))

    @tag("search", "single")
    @task(5)
    def single_drawing(self) -> None:
        self.search("single")

    @tag("search", "multiview")
    @task(2)
    def several_views(self) -> None:
        self.search("multiview")

    @tag("search", "text")
    @task(1)
    def drawing_and_words(self) -> None:
        self.search("text")

    @tag("search", "filtered")
    @task(2)
    def filtered(self) -> None:
        self.search("filtered")

    # -- opening results --------------------------------------------------------------------
    def _some(self, seen: deque[str], catalog: list[str]) -> str | None:
        pool = seen or catalog
        return self.rng.choice(pool) if pool else None

    @tag("browse", "detail")
    @task(2)
    def patent_detail(self) -> None:
        pid = self._some(self.seen_patents, query_set().patents)
        if pid is None:
            self.search("single")  # nothing to open yet
            return
        self.client.get(f"/v1/patents/{pid}", name="GET /v1/patents/{id}", headers=self.headers)

    @tag("browse", "image")
    @task(3)
    def drawing_image(self) -> None:
        did = self._some(self.seen_drawings, query_set().drawings)
        if did is None:
            self.search("single")
            return
        self.client.get(f"/v1/drawings/{did}/image", name="GET /v1/drawings/{id}/image", headers=self.headers)
