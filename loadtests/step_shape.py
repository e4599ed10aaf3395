"""A stepped load (Locust ``LoadTestShape``), for the autoscaling demonstration.

Passed beside the locustfile (``-f loadtests/locustfile.py,loadtests/step_shape.py``); Locust
then ignores ``-u``/``-t`` and follows the steps in ``PRIORSIGHT_LOADTEST_STEPS``, a JSON list
of ``[seconds, users]`` (e.g. ``[[30, 1], [90, 12], [120, 1]]``: quiet, a load step, quiet
again; ``priorsight loadtest autoscale --steps 30:1,90:12,120:1`` writes it). Standard library
and Locust only.
"""

from __future__ import annotations

import json
import os

from locust import LoadTestShape

STEPS_ENV = "PRIORSIGHT_LOADTEST_STEPS"


class StepLoad(LoadTestShape):
    """Users per step; the test stops after the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = [
            (float(s), int(u)) for s, u in json.loads(os.environ.get(STEPS_ENV, "[[30, 1], [90, 12], [120, 1]]"))
        ]

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        end = 0.0
        for seconds, users in self.steps:
            end += seconds
            if t < end:
                return users, 100.0  # a step's users start (or stop) at once
        return None
