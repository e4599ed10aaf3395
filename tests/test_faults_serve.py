"""Faults under load (issue 10), on the real thing: the Ray Serve app on a local Ray (2 embedder and
2 searcher replicas), the embedded Milvus server, two fan-out sources, HTTP on 127.0.0.1 only.

One Serve app and one Milvus server for the module; the tests run in file order and each leaves
the system healthy: a fan-out source down (partial results), replicas killed every few seconds
under a bounded client loop, the index job killed mid-way and rerun, the Milvus server stopped
and started again (last). Measured numbers are printed (``-s``) and quoted in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from priorsight.config import DeploymentScaling, MilvusConfig, SearchSourceConfig, ServeConfig
from priorsight.manifest import iter_drawings
from priorsight.milvus import EmbeddedMilvus
from tests.conftest import free_port

pytestmark = pytest.mark.slow

APP = "priorsight"


class TcpProxy:
    """A loopback TCP forwarder to the embedded Milvus (whatever its port is now): the second
    fan-out source. ``stop`` closes the listener and every connection (the source is down);
    ``start`` listens again on the same port."""

    def __init__(self, target):
        self.target = target  # () -> (host, port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._listener = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target(), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._listener is not None:
            try:  # wakes the accepting thread (close alone would leave it listening)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ray import serve

    from services.commands import start_serving
    from services.embedding import QueryEncoder
    from services.sample import index_corpus, write_random_checkpoint, write_sample_corpus

    root = tmp_path_factory.mktemp("faults")
    milvus = MilvusConfig(target="embedded", data_dir=root / "milvus", start_timeout_s=120, stop_timeout_s=5)
    server = EmbeddedMilvus.from_config(milvus)
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(server.start)
        checkpoint = write_random_checkpoint(root / "model" / "sample.pt")
        encoder = QueryEncoder.load(checkpoint, text=False)
        corpus = write_sample_corpus(root / "corpus", n_patents=5)
        started.result()
    proxy = TcpProxy(lambda: ("127.0.0.1", EmbeddedMilvus(root / "milvus").status().port or 1))
    proxy.start()
    try:
        index_corpus(encoder, corpus, milvus)
        del encoder
        office2 = SearchSourceConfig(
            name="office2",
            collection="drawings",
            timeout_s=2.0,
            milvus=MilvusConfig(target="external", uri=f"http://127.0.0.1:{proxy.port}"),
        )
        config = ServeConfig(
            checkpoint=checkpoint,
            manifest=corpus,
            text_queries=False,
            sources=[SearchSourceConfig(name="sample", milvus=milvus, timeout_s=2.0), office2],
        )
        two = DeploymentScaling(
            num_cpus=0.25, min_replicas=2, max_replicas=2, max_ongoing_requests=16, health_check_period_s=1.0
        )  # a killed replica is replaced within ~1 s + start
        one = DeploymentScaling(num_cpus=0.25, min_replicas=1, max_replicas=1, max_ongoing_requests=32)
        config = config.model_copy(
            update={
                "embedder": two,
                "searcher": two,
                "ingress": one,
                "embed_threads": 1,
                "backend_timeout_s": 10.0,
                "retry_after_s": 1,
            }
        )
        port = free_port()
        url = start_serving(config, "127.0.0.1", port, num_cpus=2, ready_timeout_s=150)
        drawings = {d.drawing_id: d for d in iter_drawings(corpus)}
        yield {
            "url": url,
            "config": config,
            "server": server,
            "proxy": proxy,
            "root": root,
            "milvus": milvus,
            "checkpoint": checkpoint,
            "drawings": drawings,
            "images": [(i, Path(d.image_uri).read_bytes()) for i, d in sorted(drawings.items())],
        }
    finally:
        import ray

        proxy.stop()
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            server.stop()


@dataclass
class Answer:
    status: int
    seconds: float
    retry_after: str | None = None
    partial: bool | None = None
    error: str = ""


def search(url: str, image: tuple[str, bytes], timeout: float = 30.0) -> Answer:
    t0 = time.monotonic()
    try:
        r = httpx.post(
            f"{url}/v1/search",
            files=[("images", (f"{image[0]}.png", image[1], "image/png"))],
            data={"k": "3"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return Answer(0, time.monotonic() - t0, error=f"{type(exc).__name__}: {exc}")
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    return Answer(
        r.status_code,
        time.monotonic() - t0,
        r.headers.get("retry-after"),
        body.get("partial") if r.status_code == 200 else None,
        "" if r.status_code == 200 else r.text[:300],
    )


def load_loop(url: str, images, stop: threading.Event, out: list[Answer], clients: int = 3) -> None:
    """``clients`` threads searching without pause until ``stop``; answers appended to ``out``
    as they come."""

    def client(c: int) -> None:
        i = c
        while not stop.is_set():
            out.append(search(url, images[i % len(images)]))  # list.append is atomic
            i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=60)


def replicas(deployment: str) -> list[str]:
    """Names of the replica actors of a deployment (from the GCS: this Ray runs no dashboard)."""
    import ray

    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


def running(deployment: str) -> int:
    from ray import serve

    return serve.status().applications[APP].deployments[deployment].replica_states.get("RUNNING", 0)


def summary(answers: list[Answer]) -> str:
    ok = sum(a.status == 200 for a in answers)
    lat = sorted(a.seconds for a in answers) or [0.0]
    return (
        f"{len(answers)} requests, {ok} ok ({ok / max(len(answers), 1):.2%}), "
        f"statuses {sorted({a.status for a in answers})}, p50 {lat[len(lat) // 2]:.2f} s, max {lat[-1]:.2f} s"
    )


# -- the tests, in order ----------------------------------------------------------------------------


def test_one_of_two_sources_down_gives_partial_results(served):
    url, images, proxy = served["url"], served["images"], served["proxy"]
    full = search(url, images[0])
    assert full.status == 200 and full.partial is False, full
    proxy.stop()
    try:
        answers = [search(url, images[i % len(images)]) for i in range(6)]
        print("office2 down:", summary(answers))
        assert all(a.status == 200 and a.partial is True for a in answers), answers
        assert max(a.seconds for a in answers) < 5  # within the source's 2 s timeout, plus the rest
        r = httpx.post(f"{url}/v1/search", files=[("images", ("q.png", images[0][1], "image/png"))], timeout=30)
        body = r.json()
        assert [f["source"] for f in body["failed_sources"]] == ["office2"]
        assert body["results"] and body["record"]["indexes"] == {"sample": "drawings"}
        assert httpx.get(f"{url}/readyz").json()["sources"] == {"sample": True, "office2": False}
    finally:
        proxy.start()
    deadline = time.monotonic() + 30
    while (a := search(url, images[1])).partial is not False:  # back by itself
        assert time.monotonic() < deadline, a
        time.sleep(0.5)


def test_killing_replicas_under_load_loses_no_search(served):
    import ray

    url, images = served["url"], served["images"]
    for d in ("QueryEmbedder", "Searcher"):
        assert running(d) == 2
    stop = threading.Event()
    results: list[Answer] = []
    loader = threading.Thread(target=load_loop, args=(url, images, stop, results, 2))
    loader.start()
    kills: list[str] = []
    states: list[str] = []
    t0 = time.monotonic()
    try:
        time.sleep(2)
        while time.monotonic() - t0 < 38:
            # every 3 s a replica of a deployment that has both of its replicas up (the other first)
            ready = {d: running(d) == 2 and len(replicas(d)) == 2 for d in ("QueryEmbedder", "Searcher")}
            states.append("".join("ES"[i] if ok else "-" for i, ok in enumerate(ready.values())))
            order = (
                ["Searcher", "QueryEmbedder"]
                if kills and kills[-1].startswith("Query")
                else ["QueryEmbedder", "Searcher"]
            )
            d = next((x for x in order if ready[x]), None)
            if d is not None:
                ray.kill(ray.get_actor(replicas(d)[len(kills) % 2], namespace="serve"), no_restart=False)
                kills.append(f"{d}@{time.monotonic() - t0:.1f}s")
            time.sleep(3)
    finally:
        stop.set()
        loader.join(timeout=120)
    print(f"replica kills {kills} (deployments with 2 replicas up, every 3 s: {' '.join(states)}): {summary(results)}")
    assert len(kills) >= 3 and len(results) >= 50
    ok = [a for a in results if a.status == 200]
    failed = [a for a in results if a.status != 200]
    assert len(ok) / len(results) >= 0.99, (summary(results), failed[:5])
    assert all(a.status == 503 and a.retry_after for a in failed), failed  # retryable, never a 500 or a hang
    assert max(a.seconds for a in results) < served["config"].backend_timeout_s + 5
    deadline = time.monotonic() + 120
    while not (running("QueryEmbedder") == 2 and running("Searcher") == 2):  # Serve replaced them
        assert time.monotonic() < deadline
        time.sleep(1)


def _count(client, collection: str) -> int:
    rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(rows[0]["count(*)"])


def test_index_job_killed_midway_then_rerun_has_every_drawing_once(served, tmp_path):
    from priorsight.milvus import connect, live_collection
    from services.sample import write_sample_corpus

    corpus = write_sample_corpus(tmp_path / "corpus", n_patents=120, views=3)  # 360 drawings
    ids = {d.drawing_id for d in iter_drawings(corpus)}
    env = {
        **os.environ,
        "PRIORSIGHT_MILVUS__TARGET": "embedded",
        "PRIORSIGHT_MILVUS__ALIAS": "faultidx",
        "PRIORSIGHT_MILVUS__DATA_DIR": str(served["root"] / "milvus"),
        "PRIORSIGHT_MILVUS__UPSERT_BATCH": "20",
    }
    env["RAY_ADDRESS"] = "local"  # its own Ray, as an operator's job would (not the Serve app's cluster)
    cmd = [
        str(Path(sys.executable).parent / "priorsight"),
        "index",
        corpus,
        "--checkpoint",
        served["checkpoint"],
        "--batch-size",
        "8",
    ]
    cfg = served["milvus"].model_copy(update={"alias": "faultidx", "consistency_level": "Strong"})
    client = connect(cfg)
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        job = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    killed_at, seen = None, 0
    deadline = time.monotonic() + 240
    try:
        while job.poll() is None and time.monotonic() < deadline:
            names = [n for n in client.list_collections() if n.startswith("faultidx_v")]
            if names:  # the collection is not loaded until the end: its statistics count the rows
                seen = int(client.get_collection_stats(names[0]).get("row_count", 0))
                if 0 < seen < len(ids) or "index:" in log.read_text(errors="replace"):
                    time.sleep(0.5 if seen == 0 else 0)
                    killed_at = int(client.get_collection_stats(names[0]).get("row_count", 0))
                    os.killpg(job.pid, signal.SIGKILL)  # the driver and what it started, at once
                    break
            time.sleep(0.2)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    assert killed_at is not None, log.read_text()[-3000:]
    assert live_collection(client, "faultidx") is None  # the killed run never finished (no alias yet)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    name = live_collection(client, "faultidx")
    assert name == "faultidx_v1"  # the rerun resumed the same collection
    rows = client.query(name, filter="", output_fields=["drawing_id"], limit=16384, consistency_level="Strong")
    got = [r["drawing_id"] for r in rows]
    print(
        f"index job killed with {killed_at}/{len(ids)} drawings in the collection; after the rerun "
        f"{len(got)} rows, {len(set(got))} distinct"
    )
    assert _count(client, name) == len(ids) == len(got) == len(set(got)) and set(got) == ids
    client.drop_alias("faultidx")
    client.drop_collection(name)
    client.close()


def test_milvus_down_gives_quick_503s_and_the_service_recovers_by_itself(served):
    url, images, server = served["url"], served["images"], served["server"]
    before = {d: replicas(d) for d in ("QueryEmbedder", "Searcher", "Ingress")}
    assert search(url, images[0]).status == 200
    t_stop = time.monotonic()
    server.stop()
    stopped_s = time.monotonic() - t_stop
    down = [search(url, images[i % len(images)]) for i in range(8)]
    print(f"Milvus stopped in {stopped_s:.1f} s; while down: {summary(down)}")
    assert all(a.status == 503 and a.retry_after == "1" for a in down), down
    assert all("index_unavailable" in a.error for a in down)
    assert max(a.seconds for a in down) < 4  # a source's 2 s timeout at most, then at once
    ready = httpx.get(f"{url}/readyz", timeout=30)
    assert ready.status_code == 503 and ready.headers.get("retry-after") == "1"

    answers: list[Answer] = []
    stop = threading.Event()
    poller = threading.Thread(target=load_loop, args=(url, images, stop, answers, 1))
    poller.start()
    try:
        t_start = time.monotonic()
        server.start()
        started_s = time.monotonic() - t_start
        deadline = time.monotonic() + 90
        while not (answers and answers[-1].status == 200 and answers[-1].partial is False):
            assert time.monotonic() < deadline, summary(answers)
            time.sleep(0.2)
        recovered_s = time.monotonic() - t_start
    finally:
        stop.set()
        poller.join(timeout=60)
    print(
        f"Milvus restarted in {started_s:.1f} s; searches whole again {recovered_s:.1f} s after the start; "
        f"meanwhile {summary(answers)}"
    )
    assert all(a.status in (200, 503) for a in answers)
    assert all(a.retry_after for a in answers if a.status == 503)
    assert {d: replicas(d) for d in before} == before  # no replica died or restarted: no crash loop
