"""Running Locust as its own process (headless; one process, or a master and local workers),
reading its CSV into a JSON summary, and checking thresholds.

Never imports Locust (its gevent patching and boto3 / ray / pymilvus do not share a process):
Locust runs as ``python -m locust`` in a child process.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
STEP_SHAPE = HERE / "step_shape.py"
DEFAULT_THRESHOLDS = HERE / "thresholds.yaml"
AGGREGATED = "Aggregated"
THRESHOLD_KEYS = (
    "max_failure_ratio",
    "max_failures",
    "max_p50_ms",
    "max_p95_ms",
    "max_p99_ms",
    "max_avg_ms",
    "min_rps",
    "min_requests",
    "max_exceptions",  # errors raised in the locustfile itself (aggregate only)
)


def parse_steps(raw: str) -> list[tuple[float, int]]:
    """``"SECONDS:USERS,..."`` -> ``[(seconds, users), ...]`` (the stepped load of
    :mod:`loadtests.step_shape`, which reads it as JSON from ``PRIORSIGHT_LOADTEST_STEPS``)."""
    steps = []
    for part in raw.split(","):
        seconds, _, users = part.strip().partition(":")
        try:
            s, u = float(seconds), int(users)
        except ValueError:
            raise ValueError(f"bad load step {part!r}: SECONDS:USERS") from None
        if s <= 0 or u < 0:
            raise ValueError(f"bad load step {part!r}: SECONDS > 0, USERS >= 0")
        steps.append((s, u))
    return steps


@dataclass
class LocustRun:
    """One headless Locust run against ``url``; files go to ``out_dir`` (``locust_*.csv``,
    ``report.html``, ``locust.log``)."""

    url: str
    queries: Path
    out_dir: Path
    users: int = 10
    spawn_rate: float = 2.0
    duration_s: float = 60.0
    think: tuple[float, float] = (1.0, 4.0)
    tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    workers: int = 0  # 0: one process; N: a master and N worker processes on this machine
    steps: str | None = None  # "SECONDS:USERS,...": a stepped load (loadtests/step_shape.py), -u/-t ignored
    api_key: str | None = None  # else $PRIORSIGHT_API_KEY, if set
    stop_timeout_s: float = 10.0

    @property
    def csv_prefix(self) -> Path:
        return self.out_dir / "locust"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PRIORSIGHT_LOADTEST_QUERIES": str(Path(self.queries).resolve()),
                "PRIORSIGHT_LOADTEST_THINK": f"{self.think[0]},{self.think[1]}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.api_key:
            env["PRIORSIGHT_API_KEY"] = self.api_key
        if self.steps:
            env["PRIORSIGHT_LOADTEST_STEPS"] = json.dumps(parse_steps(self.steps))
        return env

    def locustfiles(self) -> str:
        return f"{LOCUSTFILE},{STEP_SHAPE}" if self.steps else str(LOCUSTFILE)

    def _tag_args(self) -> list[str]:
        args: list[str] = []
        if self.tags:
            args += ["--tags", *self.tags]
        if self.exclude_tags:
            args += ["--exclude-tags", *self.exclude_tags]
        return args

    def master_command(self, master_port: int | None = None) -> list[str]:
        """The Locust command (the master's when distributed)."""
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            self.locustfiles(),
            "--headless",
            "--host",
            self.url,
            "--csv",
            str(self.csv_prefix),
            "--csv-full-history",
            "--html",
            str(self.out_dir / "report.html"),
            "--only-summary",
            "--stop-timeout",
            f"{self.stop_timeout_s:g}",
            "--exit-code-on-error",
            "0",
            "--logfile",
            str(self.out_dir / "locust.log"),
        ]
        if not self.steps:
            cmd += [
                "--users",
                str(self.users),
                "--spawn-rate",
                f"{self.spawn_rate:g}",
                "--run-time",
                f"{max(1, round(self.duration_s))}s",
            ]
        if self.workers:
            cmd += [
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(master_port),
                "--expect-workers",
                str(self.workers),
                "--expect-workers-max-wait",
                "60",
            ]
        return cmd + self._tag_args()

    def worker_command(self, master_port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            self.locustfiles(),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(master_port),
            "--logfile",
            str(self.out_dir / "locust-worker.log"),
            *self._tag_args(),
        ]


