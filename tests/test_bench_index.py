"""Benchmark helpers that need no server: waiting for Milvus to settle, steady embedding rates."""

from __future__ import annotations

import os

import pytest

from priorsight.bench_index import cpu_seconds, wait_until_idle


class _Busy:
    """A process that burns ``cores`` CPUs for the first ``busy_s`` seconds, then idles."""

    def __init__(self, busy_s: float, cores: float = 1.5):
        self.now, self.busy_s, self.cores = 0.0, busy_s, cores

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s

    def cpu(self, _pid: int) -> float:
        return self.cores * min(self.now, self.busy_s) + 0.01 * max(self.now - self.busy_s, 0)


def test_waits_for_the_server_to_settle():
    p = _Busy(busy_s=42)
    waited, cores = wait_until_idle(1, cores=0.15, window_s=5, clock=p.clock, sleep=p.sleep, cpu=p.cpu)
    assert waited == 50  # 40-45 s still holds 2 s of work; 45-50 s is the first idle window
    assert cores == pytest.approx(0.01)


def test_gives_up_after_the_timeout():
    p = _Busy(busy_s=10_000)
    waited, cores = wait_until_idle(1, window_s=5, timeout_s=30, clock=p.clock, sleep=p.sleep, cpu=p.cpu)
    assert waited == 30 and cores == pytest.approx(1.5)


def test_cpu_seconds_of_a_real_process():
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process


def test_embed_throughput_counts_from_the_first_batch():
    from cluster.index_job import _steady_rate

    runs = [{"run": "ray", "drawings": 100, "seconds": 12.0, "first_batch_s": 8.0, "first_batch_drawings": 20},
            {"run": "ray", "drawings": 100, "seconds": 10.0, "first_batch_s": 6.0, "first_batch_drawings": 20},
            {"run": "loop", "drawings": 100, "seconds": 5.0, "first_batch_s": 1.0, "first_batch_drawings": 20}]
    assert _steady_rate(runs, "ray") == pytest.approx(160 / 8)  # start-up (8 s, 6 s) left out
    assert _steady_rate(runs, "loop") == pytest.approx(80 / 4)
