"""Starting or joining Ray, the same way for every stage (describe, training, indexing).

    with init_ray() as ray_ctx:          # a local Ray on this machine (all its CPUs)
        ...
    with init_ray("ray://head:10001"):   # or "auto": an existing cluster
        ...

Workers get the malloc settings that keep CPU models fast (glibc would otherwise hand big
buffers back to the OS after every forward pass) through ``runtime_env`` env_vars. A local Ray
runs its workers at normal priority (Ray's default niceness 15 lets every other process on a
shared machine starve them: the describe job ran at half the plain loop's speed). Logging is
quiet, the dashboard is off, Ray Data's own progress bars are off (stages show their own).
A Ray started here is stopped on exit; a cluster joined here is only disconnected from.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: glibc and OpenMP settings that keep CPU models fast; read at process start only, so they go in
#: the environment of the processes that run a model (see docs stack.md: CNNs 3x slower without).
CPU_ENV: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_ARENA_MAX": "1",  # one arena: worker threads (Ray Data UDFs) get the same fast buffers
    # OpenMP threads spin ~10 ms after each parallel region by default, taking a core from the
    # processes beside them (decoding, the ingress, Milvus): ~0.4 ms instead (docs/serving.md)
    "GOMP_SPINCOUNT": "10000",
}

#: top-level commands that run a CNN in this process (train, eval, embed, ...): the CLI restarts
#: them with :data:`CPU_ENV` when it is missing (:func:`ensure_cpu_env`)
MODEL_COMMANDS = frozenset({"bench", "demo", "embed", "eval", "index", "serve", "train"})


def ensure_cpu_env(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Re-execute this ``priorsight`` command line with :data:`CPU_ENV` when it is missing.

    glibc reads the malloc settings at process start only, so they cannot be set later; without
    them CNNs run several times slower (../shared/docs/stack.md). Only for a process started as
    the ``priorsight`` command (not, e.g., a test runner that imported the CLI), once
    (``PRIORSIGHT_NO_REEXEC``)."""
    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    if all(environ.get(k) == v for k, v in CPU_ENV.items()) or environ.get("PRIORSIGHT_NO_REEXEC"):
        return
    if os.path.basename(argv[0]) != "priorsight":
        log.warning("%s unset: the CNN runs slower (start it with `make` or set them)", "/".join(CPU_ENV))
        return
    env = {**environ, **CPU_ENV, "PRIORSIGHT_NO_REEXEC": "1"}
    code = "from priorsight.cli import app; app(prog_name='priorsight')"
    os.execve(sys.executable, [sys.executable, "-c", code, *argv[1:]], env)


