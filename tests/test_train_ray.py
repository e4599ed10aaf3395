"""Ray Train: TorchTrainer with 2 workers gives the losses of 1 worker on the same global
batches; a second fit on the same run directory resumes after the latest checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_train import _config, corpus, text_features  # noqa: F401  (fixtures)
from training.train import run_training, train

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    from cluster.ray_env import init_ray

    with init_ray(num_cpus=2) as handle:
        yield handle


@pytest.mark.slow
def test_ray_two_workers_match_one_then_resume(ray_local, corpus, text_features, tmp_path,  # noqa: F811
                                               monkeypatch):
    results = str(tmp_path / "ray-results")
    one = run_training(_config(corpus, tmp_path / "one"), text_features)  # 1 worker, in this process
    two = train(_config(corpus, tmp_path / "two", num_workers=2, cpus_per_worker=1), ray_results_dir=results,
                text_features_uri=text_features)
    for key in ("loss", "image_text", "image_image", "class", "logit_adjusted"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, err_msg=key)
    assert two["epoch"] == 0 and (tmp_path / "two" / "checkpoints" / "epoch-0000.pt").exists()
    monkeypatch.chdir(tmp_path)  # a relative run dir means the driver's directory on the workers too
    resumed = train(_config(corpus, "two", epochs=2, num_workers=2, cpus_per_worker=1,
                            max_steps_per_epoch=1), ray_results_dir=results, text_features_uri=text_features)
    assert resumed["epoch"] == 1 and resumed["steps"] == 1
    assert (tmp_path / "two" / "checkpoints" / "epoch-0001.pt").exists()
