"""Milvus wiring for the drawing index: connection, the embedded server, collection design,
the one filter builder, upsert and search.

Targets (``MilvusConfig.target``):

* ``embedded``: a real Milvus standalone (the ``milvus`` package's binary) run under
  ``data_dir`` by a detached supervisor process (``priorsight milvus start``), so it outlives the
  command that started it. The supervisor writes ``data_dir/priorsight-milvus.json`` (pids,
  port). What listens where: the embedded etcd on 127.0.0.1 (2379/2380); the gRPC proxy (19530
  or the next free port: read it from the state file), the internal component ports (13333,
  19529, 19531, 21121, 21123, 21124, 53100) and the metrics/health HTTP port (9091) listen on
  ALL interfaces: Milvus 2.3 has no listen-address setting (its ``*.ip`` settings only choose
  the advertised address, which we set to 127.0.0.1). Firewall those ports on a shared host.
* ``lite``: Milvus Lite on a local ``.db`` file: one process per file, pure Python, unit tests
  only (it accepts searches that real Milvus rejects).
* ``external``: any Milvus server at ``uri`` with ``token``.

Collections are versioned (``{alias}_v{N}``) behind an alias (default ``drawings``): a new
model's index is built beside the live one and :func:`swap_alias` moves the alias atomically;
the old collection stays for rollback until :func:`drop_version`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pymilvus import DataType, MilvusClient, MilvusException

from priorsight.config import MilvusConfig
from priorsight.records import USPC_MAIN_CLASSES, VIEWS, normalise_locarno, normalise_uspc

__all__ = [
    "MilvusConfig", "MilvusUnavailable", "EmbeddedMilvus", "ServerStatus", "Filter", "Hit",
    "VersionInfo", "connect", "create_drawing_collection", "next_version_name", "list_versions",
    "create_indexes", "add_scalar_indexes", "vector_index", "vector_index_matches", "rebuild_vector_index",
    "search_params", "live_collection",
    "swap_alias", "drop_version", "build_filter", "grant_date_int",
    "drawing_row", "upsert_drawings", "search", "collection_rows", "METRIC", "VECTOR_FIELD",
    "OUTPUT_FIELDS",
]

log = logging.getLogger(__name__)

#: A drawing's vector is ``[image ; words]``, each part unit length, and a query's is weighted
#: (priorsight.vectors): the inner product IS the fused score, so IP is the metric of index and
#: search alike (real Milvus rejects a search whose metric differs from the index's).
METRIC = "IP"
VECTOR_FIELD = "embedding"
PRIMARY_FIELD = "drawing_id"
OUTPUT_FIELDS = ["patent_id", "locarno_class", "us_class", "view", "grant_date", "source", "model_version"]
#: Scalar indexes of the filter fields (on a server): without them every filtered search scans
#: every row's value (1M rows: filtered p50 ~11 ms against ~4 ms unfiltered, docs/deploy.md).
#: Trie (marisa) answers ``in`` and prefix ``like`` (main classes); STL_SORT ranges of dates.
SCALAR_INDEXES = {"locarno_class": "Trie", "us_class": "Trie", "grant_date": "STL_SORT", "view": "Trie",
                  "source": "Trie"}
STATE_FILE = "priorsight-milvus.json"
LOCK_FILE = ".priorsight-milvus.lock"
SUPERVISOR_LOG = "supervisor.log"
#: Milvus components whose advertised address is pinned to loopback.
_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class MilvusUnavailable(RuntimeError):
    """Milvus cannot be reached (or the embedded server is not running / failed to start)."""


# -- connection ---------------------------------------------------------------------------

def lite_path(config: MilvusConfig) -> Path:
    return Path(config.uri) if config.uri else config.data_dir / "lite.db"


def connect(config: MilvusConfig, dedicated: bool = False) -> MilvusClient:
    """A client for the configured target; raises :class:`MilvusUnavailable` with a clear
    message when the server cannot be reached. ``dedicated``: a connection of its own (not
    pymilvus's shared one), so closing it after a failure leaves other clients alone and a new
    one does not inherit a broken channel's reconnect back-off."""
    token = config.token.get_secret_value() if config.token else ""
    if config.target == "lite":
        path = lite_path(config)
        if path.suffix != ".db":
            raise ValueError(f"Milvus Lite needs a .db file path, got {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = str(path)
    elif config.target == "embedded":
        st = EmbeddedMilvus(config.data_dir).status()
        if not st.running:
            raise MilvusUnavailable(
                f"the embedded Milvus server is not running under {config.data_dir} "
                "(start it with `priorsight milvus start`)")
        uri = st.uri
    else:
        if not config.uri:
            raise ValueError("milvus.uri must be set for target 'external'")
        uri = config.uri
    try:
        extra = {"dedicated": True} if dedicated and config.target != "lite" else {}
        return MilvusClient(uri=uri, token=token, db_name=config.db, timeout=config.timeout_s, **extra)
    except MilvusException as exc:
        raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {exc}") from exc


# -- embedded server ----------------------------------------------------------------------

@dataclass
class ServerStatus:
    """What ``priorsight milvus status`` reports about the embedded server."""

    running: bool
    data_dir: Path
    pid: int | None = None  # the supervisor (Python) process
    server_pid: int | None = None  # the milvus binary
    port: int | None = None
    host: str = "127.0.0.1"
    started_at: str | None = None
    state: str = "stopped"  # stopped | starting | running | stale

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"


def _alive(pid: int | None, create_time: float | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process, the same one if ``create_time`` is given."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(p.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class EmbeddedMilvus:
    """Start/stop/inspect the embedded Milvus standalone server that runs under ``data_dir``.

    ``start`` spawns a detached supervisor (``python -m priorsight.milvus serve``) that runs the
    milvus binary, writes the state file once the server is healthy and stops the binary
    cleanly on SIGINT/SIGTERM/SIGHUP. ``start`` is idempotent; ``stop`` waits until neither the
    supervisor nor the binary is left.
    """

    def __init__(self, data_dir: Path | str, port: int | None = None, start_timeout_s: float = 300.0,
                 stop_timeout_s: float = 60.0):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s

    @classmethod
    def from_config(cls, config: MilvusConfig) -> EmbeddedMilvus:
        return cls(config.data_dir, config.port, config.start_timeout_s, config.stop_timeout_s)

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def _read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / LOCK_FILE, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def status(self) -> ServerStatus:
        st = self._read_state()
        if not st:
            return ServerStatus(False, self.data_dir)
        sup = _alive(st.get("pid"), st.get("pid_create_time"))
        srv = _alive(st.get("server_pid"), st.get("server_create_time"))
        state = st.get("state", "starting")
        running = sup and srv and state == "running"
        if not sup and not srv:
            state = "stopped"
        elif not running and state == "running":
            state = "stale"
        return ServerStatus(running=running, data_dir=self.data_dir, pid=st.get("pid"),
                            server_pid=st.get("server_pid"), port=st.get("port"),
                            host=st.get("host", "127.0.0.1"), started_at=st.get("started_at"), state=state)

    def start(self) -> ServerStatus:
        """Start the server (or return the running one's status)."""
        with self._lock():
            st = self.status()
            if st.running:
                log.info("embedded Milvus already running on port %s (pid %s)", st.port, st.pid)
                return st
            if st.state != "stopped":  # a half-dead previous run: clean it up first
                self._stop_locked()
            self.state_file.unlink(missing_ok=True)
            (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "priorsight.milvus", "serve", "--data-dir", str(self.data_dir),
                   "--stop-timeout", str(self.stop_timeout_s), "--start-timeout", str(self.start_timeout_s)]
            if self.port:
                cmd += ["--port", str(self.port)]
            log_path = self.data_dir / "logs" / SUPERVISOR_LOG
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True, cwd=os.getcwd())
            log.info("starting embedded Milvus under %s (supervisor pid %d)", self.data_dir, proc.pid)
            deadline = time.monotonic() + self.start_timeout_s + 15  # the supervisor times out first
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise MilvusUnavailable(
                        f"embedded Milvus failed to start (exit code {proc.returncode}); "
                        f"see {log_path}:\n{tail}")
                st = self.status()
                if st.running and st.pid == proc.pid:
                    log.info("embedded Milvus running on %s", st.uri)
                    return st
                time.sleep(0.2)
            self._stop_locked()
            raise MilvusUnavailable(f"embedded Milvus did not start within {self.start_timeout_s:.0f} s; "
                                    f"see {log_path}")

    def stop(self) -> bool:
        """Stop the server cleanly; True if something was running."""
        with self._lock():
            return self._stop_locked()

    def _stop_locked(self) -> bool:
        st = self._read_state()
        if not st:
            return False
        sup_pid, srv_pid = st.get("pid"), st.get("server_pid")
        sup_ok = _alive(sup_pid, st.get("pid_create_time"))
        srv_ok = _alive(srv_pid, st.get("server_create_time"))
        was_running = sup_ok or srv_ok
        if sup_ok:
            os.kill(sup_pid, signal.SIGINT)  # the supervisor stops the binary and waits for it
        elif srv_ok:
            os.kill(srv_pid, signal.SIGTERM)  # orphaned binary: Milvus shuts down on SIGTERM
        deadline = time.monotonic() + self.stop_timeout_s + 5
        while time.monotonic() < deadline and (
                _alive(sup_pid, st.get("pid_create_time")) or _alive(srv_pid, st.get("server_create_time"))):
            time.sleep(0.1)
        for pid, ct in ((srv_pid, st.get("server_create_time")), (sup_pid, st.get("pid_create_time"))):
            if _alive(pid, ct):
                log.warning("process %d did not stop in time; killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        if was_running:
            log.info("embedded Milvus under %s stopped", self.data_dir)
        return was_running


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def _free_port(preferred: int | None = None) -> int:
    """``preferred`` if it can be bound on 127.0.0.1, else a free port the OS picks."""
    import socket

    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def _embedded_etcd_config(data_dir: Path) -> Path:
    """An etcd config for Milvus's in-process etcd on loopback ports of its own.

    Without it the binary always takes 127.0.0.1:2379/2380, so a second embedded server on the
    same host dies at start. The ports are kept across restarts when still free."""
    path = data_dir / "configs" / "embed-etcd.yaml"
    old: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            old = json.loads(path.read_text())  # written as JSON (valid YAML)
    client = _free_port(old.get("x-client-port") or 2379)
    peer = _free_port(old.get("x-peer-port") or 2380)
    if peer == client:
        peer = _free_port()
    cfg = {
        "name": "priorsight", "x-client-port": client, "x-peer-port": peer,
        "listen-client-urls": f"http://127.0.0.1:{client}", "advertise-client-urls": f"http://127.0.0.1:{client}",
        "listen-peer-urls": f"http://127.0.0.1:{peer}", "initial-advertise-peer-urls": f"http://127.0.0.1:{peer}",
        "initial-cluster": f"priorsight=http://127.0.0.1:{peer}",
        "quota-backend-bytes": 4294967296, "auto-compaction-mode": "revision", "auto-compaction-retention": "1000",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _log_errors(data_dir: Path, limit: int = 5) -> str:
    try:
        lines = (data_dir / "logs" / "milvus-stdout.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join([ln[:300] for ln in lines if "[ERROR]" in ln or "[FATAL]" in ln][-limit:])


def serve_embedded(data_dir: Path, port: int | None = None, stop_timeout_s: float = 60.0,
                   start_timeout_s: float = 300.0) -> int:
    """The supervisor's body: run the milvus binary until a signal arrives, then stop it cleanly.

    Called in the detached process that :meth:`EmbeddedMilvus.start` spawns."""
    import urllib.error
    import urllib.request

    from milvus import MilvusServer, MilvusServerConfig

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    data_dir = Path(data_dir)
    server = MilvusServer(MilvusServerConfig(), wait_for_started=False)
    server.set_base_dir(str(data_dir))
    if port:
        server.config.update(proxy_port=port)  # a fixed port: fail if it is taken
    for comp in _COMPONENTS:
        server.config.set(f"{comp}.ip", "127.0.0.1")
    # A standalone query node's graceful stop waits for its segments to move to another node
    # (there is none) for up to 1800 s; its data is safe in the WAL, so let it quit soon.
    server.config.set("common.gracefulStopTimeout", 5)
    etcd_cfg = _embedded_etcd_config(data_dir)
    server.config.update(etcd_port=json.loads(etcd_cfg.read_text())["x-client-port"])
    os.environ["ETCD_CONFIG_PATH"] = str(etcd_cfg)  # the binary inherits our environment
    state_path = data_dir / STATE_FILE
    me = os.getpid()
    _write_state(state_path, {"state": "starting", "pid": me, "pid_create_time": _create_time(me)})
    try:
        server.start()  # resolves ports (a fixed --port that is taken raises), unpacks, launches
    except (RuntimeError, OSError) as exc:
        log.error("milvus did not start: %s", exc)
        server.stop()
        state_path.unlink(missing_ok=True)
        return 1
    proc = server.server_proc
    health = f"http://127.0.0.1:{server.webservice_port}/healthz"
    deadline = time.monotonic() + start_timeout_s
    healthy = False
    while not healthy and not stop.is_set() and proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=2) as resp:
                healthy = "OK" in resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if not healthy:
            time.sleep(0.2)
    if not healthy:
        why = (f"exited with code {proc.returncode}" if proc.poll() is not None
               else "stopped while starting" if stop.is_set() else f"not healthy after {start_timeout_s:.0f} s")
        log.error("milvus did not start: %s\n%s", why, _log_errors(data_dir))
        _stop_binary(server, stop_timeout_s)
        state_path.unlink(missing_ok=True)
        return 0 if stop.is_set() else 1
    _write_state(state_path, {
        "state": "running", "pid": me, "pid_create_time": _create_time(me),
        "server_pid": proc.pid, "server_create_time": _create_time(proc.pid),
        "host": "127.0.0.1", "port": server.listen_port, "health_port": server.webservice_port,
        "etcd_config": str(etcd_cfg),
        "data_dir": str(data_dir), "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    })
    log.info("milvus running: pid %d, port %d", proc.pid, server.listen_port)
    code = 0
    while not stop.wait(0.5):
        if proc.poll() is not None:
            log.error("milvus exited by itself with code %s\n%s", proc.returncode, _log_errors(data_dir))
            code = 1
            break
    _stop_binary(server, stop_timeout_s)
    state_path.unlink(missing_ok=True)
    return code


def _stop_binary(server: Any, timeout_s: float) -> None:
    proc = server.server_proc
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # Milvus's own graceful shutdown
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("milvus did not stop in %.0f s; killing it", timeout_s)
            proc.kill()
            proc.wait(timeout=10)
    server.stop()  # closes the log files (the process is already gone)


# -- collection design --------------------------------------------------------------------

@dataclass
class VersionInfo:
    name: str
    version: int
    live: bool
    rows: int
    description: str = ""


def _version_re(alias: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(alias)}_v(\d+)$")


def next_version_name(client: MilvusClient, alias: str) -> str:
    """``{alias}_v{N+1}`` where N is the highest existing version (``{alias}_v1`` if none)."""
    pat = _version_re(alias)
    versions = [int(m.group(1)) for n in client.list_collections() if (m := pat.fullmatch(n))]
    return f"{alias}_v{max(versions, default=0) + 1}"


def create_drawing_collection(client: MilvusClient, name: str, dim: int, config: MilvusConfig,
                              model_version: str = "", build_index: bool = True, lite: bool | None = None) -> None:
    """Create a drawings collection (raises if it exists).

    Fields: ``drawing_id`` VARCHAR primary key; ``patent_id``, ``locarno_class`` (partition key
    if ``config.partition_key``), ``us_class`` (``D14-345``), ``view``, ``grant_date`` (INT64
    YYYYMMDD, 0 = unknown), ``source``, ``model_version``; ``embedding`` FLOAT_VECTOR(dim) (the
    fused ``[image ; words]`` vector, priorsight.vectors), inner product. Indexes
    (:func:`create_indexes`): ``index_type`` (HNSW or SCANN, :func:`vector_index`) and the
    filter fields' scalar indexes on a server, AUTOINDEX on Lite. With ``build_index=False`` no index is
    created (bulk loads: insert, flush, then :func:`create_indexes`)."""
    if client.has_collection(name):
        raise ValueError(f"collection {name} already exists")
    lite = config.target == "lite" if lite is None else lite
    if config.partition_key and not lite:
        _check_partition_key_support(client)
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False,
        description=json.dumps({"kind": "priorsight-drawings", "model_version": model_version, "dim": dim,
                                "metric": METRIC, "vectors": "image+words"}))
    schema.add_field(PRIMARY_FIELD, DataType.VARCHAR, max_length=128, is_primary=True)
    schema.add_field("patent_id", DataType.VARCHAR, max_length=64)
    schema.add_field("locarno_class", DataType.VARCHAR, max_length=8,
                     is_partition_key=config.partition_key and not lite)
    schema.add_field("us_class", DataType.VARCHAR, max_length=16)
    schema.add_field("view", DataType.VARCHAR, max_length=16)
    schema.add_field("grant_date", DataType.INT64)
    schema.add_field("source", DataType.VARCHAR, max_length=64)
    schema.add_field("model_version", DataType.VARCHAR, max_length=64)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
    kwargs: dict[str, Any] = {}
    if config.partition_key and not lite:
        kwargs["num_partitions"] = config.num_partitions
    client.create_collection(name, schema=schema, consistency_level=config.consistency_level,
                             timeout=config.timeout_s, **kwargs)
    if build_index:
        create_indexes(client, name, config, lite=lite)
        client.load_collection(name, timeout=config.timeout_s)
    log.info("created collection %s (dim %d, model %s)", name, dim, model_version or "-")


def _check_partition_key_support(client: MilvusClient) -> None:
    """Refuse a partition key where upsert routes rows wrongly (Milvus < 2.3.10, #30772)."""
    version = str(client.get_server_version())
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    if m and tuple(int(x) for x in m.groups()) < (2, 3, 10):
        raise ValueError(f"Milvus {version} upserts rows into the wrong partition when a partition key is "
                         "set (milvus-io/milvus#30772): set milvus.partition_key=false or use Milvus >= 2.4")


def create_indexes(client: MilvusClient, name: str, config: MilvusConfig, lite: bool | None = None) -> None:
    """The vector index (:func:`vector_index` on a server, AUTOINDEX on Lite) and, on a server
    with ``config.scalar_indexes``, the filter fields' :data:`SCALAR_INDEXES`. Each call waits for
    its index; the scalar ones (seconds) go first, or they would queue behind the vector index's
    segment rebuilds that follow a bulk load (minutes)."""
    lite = config.target == "lite" if lite is None else lite
    params = client.prepare_index_params()
    if lite:
        params.add_index(VECTOR_FIELD, index_type="AUTOINDEX", metric_type=METRIC)
    else:
        if config.scalar_indexes:
            _add_scalar_params(params, SCALAR_INDEXES)
        _add_vector_params(client, name, config, params)
    client.create_index(name, params, timeout=config.timeout_s)


def _add_vector_params(client: MilvusClient, name: str, config: MilvusConfig, params: Any) -> None:
    rows = collection_rows(client, name)
    index_type, index_params = vector_index(config, rows)
    params.add_index(VECTOR_FIELD, index_type=index_type, metric_type=METRIC, params=index_params)
    log.info("%s: %s index %s (%d rows)", name, index_type, index_params, rows)


def vector_index_matches(client: MilvusClient, name: str, config: MilvusConfig, rows: int) -> bool:
    """Whether a server collection's vector index is the one :func:`vector_index` picks for
    ``rows`` rows (same type and build parameters)."""
    info = client.describe_index(name, VECTOR_FIELD) or {}
    index_type, params = vector_index(config, rows)
    return info.get("index_type") == index_type and all(int(info.get(p, -1)) == v for p, v in params.items())


def rebuild_vector_index(client: MilvusClient, name: str, config: MilvusConfig) -> None:
    """Replace a server collection's vector index with the one ``config`` picks for the rows it
    holds now. The collection is released (unsearchable) until the new index is built and it is
    loaded again: never do this to a collection an alias serves."""
    old = client.describe_index(name, VECTOR_FIELD) or {}
    client.release_collection(name, timeout=config.timeout_s)
    client.drop_index(name, old.get("index_name") or VECTOR_FIELD, timeout=config.timeout_s)
    params = client.prepare_index_params()
    _add_vector_params(client, name, config, params)
    client.create_index(name, params, timeout=config.timeout_s)


def vector_index(config: MilvusConfig, rows: int = 0) -> tuple[str, dict[str, int]]:
    """Type and build parameters of the server vector index for a collection of ``rows`` rows
    (``config.index_type``; ``auto``: SCANN from ``config.scann_min_rows`` rows, else HNSW)."""
    index_type = config.index_type
    if index_type == "auto":
        index_type = "SCANN" if rows >= config.scann_min_rows else "HNSW"
    if index_type == "SCANN":
        return "SCANN", {"nlist": config.scann_nlist}
    return "HNSW", {"M": config.hnsw_m, "efConstruction": config.hnsw_ef_construction}


def search_params(config: MilvusConfig, k: int, ef: int | None = None, nprobe: int | None = None
                  ) -> dict[str, int]:
    """Search parameters for top-``k``: HNSW's ``ef`` and SCANN's ``nprobe`` + ``reorder_k``, all
    of them (each index reads its own, so the caller need not know which one a collection has),
    raised to what ``k`` needs; ``ef`` / ``nprobe`` override the configured ones."""
    return {"ef": max(ef or config.search_ef, k), "nprobe": nprobe or config.search_nprobe,
            "reorder_k": max(config.search_reorder_k, k)}


def _add_scalar_params(params: Any, fields: dict[str, str]) -> None:
    for field_name, index_type in fields.items():
        params.add_index(field_name, index_type=index_type, index_name=field_name)


def add_scalar_indexes(client: MilvusClient, name: str, timeout: float | None = None) -> list[str]:
    """Give an existing server collection the :data:`SCALAR_INDEXES` it lacks (it is released
    for that: load it again afterwards); returns the fields indexed here."""
    have = set(client.list_indexes(name))
    missing = {f: t for f, t in SCALAR_INDEXES.items() if f not in have}
    if missing:
        client.release_collection(name)
        params = client.prepare_index_params()
        _add_scalar_params(params, missing)
        client.create_index(name, params, timeout=timeout)
    return sorted(missing)


def collection_rows(client: MilvusClient, name: str) -> int:
    """Row count from the collection statistics (no flush: may lag recent inserts)."""
    return int(client.get_collection_stats(name).get("row_count", 0))


def is_loaded(client: Any, collection: str) -> bool:
    """Whether a collection (or alias) exists and is loaded."""
    state = str(client.get_load_state(collection).get("state", ""))
    return state.endswith("Loaded") and not state.endswith("NotLoad")


def answers(client: Any, collection: str, timeout: float | None = None) -> bool:
    """Whether a collection (or alias) is loaded and answers a query within ``timeout``: right
    after a restart Milvus reports a collection loaded seconds before reads on it return (its
    query node is still catching up with the log), and searches then time out."""
    if not is_loaded(client, collection):
        return False
    client.query(collection, filter="", limit=1, output_fields=[PRIMARY_FIELD], timeout=timeout)
    return True


def live_collection(client: MilvusClient, alias: str) -> str | None:
    """The collection the alias points at, or None."""
    listed = client.list_aliases()
    names = listed.get("aliases", []) if isinstance(listed, dict) else list(listed)
    if alias not in names:
        return None
    return client.describe_alias(alias).get("collection_name") or None


def list_versions(client: MilvusClient, alias: str) -> list[VersionInfo]:
    pat = _version_re(alias)
    live = live_collection(client, alias)
    out = []
    for n in client.list_collections():
        if m := pat.fullmatch(n):
            desc = client.describe_collection(n).get("description", "")
            out.append(VersionInfo(n, int(m.group(1)), n == live, collection_rows(client, n), desc))
    return sorted(out, key=lambda v: v.version)


def swap_alias(client: MilvusClient, alias: str, new_collection: str) -> str | None:
    """Point ``alias`` at ``new_collection`` atomically (loading it first so searches through the
    alias never hit an unloaded collection). Returns the previous collection (kept for rollback)."""
    if not client.has_collection(new_collection):
        raise ValueError(f"no collection {new_collection}")
    client.load_collection(new_collection)
    previous = live_collection(client, alias)
    if previous == new_collection:
        return previous
    if previous is None:
        client.create_alias(new_collection, alias)
    else:
        client.alter_alias(new_collection, alias)
    log.info("alias %s: %s -> %s", alias, previous, new_collection)
    return previous


def drop_version(client: MilvusClient, alias: str, collection: str) -> None:
    """Drop an old version; refuses the one the alias points at."""
    if not _version_re(alias).fullmatch(collection):
        raise ValueError(f"{collection} is not a version of {alias}")
    if live_collection(client, alias) == collection:
        raise ValueError(f"{collection} is live behind alias {alias}; swap the alias first")
    client.drop_collection(collection)


# -- filters ------------------------------------------------------------------------------

class Filter(str):
    """A boolean expression made by :func:`build_filter` (the only way to make one)."""


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAIN_CLASS_RE = re.compile(r"^\d{1,2}$")
_US_MAIN_RE = re.compile(r"^\s*D\s*(\d{1,2})\s*$", re.I)
MAX_FILTER_VALUES = 1024


def _quote(value: str) -> str:
    # values are validated against strict regexes first; json quoting is defence in depth
    return json.dumps(value, ensure_ascii=True)


def _values(name: str, values: str | Iterable[str]) -> list[str]:
    vals = [values] if isinstance(values, str) else list(values)
    if not vals:
        raise ValueError(f"{name}: empty list (pass None for no restriction)")
    if len(vals) > MAX_FILTER_VALUES:
        raise ValueError(f"{name}: at most {MAX_FILTER_VALUES} values")
    for v in vals:
        if not isinstance(v, str):
            raise ValueError(f"{name}: expected strings, got {type(v).__name__}")
    return vals


def grant_date_int(value: str | dt.date | None) -> int:
    """An ISO date (``YYYY-MM-DD``) as the INT64 ``YYYYMMDD`` stored in Milvus (0 for None)."""
    if value is None or value == "":
        return 0
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        if not isinstance(value, str) or not _ISO_DATE_RE.fullmatch(value):
            raise ValueError(f"not an ISO date (YYYY-MM-DD): {value!r}")
        value = dt.date.fromisoformat(value)
    return value.year * 10000 + value.month * 100 + value.day


def _locarno_main(v: str) -> str | None:
    """``"14"`` -> ``"14"`` (a Locarno main class), None for anything else; out of range raises."""
    if not _MAIN_CLASS_RE.fullmatch(v.strip()):
        return None
    main = int(v)
    if not 1 <= main <= 32:
        raise ValueError(f"Locarno main class out of range 01-32: {v!r}")
    return f"{main:02d}"


def _us_main(v: str) -> str | None:
    """``"D14"`` -> ``"D14"`` (a US design main class), None for anything else; out of range raises."""
    m = _US_MAIN_RE.fullmatch(v)
    if not m:
        return None
    main = int(m.group(1))
    if main not in USPC_MAIN_CLASSES:
        raise ValueError(f"US design main class out of range (D1-D34, D99): {v!r}")
    return f"D{main}"


def _class_clause(name: str, field_name: str, values: str | Iterable[str], main_of, normalise) -> str:
    """``field_name`` restricted to exact codes (normalised) or main classes (all their
    subclasses, ``like "MAIN-%"``)."""
    exact, mains = [], []
    for v in _values(name, values):
        main = main_of(v)
        if main is not None:
            mains.append(main)
            continue
        norm = normalise(v)
        if norm is None:
            raise ValueError(f"{name}: empty class: {v!r}")
        exact.append(norm)
    parts = []
    if exact:
        parts.append(f"{field_name} in [{', '.join(_quote(c) for c in sorted(set(exact)))}]")
    parts += [f"{field_name} like {_quote(m + '-%')}" for m in sorted(set(mains))]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def build_filter(locarno_classes: str | Iterable[str] | None = None, date_from: str | dt.date | None = None,
                 date_to: str | dt.date | None = None, views: str | Iterable[str] | None = None,
                 sources: str | Iterable[str] | None = None,
                 patent_ids: str | Iterable[str] | None = None,
                 us_classes: str | Iterable[str] | None = None) -> Filter:
    """A Milvus boolean expression from typed, validated values (``""`` when nothing is set).

    Locarno classes are ``CC-SS`` (or ``CCSS``, normalised) or a main class ``CC`` (all its
    subclasses); US design classes ``D14-345`` (or ``D14/345``) or a main class ``D14``; dates
    are ISO, inclusive; views come from :data:`priorsight.records.VIEWS`;
    sources and patent ids match ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``. Anything else raises
    ``ValueError``: no caller string reaches the expression unvalidated."""
    clauses: list[str] = []
    if locarno_classes is not None:
        clauses.append(_class_clause("locarno_classes", "locarno_class", locarno_classes, _locarno_main,
                                     normalise_locarno))
    if us_classes is not None:
        clauses.append(_class_clause("us_classes", "us_class", us_classes, _us_main, normalise_uspc))
    lo = grant_date_int(date_from) if date_from is not None else None
    hi = grant_date_int(date_to) if date_to is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    if lo is not None:
        clauses.append(f"grant_date >= {lo:d}")
    if hi is not None:
        clauses.append(f"grant_date <= {hi:d}")
    if views is not None:
        vs = _values("views", views)
        bad = [v for v in vs if v not in VIEWS]
        if bad:
            raise ValueError(f"views must be among {VIEWS}, got {bad!r}")
        clauses.append(f"view in [{', '.join(_quote(v) for v in sorted(set(vs)))}]")
    for name, field_name, values in (("sources", "source", sources), ("patent_ids", "patent_id", patent_ids)):
        if values is None:
            continue
        vs = _values(name, values)
        bad = [v for v in vs if not _ID_RE.fullmatch(v)]
        if bad:
            raise ValueError(f"{name}: invalid value(s) {bad[:5]!r} (allowed: letters, digits, _ . -)")
        clauses.append(f"{field_name} in [{', '.join(_quote(v) for v in sorted(set(vs)))}]")
    return Filter(" and ".join(clauses))


# -- data ---------------------------------------------------------------------------------

def drawing_row(drawing: Any, vector: Sequence[float] | np.ndarray, model_version: str) -> dict[str, Any]:
    """The Milvus row of a :class:`priorsight.records.Drawing` and its embedding."""
    return {
        PRIMARY_FIELD: drawing.drawing_id,
        "patent_id": drawing.patent_id,
        "locarno_class": drawing.locarno_class or "",
        "us_class": getattr(drawing, "us_class", None) or "",
        "view": drawing.view,
        "grant_date": grant_date_int(drawing.grant_date),
        "source": drawing.source,
        "model_version": model_version,
        VECTOR_FIELD: np.asarray(vector, dtype=np.float32).tolist(),
    }


def upsert_drawings(client: MilvusClient, collection: str, rows: Iterable[dict[str, Any]],
                    batch_size: int = 5_000, timeout: float | None = None) -> int:
    """Upsert rows in batches keyed by ``drawing_id`` (a re-run replaces, never duplicates).
    Returns the number of rows sent."""
    total, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            client.upsert(collection, batch, timeout=timeout)
            total += len(batch)
            batch = []
    if batch:
        client.upsert(collection, batch, timeout=timeout)
        total += len(batch)
    return total


# -- search -------------------------------------------------------------------------------

@dataclass
class Hit:
    drawing_id: str
    score: float  # the fused similarity (inner product of query and drawing vectors; higher is closer)
    fields: dict[str, Any] = field(default_factory=dict)


def search(client: MilvusClient, collection: str, vectors: np.ndarray | Sequence[Sequence[float]], k: int = 10,
           filter: Filter | None = None, params: Mapping[str, int] | None = None,
           output_fields: Sequence[str] | None = None, timeout: float | None = None,
           consistency_level: str | None = None) -> list[list[Hit]]:
    """Top-``k`` drawings per query vector (inner product), optionally restricted by a
    :func:`build_filter` expression; ``params``: the index's search breadth
    (:func:`search_params`; default: those of a default :class:`MilvusConfig`)."""
    if filter is not None and not isinstance(filter, Filter):
        raise TypeError("filter must come from build_filter() (raw strings are not accepted)")
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    kwargs: dict[str, Any] = {}
    if consistency_level:
        kwargs["consistency_level"] = consistency_level
    res = client.search(collection, data=arr.tolist(), limit=k, filter=str(filter or ""),
                        output_fields=list(output_fields) if output_fields is not None else None,
                        search_params={"metric_type": METRIC,
                                       "params": dict(params) if params is not None else search_params(MilvusConfig(), k)},
                        anns_field=VECTOR_FIELD, timeout=timeout, **kwargs)
    out = []
    for hits in res:
        row = []
        for h in hits:
            ent = dict(h.get("entity") or {})
            pk = h.get(PRIMARY_FIELD, h.get("id", ent.get(PRIMARY_FIELD)))
            row.append(Hit(str(pk), float(h["distance"]), ent))
        out.append(row)
    return out


# -- supervisor entry point ---------------------------------------------------------------

def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m priorsight.milvus")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the embedded server in the foreground (used by `priorsight milvus start`)")
    s.add_argument("--data-dir", type=Path, required=True)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--stop-timeout", type=float, default=60.0)
    s.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve_embedded(args.data_dir.resolve(), args.port, args.stop_timeout, args.start_timeout)


if __name__ == "__main__":
    sys.exit(_main())
