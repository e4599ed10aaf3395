"""The Serve config YAML, deployment options and path resolution (no Ray started)."""

from __future__ import annotations

from pathlib import Path

import yaml

from priorsight.config import DeploymentScaling, MilvusConfig, SearchSourceConfig, ServeConfig
from services.app import build_app, deployment_options, resolve_paths
from services.commands import DEFAULT_CONFIG, read_serve_file


def test_shipped_yaml_is_one_app_bound_to_loopback_with_valid_args():
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert raw["http_options"]["host"] == "127.0.0.1"
    assert raw["applications"][0]["import_path"] == "services.app:build_app"
    sf = read_serve_file(DEFAULT_CONFIG)
    assert sf.host == "127.0.0.1" and sf.route_prefix == "/"
    cfg = sf.config
    for s in (cfg.embedder, cfg.searcher, cfg.ingress):
        assert s.num_cpus < 1  # fractional on a 2-core machine
        assert s.upscale_delay_s >= s.look_back_period_s and s.downscale_delay_s >= s.look_back_period_s
    assert cfg.embedder.max_ongoing_requests >= cfg.embed_max_batch_size


def test_deployment_options_never_flap_and_fit_the_batch():
    s = DeploymentScaling(num_cpus=0.5, min_replicas=0, max_replicas=3, upscale_delay_s=1, downscale_delay_s=2,
                          look_back_period_s=15, max_ongoing_requests=4)
    opts = deployment_options(s, min_ongoing=8, env_vars={"A": "1"})
    auto = opts["autoscaling_config"]
    assert auto["upscale_delay_s"] == 15 and auto["downscale_delay_s"] == 15
    assert auto["min_replicas"] == 0 and auto["initial_replicas"] == 1 and auto["max_replicas"] == 3
    assert opts["max_ongoing_requests"] == 8
    assert opts["ray_actor_options"] == {"num_cpus": 0.5, "runtime_env": {"env_vars": {"A": "1"}}}
    assert opts["logging_config"] == {"enable_access_log": True}


def test_resolve_paths_makes_local_paths_absolute_and_keeps_s3(tmp_path):
    cfg = ServeConfig(checkpoint="s3://bucket/run", manifest="corpus",
                      sources=[SearchSourceConfig(name="a", milvus=MilvusConfig(target="lite", uri="x/lite.db")),
                               SearchSourceConfig(name="b", milvus=MilvusConfig(data_dir=Path("m")))])
    out = resolve_paths(cfg, tmp_path)
    assert out.checkpoint == "s3://bucket/run" and out.manifest == str(tmp_path / "corpus")
    assert out.sources[0].milvus.uri == str(tmp_path / "x/lite.db")
    assert out.sources[1].milvus.data_dir == tmp_path / "m"


def test_build_app_binds_three_deployments_with_the_configured_options():
    cfg = ServeConfig(checkpoint="ck.pt", manifest="c", embed_max_batch_size=24)
    ingress = build_app(cfg)._bound_deployment
    assert ingress.name == "Ingress"
    assert ingress.ray_actor_options["num_cpus"] == cfg.ingress.num_cpus
    inner = {a._bound_deployment.name: a._bound_deployment for a in ingress.init_args if hasattr(a, "_bound_deployment")}
    assert set(inner) == {"QueryEmbedder", "Searcher"}
    assert inner["QueryEmbedder"].max_ongoing_requests >= 24  # >= the batch size
    assert inner["QueryEmbedder"].ray_actor_options["num_cpus"] == cfg.embedder.num_cpus