class CpuWatch(threading.Thread):
    """CPU of the Locust processes while they load (from their first CSV write to their end,
    start-up excluded): ``cores`` = CPU seconds per wall second."""

    def __init__(self, pids: list[int], started: Path, interval_s: float = 0.5):
        super().__init__(name="locust-cpu", daemon=True)
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.started = started
        self.interval_s = interval_s
        self.base: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.machine_base = self.machine_last = (0.0, 0.0)
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                cpu = sum(p.cpu_times().user + p.cpu_times().system for p in self.procs)
            except psutil.Error:
                return
            now = time.monotonic()
            machine = psutil.cpu_times()
            busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
            if self.base is None and self.started.exists():
                self.base = (cpu, now)
                self.machine_base = (busy, sum(machine))
            self.last = (cpu, now)
            self.machine_last = (busy, sum(machine))
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    @property
    def machine_busy_pct(self) -> float | None:
        """All cores of the machine busy over the same window (the service, Locust, the rest)."""
        if not self.base or not self.machine_last or self.machine_last[1] <= self.machine_base[1]:
            return None
        return 100 * (self.machine_last[0] - self.machine_base[0]) / (self.machine_last[1] - self.machine_base[1])

    @property
    def cores(self) -> float | None:
        if not self.base or not self.last or self.last[1] - self.base[1] < 1:
            return None
        return (self.last[0] - self.base[0]) / (self.last[1] - self.base[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_locust(run: LocustRun, timeout_s: float | None = None) -> dict[str, Any]:
    """Run Locust to the end and return its summary (also written to ``out_dir/summary.json``).
    Raises ``RuntimeError`` when Locust itself fails (bad locustfile, no workers, ...)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    env = run.env()
    port = free_port() if run.workers else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    timeout_s = timeout_s or (run.duration_s + run.stop_timeout_s + 120)
    master = subprocess.Popen(
        run.master_command(port), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    workers = [
        subprocess.Popen(
            run.worker_command(port),
            env=env,
            stdout=subprocess.DEVNULL,  # type: ignore[arg-type]
            stderr=subprocess.DEVNULL,
        )
        for _ in range(run.workers)
    ]
    watch = CpuWatch([master.pid, *(w.pid for w in workers)], Path(f"{run.csv_prefix}_stats_history.csv"))
    watch.start()
    try:
        output, _ = master.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        master.kill()
        output, _ = master.communicate()
        raise RuntimeError(f"locust did not finish in {timeout_s:.0f} s:\n{output[-2000:]}") from None
    finally:
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    wall = time.monotonic() - t0
    watch.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (run.out_dir / "locust.out").write_text(output or "")
    if master.returncode != 0 or not (run.out_dir / "locust_stats.csv").exists():
        tail = (output or "")[-3000:]
        raise RuntimeError(f"locust exited with {master.returncode}:\n{tail}")
    summary = summarize(run.csv_prefix)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary.update(
        {
            "users": run.users if not run.steps else None,
            "steps": run.steps,
            "spawn_rate": run.spawn_rate,
            "duration_s": run.duration_s,
            "wall_s": round(wall, 2),
            "think_s": list(run.think),
            "tags": run.tags,
            "exclude_tags": run.exclude_tags,
            "workers": run.workers,
            "url": run.url,
            "queries": str(run.queries),
            "locust_cpu_s": round(cpu, 2),
            "locust_cores": round(watch.cores, 3) if watch.cores is not None else None,  # while loading
            "machine_cpu_pct": round(watch.machine_busy_pct, 1) if watch.machine_busy_pct is not None else None,
            "files": {
                "csv": f"{run.csv_prefix}_stats.csv",
                "history": f"{run.csv_prefix}_stats_history.csv",
                "failures": f"{run.csv_prefix}_failures.csv",
                "html": str(run.out_dir / "report.html"),
            },
        }
    )
    write_json(run.out_dir / "summary.json", summary)
    return summary


def _num(v: str) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _entry(row: dict[str, str]) -> dict[str, Any]:
    n, f = int(row["Request Count"]), int(row["Failure Count"])
    return {
        "requests": n,
        "failures": f,
        "failure_ratio": (f / n) if n else 0.0,
        "rps": _num(row["Requests/s"]) or 0.0,
        "failures_per_s": _num(row["Failures/s"]) or 0.0,
        "avg_ms": _num(row["Average Response Time"]),
        "min_ms": _num(row["Min Response Time"]),
        "max_ms": _num(row["Max Response Time"]),
        "p50_ms": _num(row["50%"]),
        "p95_ms": _num(row["95%"]),
        "p99_ms": _num(row["99%"]),
    }


def summarize(csv_prefix: Path | str) -> dict[str, Any]:
    """The whole run (``Aggregated``) and each request name, from Locust's ``_stats.csv`` and
    ``_failures.csv``. Percentiles are Locust's (response times bucketed to ~2 significant
    digits: 10 ms steps between 100 and 1000 ms)."""
    prefix = str(csv_prefix)
    with open(prefix + "_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    total = next((r for r in rows if r["Name"] == AGGREGATED), None)
    if total is None:
        raise ValueError(f"{prefix}_stats.csv has no Aggregated row")
    out = _entry(total)
    out["by_request"] = {r["Name"]: _entry(r) for r in rows if r["Name"] != AGGREGATED}  # names carry the method
    failures: list[dict[str, Any]] = []
    fpath = Path(prefix + "_failures.csv")
    if fpath.exists():
        with open(fpath, newline="") as f:
            failures = [
                {"request": r["Name"], "error": r["Error"][:300], "occurrences": int(r["Occurrences"])}
                for r in csv.DictReader(f)
            ]
    out["failure_kinds"] = sorted(failures, key=lambda x: -x["occurrences"])[:10]
    exceptions: list[dict[str, Any]] = []
    epath = Path(prefix + "_exceptions.csv")
    if epath.exists():
        with open(epath, newline="") as f:
            exceptions = [{"count": int(r["Count"]), "message": r["Message"][:300]} for r in csv.DictReader(f)]
    out["exceptions"] = sum(e["count"] for e in exceptions)
    out["exception_kinds"] = exceptions[:10]
    return out


def read_history(csv_prefix: Path | str) -> list[dict[str, Any]]:
    """Per second (``--csv-full-history``): users, current RPS and current (10 s window) p50/p95
    of all requests."""
    path = str(csv_prefix) + "_stats_history.csv"
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["Name"] != AGGREGATED:
                continue
            out.append(
                {
                    "t": int(r["Timestamp"]),
                    "users": int(r["User Count"]),
                    "rps": _num(r["Requests/s"]) or 0.0,
                    "p50_ms": _num(r["50%"]),
                    "p95_ms": _num(r["95%"]),
                    "p99_ms": _num(r["99%"]),
                    "requests": int(r["Total Request Count"]),
                    "failures": int(r["Total Failure Count"]),
                }
            )
    return out


# -- thresholds ------------------------------------------------------------------------------


def load_thresholds(path: Path | str) -> dict[str, Any]:
    """``{"aggregate": {KEY: limit}, "requests": {NAME: {KEY: limit}}}`` from YAML (keys in
    :data:`THRESHOLD_KEYS`); unknown keys are an error, not silently ignored."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown_sections = set(data) - {"aggregate", "requests"}
    if unknown_sections:
        raise ValueError(f"{path}: unknown sections {sorted(unknown_sections)} (aggregate, requests)")
    groups = [("aggregate", data.get("aggregate") or {})]
    groups += [(f"requests.{n}", v or {}) for n, v in (data.get("requests") or {}).items()]
    for where, limits in groups:
        bad = set(limits) - set(THRESHOLD_KEYS)
        if bad:
            raise ValueError(f"{path}: {where}: unknown keys {sorted(bad)} (allowed: {', '.join(THRESHOLD_KEYS)})")
        for k, v in limits.items():
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{path}: {where}.{k} must be a number >= 0, got {v!r}")
    return {"aggregate": dict(data.get("aggregate") or {}), "requests": dict(data.get("requests") or {})}


def _violations(entry: dict[str, Any], limits: dict[str, float], where: str) -> list[str]:
    out = []
    for key, limit in limits.items():
        kind, _, metric = key.partition("_")  # "max_p99_ms" -> ("max", "p99_ms")
        value = entry.get(metric)
        if value is None:
            if kind == "max":  # no data (e.g. no request of that name): nothing exceeded
                continue
            value = 0
        if (kind == "max" and value > limit) or (kind == "min" and value < limit):
            out.append(f"{where}: {metric} {value:g} {'>' if kind == 'max' else '<'} {kind} {limit:g}")
    return out


def check_thresholds(summary: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """Every threshold the run exceeded, as readable lines (empty: passed). A per-request
    threshold for a request name the run never made checks ``min_*`` limits against 0."""
    out = _violations(summary, thresholds.get("aggregate", {}), "all requests")
    for name, limits in thresholds.get("requests", {}).items():
        out += _violations(summary["by_request"].get(name, {}), limits, name)
    return out


def write_json(path: Path | str, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
