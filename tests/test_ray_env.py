"""cluster.ray_env: the Serve environment defaults and the retried local start (no Ray started)."""

from __future__ import annotations

import pytest

from cluster import ray_env


def test_serve_env_defaults_keep_what_is_set_already():
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    out = ray_env.apply_serve_env(env)
    assert out["RAY_SERVE_ENABLE_HA_PROXY"] == "0"  # an explicit opt-out wins
    assert out["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == ray_env.SERVE_ENV["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert set(out) == set(ray_env.SERVE_ENV) and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"


def test_a_local_start_that_timed_out_is_tried_once_more(monkeypatch):
    monkeypatch.setattr("ray.shutdown", lambda: calls.append("shutdown"))
    calls: list[str] = []

    def start():
        calls.append("start")
        if calls.count("start") == 1:
            raise Exception("The current node timed out during startup. This could happen ...")
        return "context"

    assert ray_env._start_local(start) == "context"
    assert calls == ["start", "shutdown", "start"]


def test_other_start_errors_and_a_second_timeout_are_raised(monkeypatch):
    monkeypatch.setattr("ray.shutdown", lambda: None)
    tries: list[int] = []

    def bad_config():
        tries.append(1)
        raise ValueError("num_cpus must be positive")

    with pytest.raises(ValueError, match="num_cpus"):
        ray_env._start_local(bad_config)
    assert len(tries) == 1

    def always_slow():
        tries.append(2)
        raise RuntimeError("Timed out waiting for file /tmp/ray/session_x/gcs_server_port_1")

    with pytest.raises(RuntimeError, match="Timed out waiting for file"):
        ray_env._start_local(always_slow)
    assert tries.count(2) == 2


def test_the_fast_path_stays_off_when_the_api_is_open_without_keys():
    from services.commands import serve_fast_path

    env: dict[str, str] = {}
    assert serve_fast_path(api_open=True, environ=env) is None and env == {}  # per-address limits need the proxy
    assert serve_fast_path(api_open=False, environ=env) == ray_env.SERVE_ENV == env


@pytest.mark.slow
def test_a_local_ray_does_not_print_the_train_cleaners_state_api_warning(capfd):
    """Ray Train's placement-group cleaner warns every second on a Ray without the dashboard;
    a local Ray started here skips that line in the driver's output, and only that line."""
    import time

    import ray

    with ray_env.init_ray(num_cpus=1) as handle:
        assert handle.started

        @ray.remote(num_cpus=0)
        def talk() -> None:
            import logging

            logging.getLogger("ray.train.v2.cleaner").warning(
                "Failed to query Ray Train Controller actor state. State API may be temporarily unavailable.")
            print("Reporting training result 3: TrainingReport(checkpoint=None, metrics={'loss': 1.0})", flush=True)
            print("PRIORSIGHT-MARKER after the warning", flush=True)

        ray.get(talk.remote())
        out = ""
        deadline = time.monotonic() + 30
        while "PRIORSIGHT-MARKER" not in out and time.monotonic() < deadline:
            time.sleep(0.5)
            captured = capfd.readouterr()
            out += captured.out + captured.err
    assert "PRIORSIGHT-MARKER after the warning" in out
    assert "Failed to query Ray Train Controller" not in out and "TrainingReport" not in out


def test_a_model_command_restarts_itself_with_the_cpu_settings(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(ray_env.os, "execve", lambda exe, args, env: calls.append((exe, args, env)))
    ray_env.ensure_cpu_env(["/venv/bin/priorsight", "eval", "corpus", "--json"], {"PATH": "/bin"})
    (exe, args, env), = calls
    assert args[1:3] == ["-c", "from priorsight.cli import app; app(prog_name='priorsight')"] and args[3:] == ["eval", "corpus", "--json"]
    assert {k: env[k] for k in ray_env.CPU_ENV} == ray_env.CPU_ENV
    assert env["PATH"] == "/bin" and env["PRIORSIGHT_NO_REEXEC"] == "1"


def test_no_restart_when_set_already_restarted_or_not_the_command(monkeypatch, caplog):
    calls: list[tuple] = []
    monkeypatch.setattr(ray_env.os, "execve", lambda *a: calls.append(a))
    ray_env.ensure_cpu_env(["/venv/bin/priorsight", "train"], dict(ray_env.CPU_ENV))
    ray_env.ensure_cpu_env(["/venv/bin/priorsight", "train"], {"PRIORSIGHT_NO_REEXEC": "1"})
    with caplog.at_level("WARNING"):
        ray_env.ensure_cpu_env(["/venv/bin/pytest", "tests"], {})
    assert calls == [] and "MALLOC_MMAP_THRESHOLD_" in caplog.text


def test_the_console_script_restarted_still_runs_the_command():
    """The real ``priorsight`` script without the settings: re-executed, the command still runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("priorsight")
    if not script.exists():
        pytest.skip("the priorsight console script is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k not in ray_env.CPU_ENV and k != "PRIORSIGHT_NO_REEXEC"}
    out = subprocess.run([str(script), "eval", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--query-text" in out.stdout and "unset" not in out.stderr
    assert "Usage: priorsight eval" in out.stdout  # the restarted command keeps its name
