"""Training killed mid-epoch (SIGKILL, issue 10) resumes from the last checkpoint: no epoch is
lost but the one that was cut, and no checkpoint is half-written."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from tests.test_train import _config, corpus  # noqa: F401  (fixture)
from training.losses import LossConfig
from training.train import latest_checkpoint, run_training

# the run, with every step slowed down so the kill lands inside an epoch
SCRIPT = """
import sys, time
import training.train as t
cfg = t.TrainConfig.model_validate_json(open(sys.argv[1]).read())
step = t.train_step
def slow_step(*args, **kwargs):
    out = step(*args, **kwargs)
    print("step", flush=True)
    time.sleep(0.3)
    return out
t.train_step = slow_step
t.run_training(cfg)
print("done", flush=True)
"""


def test_training_killed_mid_epoch_resumes_from_the_last_checkpoint(corpus, tmp_path, caplog):  # noqa: F811
    run_dir = tmp_path / "run"
    cfg = _config(
        corpus, run_dir, epochs=3, max_steps_per_epoch=4, loss=LossConfig(image_text=False, logit_adjusted=True)
    )
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    job = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "cfg.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    first = run_dir / "checkpoints" / "epoch-0000.pt"
    steps_after = 0
    deadline = time.monotonic() + 180
    try:
        for line in job.stdout:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            if line.strip() == "step" and first.exists():
                steps_after += 1
                if steps_after == 1:  # one step into epoch 1 (of 2)
                    os.killpg(job.pid, signal.SIGKILL)
                    break
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL
    latest = latest_checkpoint(str(run_dir), __import__("priorsight.storage").storage.Storage())
    assert latest is not None and latest["epoch"] == 0  # killed inside epoch 1: epoch 0 is the last whole one
    assert not list((run_dir / "checkpoints").glob("*.part"))  # checkpoints appear atomically
    caplog.set_level(logging.INFO, logger="training.train")
    metrics = run_training(cfg)
    assert "resuming after epoch 0" in caplog.text
    assert metrics["epoch"] == 2 and metrics["steps"] == latest["metrics"]["steps"] == 2  # whole epochs
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("epoch-*.pt")) == ["epoch-0001.pt", "epoch-0002.pt"]