#: Environment of every Ray worker process.
WORKER_ENV: dict[str, str] = {
    **CPU_ENV,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

#: Ray Serve's high-throughput mode (Ray >= 2.55, docs/serving.md): HAProxy (C) instead of the
#: Python proxy in front, the ingress replicas answer HTTP themselves (direct ingress), gRPC
#: between deployments, user code on the replica's own event loop. Serve's controller and
#: replicas read these when Ray starts them, so they are set (where not set already) in the
#: environment of the process that starts a local Ray for serving; a cluster sets them in its
#: pods (deploy/kuberay). A stopping ingress replica drains this long (Ray's default, 30 s, is
#: for cloud load balancers; the local HAProxy follows the controller within a second).
SERVE_ENV: dict[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
}


#: worker log lines a local Ray's driver does not print: Ray Train's placement-group cleaner asks
#: the state API about the training controller every second, and a local Ray here runs without
#: the dashboard that serves that API, so each ask logs this warning. The cleaner only matters
#: if a controller dies on a long-lived cluster (the dashboard is on there); the local Ray, its
#: placement groups included, ends with the command. And each training worker's echo of every
#: epoch's report ("Reporting training result N: TrainingReport(...)"): the epoch's own log line
#: says the same, once.
QUIET_WORKER_LOGS = r"Failed to query Ray Train Controller actor state|Reporting training result \d+: TrainingReport"


def quiet_worker_logs(pattern: str = QUIET_WORKER_LOGS) -> None:
    """Skip worker log lines matching ``pattern`` in this driver's output: Ray's own
    ``RAY_DEDUP_LOGS_SKIP_REGEX``, which Ray reads when it is imported (the CLI has imported it
    by then), so it is set on Ray's log deduplicators here. A skip pattern the user set is kept."""
    import re

    try:
        from ray._private import ray_logging
    except ImportError:  # Ray's internals moved: the lines are printed, nothing else changes
        return
    for name in ("stdout_deduplicator", "stderr_deduplicator"):
        dedup = getattr(ray_logging, name, None)
        if dedup is not None and getattr(dedup, "skip_re", False) is None:
            dedup.skip_re = re.compile(pattern)


def apply_serve_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set :data:`SERVE_ENV` in ``environ`` (default: this process) where a value is not set
    already (``RAY_SERVE_ENABLE_HA_PROXY=0`` keeps Serve's Python proxy); returns what applies."""
    env = os.environ if environ is None else environ
    for key, value in SERVE_ENV.items():
        env.setdefault(key, value)
    return {k: env[k] for k in SERVE_ENV}


@dataclass
class RayHandle:
    """What :func:`init_ray` did: ``started`` a local Ray (stopped on :meth:`shutdown`), or
    joined one that was running already."""

    address: str
    started: bool
    resources: dict[str, float] = field(default_factory=dict)
    context: Any = None

    @property
    def cpus(self) -> float:
        return float(self.resources.get("CPU", 0.0))

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized() and (self.started or self.context is not None):
            ray.shutdown()

    def __enter__(self) -> RayHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


#: how a local Ray start fails now and then on a busy machine (its raylet never registers, or
#: its GCS never writes its port file); a second start succeeds
_FLAKY_START = ("timed out during startup", "Timed out waiting for file")


def _start_local(start: Any, attempts: int = 2) -> Any:
    """``start()`` (a local ``ray.init``), once more after a start that timed out."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Exception as exc:
            if attempt >= attempts or not any(m in str(exc) for m in _FLAKY_START):
                raise
            log.warning("starting a local Ray failed (%s); starting it again", str(exc).splitlines()[0][:200])
            ray.shutdown()
    raise AssertionError("unreachable")


def init_ray(address: str | None = None, num_cpus: int | None = None,
             env_vars: Mapping[str, str] | None = None, log_level: int = logging.WARNING,
             progress_bars: bool = False, worker_niceness: int = 0) -> RayHandle:
    """Start a local Ray (``address`` empty: with ``num_cpus`` or all CPUs, workers at
    ``worker_niceness``; its ports listen on all interfaces, guarded by Ray's token auth) or join a cluster (``address`` "auto", "HOST:PORT" or
    "ray://HOST:PORT"; its own settings apply). If this process is already connected, reuse
    that connection (and leave it open on shutdown)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return RayHandle(address=ray.get_runtime_context().gcs_address, started=False,
                         resources=dict(ray.cluster_resources()))
    runtime_env = {"env_vars": {**WORKER_ENV, **dict(env_vars or {})}}
    common = dict(runtime_env=runtime_env, logging_level=log_level, log_to_driver=True,
                  configure_logging=True, ignore_reinit_error=True)
    if address:
        ctx = ray.init(address=address, **common)
        started = False
    else:
        ctx = _start_local(lambda: ray.init(num_cpus=num_cpus, include_dashboard=False,
                                            _system_config={"worker_niceness": worker_niceness}, **common))
        started = True
        quiet_worker_logs()  # no dashboard here: Ray Train's cleaner would warn every second
    from ray.data import DataContext

    dctx = DataContext.get_current()
    dctx.enable_progress_bars = progress_bars
    dctx.print_on_execution_start = False
    dctx.enable_auto_log_stats = False
    if not progress_bars:  # Ray Data warns once that they are off: we know
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    resources = dict(ray.cluster_resources())
    handle = RayHandle(address=getattr(ctx, "address_info", {}).get("gcs_address", address or "local"),
                       started=started, resources=resources, context=ctx)
    log.info("%s Ray at %s: %s CPUs", "started" if started else "joined", handle.address, handle.cpus)
    return handle
