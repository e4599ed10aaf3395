"""Replica counts of the Serve deployments, sampled about every second during a load test.

Runs in the driver of ``priorsight loadtest`` (the process connected to Ray), never in Locust's.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path
from typing import Any

COLUMNS = ("t", "deployment", "running", "starting", "stopping", "status", "trigger")


def replica_counts(app_name: str = "priorsight") -> dict[str, dict[str, Any]]:
    """Per deployment of ``app_name``: replicas RUNNING / STARTING / STOPPING now (``serve.status()``)."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    out = {}
    for name, d in app.deployments.items():
        states = {str(getattr(k, "value", k)).upper(): int(v) for k, v in (d.replica_states or {}).items()}
        out[name] = {
            "running": states.get("RUNNING", 0),
            "starting": states.get("STARTING", 0) + states.get("PENDING_MIGRATION", 0),
            "stopping": states.get("STOPPING", 0),
            "status": str(getattr(d.status, "value", d.status)),  # HEALTHY, UPSCALING, DOWNSCALING, ...
            "trigger": str(getattr(d.status_trigger, "value", d.status_trigger)),  # e.g. AUTOSCALING
        }
    return out


class ReplicaSampler:
    """A thread writing ``t, deployment, running, starting, stopping, status, trigger`` rows to
    ``path`` every ``interval_s`` (``t``: Unix seconds, comparable with Locust's history)."""

    def __init__(self, path: Path | str, app_name: str = "priorsight", interval_s: float = 1.0, counts: Any = None):
        self.path = Path(path)
        self.app_name = app_name
        self.interval_s = interval_s
        self._counts = counts or replica_counts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-sampler", daemon=True)
        self.rows: list[dict[str, Any]] = []
        self.errors = 0

    def __enter__(self) -> ReplicaSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            while not self._stop.is_set():
                t0 = time.time()
                try:
                    counts = self._counts(self.app_name)
                except Exception:  # noqa: BLE001 - a missed sample is not a failed run
                    self.errors += 1
                    counts = {}
                for name, c in counts.items():
                    row = {"t": round(t0, 3), "deployment": name, **c}
                    self.rows.append(row)
                    w.writerow(row)
                f.flush()
                self._stop.wait(max(0.0, self.interval_s - (time.time() - t0)))


def read_replicas(path: Path | str) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [
            {
                **r,
                "t": float(r["t"]),
                "running": int(r["running"]),
                "starting": int(r["starting"] or 0),
                "stopping": int(r["stopping"] or 0),
            }
            for r in csv.DictReader(f)
        ]


def replica_range(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per deployment: first, max and last RUNNING count."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        d = out.setdefault(r["deployment"], {"first": r["running"], "max": r["running"], "last": r["running"]})
        d["max"] = max(d["max"], r["running"])
        d["last"] = r["running"]
    return out
