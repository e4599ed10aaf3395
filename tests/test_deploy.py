"""Production deployment manifests (deploy/, cluster/launcher/): they parse, they agree with
the project (Serve config, image, ports, paths, CLI flags, metric names) and with the
Kubernetes / KubeRay / Ray schemas.

Kubernetes core objects and every pod template are validated against the Kubernetes JSON
schemas of ``kubernetes-validate`` (offline, strict). KubeRay's CRDs have no offline schema
package: :func:`check_kuberay` is a focused structural check written from the KubeRay v1 API
types (``ray-operator/apis/ray/v1``: field names, required fields, enums, string maps).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import kuberay
from priorsight.config import ServeConfig, Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERAY = DEPLOY / "kuberay"
LAUNCHER = ROOT / "cluster" / "launcher"
MONITORING = DEPLOY / "monitoring"
MILVUS = DEPLOY / "milvus"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGES = {f"{kuberay.IMAGE}:{VERSION}", f"{kuberay.IMAGE}:{VERSION}-gpu"}
RAYJOBS = sorted(KUBERAY.glob("rayjob-*.yaml"))
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *LAUNCHER.glob("*.yaml")])


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def one(path: Path) -> dict[str, Any]:
    (d,) = docs(path)
    return d


def walk(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in ``node``."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                out.append(v)
            out += walk(v, key)
    elif isinstance(node, list):
        for v in node:
            out += walk(v, key)
    return out


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    return one(KUBERAY / "rayservice.yaml")


@pytest.fixture(scope="module")
def serve_v2(rayservice) -> dict[str, Any]:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


# -- parsing, generation, drift -----------------------------------------------------------


def test_every_manifest_parses():
    assert len(YAML_FILES) >= 15, YAML_FILES
    for p in YAML_FILES:
        assert docs(p), f"{p} is empty"
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dash["panels"] and all(p["targets"] for p in dash["panels"])


def test_committed_rayservice_is_the_rendered_one():
    diff = kuberay.check_rendered()
    assert not diff, "deploy/kuberay/rayservice.yaml drifted; run `priorsight deploy render`:\n" + "\n".join(diff[:40])


def test_render_check_fails_on_drift(tmp_path):
    import typer
    from typer.testing import CliRunner

    serve = yaml.safe_load(kuberay.SERVE_CONFIG.read_text())
    serve["applications"][0]["args"]["max_k"] = 50  # a local change not yet rendered
    changed = tmp_path / "serve_config.yaml"
    changed.write_text(yaml.safe_dump(serve))
    app = typer.Typer()
    app.command("noop")(lambda: None)
    kuberay.register(app)
    runner = CliRunner()
    ok = runner.invoke(app, ["deploy", "render", "--check"])
    assert ok.exit_code == 0, ok.output
    drift = runner.invoke(app, ["deploy", "render", "--check", "--serve-config", str(changed)])
    assert drift.exit_code == 1 and "max_k: 50" in drift.output
    out = tmp_path / "rayservice.yaml"
    assert runner.invoke(app, ["deploy", "render", "--serve-config", str(changed), "--out", str(out)]).exit_code == 0
    assert (
        yaml.safe_load(yaml.safe_load(out.read_text())["spec"]["serveConfigV2"])["applications"][0]["args"]["max_k"]
        == 50
    )


def test_rayservice_applications_match_the_serve_config(serve_v2):
    local = yaml.safe_load(kuberay.SERVE_CONFIG.read_text())
    overlay = yaml.safe_load(kuberay.OVERLAY.read_text())
    assert [a["name"] for a in serve_v2["applications"]] == [a["name"] for a in local["applications"]]
    for prod, loc in zip(serve_v2["applications"], local["applications"], strict=True):
        over = overlay["applications"].get(loc["name"], {})
        assert prod["route_prefix"] == loc["route_prefix"]
        assert prod["runtime_env"] == loc["runtime_env"]
        assert prod["import_path"] == kuberay.PRODUCTION_IMPORT_PATH
        assert loc["import_path"] == "services.app:build_app"
        # every arg the overlay does not name is the local one, verbatim
        for key, value in loc["args"].items():
            if key not in over.get("args", {}):
                assert prod["args"][key] == value, key
        cfg = ServeConfig.model_validate(prod["args"])
        assert not cfg.start_embedded_milvus
        assert cfg.checkpoint.startswith("s3://") and cfg.manifest.startswith("s3://")
        for s in cfg.sources:
            assert s.milvus.target == "external" and s.milvus.uri and s.milvus.token is None
            assert s.collection and re.fullmatch(rf"{s.milvus.alias}_v\d+", s.collection), (
                "serve a collection version, not the alias (each RayCluster stays consistent)"
            )
    assert serve_v2["http_options"]["host"] == "0.0.0.0"
    assert serve_v2["http_options"]["port"] == local["http_options"]["port"]


def test_serve_config_v2_is_a_valid_ray_serve_config(serve_v2):
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(serve_v2)  # raises on an invalid Serve config


def test_production_import_path_exists():
    module, attr = kuberay.PRODUCTION_IMPORT_PATH.split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), attr))


def test_overlay_merge_rules():
    base = {
        "http_options": {"host": "127.0.0.1", "port": 8000},
        "applications": [
            {
                "name": "a",
                "import_path": "x:y",
                "args": {"sources": [{"name": "s1"}, {"name": "s2"}], "embedder": {"num_cpus": 0.5}},
            }
        ],
    }
    over = {
        "http_options": {"host": "0.0.0.0"},
        "applications": {"a": {"args": {"sources": [{"name": "s3"}], "embedder": {"min_replicas": 3}}}},
    }
    m = kuberay.merge_serve_config(base, over)
    assert m["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert m["applications"][0]["args"]["sources"] == [{"name": "s3"}]  # lists replace
    assert m["applications"][0]["args"]["embedder"] == {"num_cpus": 0.5, "min_replicas": 3}  # mappings merge
    assert base["http_options"]["host"] == "127.0.0.1"  # inputs untouched
    with pytest.raises(kuberay.OverlayError, match="lacks"):
        kuberay.merge_serve_config(base, {"applications": {"b": {}}})
    with pytest.raises(kuberay.OverlayError, match="ServeConfig"):
        kuberay.merge_serve_config(base, {"applications": {"a": {"args": {"no_such_setting": 1}}}})


def test_new_model_means_new_cluster(tmp_path):
    """The serving annotation of every pod template names checkpoint and collections: a new
    model changes rayClusterConfig, so KubeRay upgrades to a new cluster (incremental)."""
    overlay = yaml.safe_load(kuberay.OVERLAY.read_text())
    before = yaml.safe_load(kuberay.render_rayservice())
    overlay["applications"]["priorsight"]["args"]["checkpoint"] = "s3://priorsight-prod/runs/next"
    overlay["applications"]["priorsight"]["args"]["sources"][0]["collection"] = "drawings_v2"
    p = tmp_path / "overlay.yaml"
    p.write_text(yaml.safe_dump(overlay))
    after = yaml.safe_load(kuberay.render_rayservice(overlay=p))
    assert before["spec"]["rayClusterConfig"] != after["spec"]["rayClusterConfig"]
    for tpl in kuberay._pod_templates(after["spec"]["rayClusterConfig"]):
        assert "runs/next" in tpl["metadata"]["annotations"][kuberay.MODEL_ANNOTATION]
        assert "drawings_v2" in tpl["metadata"]["annotations"][kuberay.MODEL_ANNOTATION]


# -- secrets ------------------------------------------------------------------------------


def test_milvus_secrets_come_from_the_environment():
    args = {
        "sources": [
            {"name": "uspto-2.b", "milvus": {"target": "external", "uri": "http://a:19530"}},
            {"name": "other", "milvus": {"target": "external", "uri": "http://b:19530"}},
        ]
    }
    prefix = kuberay.source_env_prefix("uspto-2.b")
    assert prefix == "PRIORSIGHT_SERVE__SOURCES__USPTO_2_B__MILVUS__"
    out = kuberay.with_milvus_env(args, {prefix + "TOKEN": "priorsight:s3cret", prefix + "URI": "http://m:19530"})
    cfg = ServeConfig.model_validate(out)
    m = cfg.sources[0].milvus
    assert m.token.get_secret_value() == "priorsight:s3cret" and m.uri == "http://m:19530"
    assert cfg.sources[1].milvus.token is None and cfg.sources[1].milvus.uri == "http://b:19530"
    assert "s3cret" not in repr(cfg)
    assert "token" not in args["sources"][0]["milvus"]  # the input is untouched
    assert kuberay.with_milvus_env(args, {}) == args


def test_build_app_passes_env_secrets(monkeypatch):
    import services.app

    seen = {}
    monkeypatch.setattr(services.app, "build_app", lambda a: seen.setdefault("args", a))
    args = yaml.safe_load(kuberay.OVERLAY.read_text())["applications"]["priorsight"]["args"]
    monkeypatch.setenv("PRIORSIGHT_SERVE__SOURCES__USPTO__MILVUS__TOKEN", "priorsight:pw")
    kuberay.build_app(args)
    cfg = ServeConfig.model_validate(seen["args"])
    assert cfg.sources[0].milvus.token.get_secret_value() == "priorsight:pw"


def test_production_api_requires_keys(rayservice, serve_v2):
    """Serve listens on 0.0.0.0 in the pods: API keys on, key file mounted on every Ray pod."""
    cfg = ServeConfig.model_validate(serve_v2["applications"][0]["args"])
    assert cfg.security.auth == "on" and not cfg.security.cors_origins
    key_dir = str(Path(cfg.security.api_keys_file).parent)
    for tpl in kuberay._pod_templates(rayservice["spec"]["rayClusterConfig"]):
        mounts = {m["mountPath"]: m["name"] for c in tpl["spec"]["containers"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        assert vols[mounts[key_dir]]["secret"]["secretName"] == "priorsight-api-keys"


SECRETISH = re.compile(r"(TOKEN|PASSWORD|SECRET|ACCESS_KEY)", re.I)


def test_no_inline_secrets():
    for p in YAML_FILES:
        for d in docs(p):
            for env in walk(d, "env"):
                for e in env if isinstance(env, list) else []:
                    if SECRETISH.search(e["name"]):
                        assert "valueFrom" in e and "value" not in e, f"{p}: {e['name']} inline"
            for key in ("token", "password", "accessKey", "secretKey", "redisPassword"):
                for v in walk(d, key):
                    assert v in ("", None) or (isinstance(v, dict) and "valueFrom" in v), f"{p}: {key} inline"
        assert "minioadmin" not in p.read_text()


# -- KubeRay structure --------------------------------------------------------------------

RAYCLUSTER_SPEC = {
    "upgradeStrategy",
    "authOptions",
    "suspend",
    "managedBy",
    "autoscalerOptions",
    "headServiceAnnotations",
    "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions",
    "historyServerOptions",
    "networkPolicy",
    "tlsOptions",
    "headGroupSpec",
    "rayVersion",
    "workerGroupSpecs",
}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "resources", "labels"}
WORKER_GROUP = {
    "groupName",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "idleTimeoutSeconds",
    "numOfHosts",
    "rayStartParams",
    "template",
    "scaleStrategy",
    "suspend",
    "resources",
    "labels",
}
AUTOSCALER = {
    "resources",
    "image",
    "imagePullPolicy",
    "env",
    "envFrom",
    "volumeMounts",
    "securityContext",
    "idleTimeoutSeconds",
    "upscalingMode",
    "version",
}
GCS_FT = {"backend", "redisUsername", "redisPassword", "externalStorageNamespace", "redisAddress", "storage"}
RAYSERVICE_SPEC = {
    "serveConfigV2",
    "rayClusterConfig",
    "upgradeStrategy",
    "rayClusterDeletionDelaySeconds",
    "serviceUnhealthySecondThreshold",
    "deploymentUnhealthySecondThreshold",
    "serveService",
    "excludeHeadPodFromServeSvc",
    "managedBy",
}
UPGRADE_OPTIONS = {"maxSurgePercent", "stepSizePercent", "intervalSeconds", "gatewayClassName"}
RAYJOB_SPEC = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "rayClusterSpec",
    "submitterPodTemplate",
    "metadata",
    "clusterSelector",
    "submitterConfig",
    "managedBy",
    "deletionStrategy",
    "entrypoint",
    "runtimeEnvYAML",
    "jobId",
    "submissionMode",
    "entrypointResources",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes",
    "suspend",
}


def _keys(obj: dict, allowed: set[str], where: str, required: tuple[str, ...] = ()) -> None:
    assert isinstance(obj, dict), where
    assert set(obj) <= allowed, f"{where}: unknown fields {sorted(set(obj) - allowed)}"
    for r in required:
        assert r in obj, f"{where}: {r} is required"


def check_cluster(spec: dict, where: str) -> None:
    _keys(spec, RAYCLUSTER_SPEC, where, ("headGroupSpec",))
    head = spec["headGroupSpec"]
    _keys(head, HEAD_GROUP, f"{where}.headGroupSpec", ("template",))
    assert head["rayStartParams"]["num-cpus"] == "0", f"{where}: the head takes no tasks"
    groups = spec.get("workerGroupSpecs") or []
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for g in [head, *groups]:
        assert all(isinstance(v, str) for v in g.get("rayStartParams", {}).values()), (
            f"{where}: rayStartParams is a map of strings"
        )
    for g in groups:
        _keys(g, WORKER_GROUP, f"{where}.{g['groupName']}", ("groupName", "template"))
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"], g["groupName"]
    if "autoscalerOptions" in spec:
        _keys(spec["autoscalerOptions"], AUTOSCALER, f"{where}.autoscalerOptions")
        assert spec["autoscalerOptions"].get("upscalingMode", "Default") in {"Default", "Aggressive", "Conservative"}
    if "gcsFaultToleranceOptions" in spec:
        _keys(spec["gcsFaultToleranceOptions"], GCS_FT, f"{where}.gcsFaultToleranceOptions", ("redisAddress",))
    assert spec["rayVersion"] == _ray_version()


def _ray_version() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("ray=="):
            return line.split("==")[1]
    raise AssertionError("ray is not pinned in constraints.txt")


def test_rayservice_structure(rayservice):
    assert rayservice["apiVersion"] == "ray.io/v1" and rayservice["kind"] == "RayService"
    spec = rayservice["spec"]
    _keys(spec, RAYSERVICE_SPEC, "RayService.spec", ("serveConfigV2", "rayClusterConfig"))
    assert isinstance(spec["serveConfigV2"], str)
    up = spec["upgradeStrategy"]
    assert up["type"] == "NewClusterWithIncrementalUpgrade"
    _keys(
        up["clusterUpgradeOptions"],
        UPGRADE_OPTIONS,
        "clusterUpgradeOptions",
        ("stepSizePercent", "intervalSeconds", "gatewayClassName"),
    )
    assert 0 < up["clusterUpgradeOptions"]["maxSurgePercent"] <= 100
    cluster = spec["rayClusterConfig"]
    check_cluster(cluster, "RayService")
    assert cluster["enableInTreeAutoscaling"] is True
    ft = cluster["gcsFaultToleranceOptions"]
    assert ft["redisAddress"].startswith("redis") and "secretKeyRef" in ft["redisPassword"]["valueFrom"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu_res = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_res["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("path", RAYJOBS, ids=lambda p: p.stem)
def test_rayjob_structure(path):
    job = one(path)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    _keys(spec, RAYJOB_SPEC, path.name, ("entrypoint", "rayClusterSpec"))
    assert spec["submissionMode"] in {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
    assert spec["shutdownAfterJobFinishes"] is True
    check_cluster(spec["rayClusterSpec"], path.name)
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    from cluster.ray_env import WORKER_ENV

    assert env == WORKER_ENV
    assert {p.stem for p in RAYJOBS} == {"rayjob-describe", "rayjob-train", "rayjob-index"}


def _cli_command():
    import typer.main

    from priorsight.cli import app

    return typer.main.get_command(app)


@pytest.mark.parametrize("path", RAYJOBS, ids=lambda p: p.stem)
def test_rayjob_entrypoints_parse_with_the_cli(path):
    """Each entrypoint is a real `priorsight` command line: the CLI's own parser accepts it."""
    argv = shlex.split(one(path)["spec"]["entrypoint"])
    assert argv[0] == "priorsight"
    import click

    root = _cli_command()
    ctx = click.Context(root, info_name="priorsight")
    cmd = root.get_command(ctx, argv[1])
    assert cmd is not None, f"no command {argv[1]!r}"
    sub = cmd.make_context(argv[1], argv[2:], parent=ctx)  # raises on an unknown or bad option
    params = sub.params
    assert params.get("address") == "auto", "jobs join the RayJob's cluster"
    for value in params.values():
        if isinstance(value, str) and "priorsight-prod" in value:
            assert value.startswith("s3://"), value


def test_train_job_config_is_a_train_config():
    from training.train import TrainConfig

    job = one(KUBERAY / "rayjob-train.yaml")
    cfg = TrainConfig.model_validate(yaml.safe_load((KUBERAY / "train.yaml").read_text()))
    assert cfg.use_gpu and cfg.run_dir.startswith("s3://")
    assert (ROOT / "training" / "model_configs" / f"{cfg.model}.json").exists()
    gpu = next(g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    assert gpu["minReplicas"] == gpu["maxReplicas"] == cfg.num_workers
    cpus = float(gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert cfg.cpus_per_worker <= cpus
    assert shlex.split(job["spec"]["entrypoint"])[2].endswith("/train.yaml")


# -- Kubernetes schemas -------------------------------------------------------------------


def _pod_templates() -> list[tuple[str, dict]]:
    out = [
        (f"rayservice/{n}", t)
        for n, t in zip(
            ["head", "cpu", "gpu"],
            kuberay._pod_templates(one(KUBERAY / "rayservice.yaml")["spec"]["rayClusterConfig"]),
            strict=True,
        )
    ]
    for p in RAYJOBS:
        spec = one(p)["spec"]
        out += [(f"{p.stem}/{i}", t) for i, t in enumerate(kuberay._pod_templates(spec["rayClusterSpec"]))]
        out.append((f"{p.stem}/submitter", spec["submitterPodTemplate"]))
    return out


def test_pod_templates_match_the_kubernetes_schema():
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    for where, tpl in _pod_templates():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x", **tpl.get("metadata", {})},
            "spec": tpl["spec"],
        }
        try:
            kv.validate(pod, version, strict=True)
        except kv.ValidationError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def test_core_objects_match_the_kubernetes_schema():
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    kinds = []
    for d in docs(KUBERAY / "namespace.yaml"):
        kv.validate(d, version, strict=True)
        kinds.append(d["kind"])
    assert kinds == ["Namespace", "ServiceAccount", "Service", "NetworkPolicy"]


def test_images_are_the_projects():
    found = set()
    for p in YAML_FILES:
        for d in docs(p):
            for key in ("image", "worker_image", "head_image"):
                for v in walk(d, key):
                    if isinstance(v, str) and "priorsight" in v:
                        found.add(v)
                        assert v in IMAGES, f"{p}: {v} is not one of {IMAGES}"
    assert found == IMAGES
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for image in IMAGES:
        assert f"-t {image} ." in dockerfile
    assert "python:3.11-slim" in dockerfile and "-c constraints.txt ." in dockerfile
    torch = re.search(r"TORCH\s*:=\s*torch==(\S+)", (ROOT / "Makefile").read_text()).group(1)
    assert f"TORCH_VERSION={torch}" in dockerfile, "the image's torch is the Makefile's pin"
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"Dockerfile copies missing {part}"


def test_ports_agree(rayservice, serve_v2):
    serve_port = serve_v2["http_options"]["port"]
    metrics_port = int(rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["metrics-export-port"])
    for where, tpl in _pod_templates():
        if where.endswith("submitter"):
            continue
        ports = {p["name"]: p["containerPort"] for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        assert ports["metrics"] == metrics_port, where
        if where.startswith("rayservice"):
            assert ports["serve"] == serve_port, where
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert all(g["rayStartParams"]["metrics-export-port"] == str(metrics_port) for g in groups)
    monitors = {d["metadata"]["name"]: d for d in docs(MONITORING / "podmonitors.yaml")}
    assert [e["port"] for e in monitors["priorsight-ray"]["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert [e["port"] for e in monitors["priorsight-serve"]["spec"]["podMetricsEndpoints"]] == ["serve"]
    labels = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"]
    for m in monitors.values():
        assert m["spec"]["namespaceSelector"]["matchNames"] == [rayservice["metadata"]["namespace"]]
        sel = {k: v for k, v in m["spec"]["selector"]["matchLabels"].items() if not k.startswith("ray.io/")}
        assert sel.items() <= labels.items()
    policy = docs(KUBERAY / "namespace.yaml")[3]
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert {serve_port, metrics_port} <= allowed
    exposed = set(map(int, re.search(r"^EXPOSE (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1).split()))
    assert {serve_port, metrics_port, 6379, 8265, 10001} <= exposed


def test_paths_exist():
    kust = one(DEPLOY / "kustomization.yaml")
    for r in kust["resources"]:
        assert (DEPLOY / r).exists(), r
    for gen in kust["configMapGenerator"]:
        for f in gen["files"]:
            assert (DEPLOY / f.split("=", 1)[1]).exists(), f
    mounted = {
        v["configMap"]["name"] for p in RAYJOBS for vols in walk(one(p), "volumes") for v in vols if "configMap" in v
    }
    assert mounted <= {g["name"] for g in kust["configMapGenerator"]}
    launcher = one(LAUNCHER / "aws.yaml")
    for src in launcher["file_mounts"].values():
        assert (ROOT / src).exists(), src


# -- Ray cluster launcher -----------------------------------------------------------------


def test_launcher_matches_the_ray_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = one(LAUNCHER / "aws.yaml")
    jsonschema.validate(cfg, schema)
    types = cfg["available_node_types"]
    assert cfg["provider"]["type"] == "aws" and cfg["head_node_type"] in types
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    assert any(t["resources"].get("GPU") for t in types.values())
    assert any(t["resources"].get("CPU") and not t["resources"].get("GPU") for n, t in types.items() if n != "head")
    assert sum(t.get("max_workers", 0) for t in types.values()) <= cfg["max_workers"]


def test_runtime_env_is_the_worker_env():
    from cluster.ray_env import WORKER_ENV

    env = one(LAUNCHER / "runtime_env.yaml")
    assert env["env_vars"] == WORKER_ENV
    local = yaml.safe_load(kuberay.SERVE_CONFIG.read_text())
    assert local["applications"][0]["runtime_env"]["env_vars"] == WORKER_ENV


# -- Milvus -------------------------------------------------------------------------------

BYTES_PER_DRAWING = 1_800  # planning figure of deploy/milvus/values.yaml and docs/deploy.md
GIB = 2**30


def _milvus_values(*files: str) -> dict:
    v: dict = {}
    for f in files:
        v = kuberay.deep_merge(v, one(MILVUS / f))
    return v


@pytest.mark.parametrize(
    "files,drawings", [(("values.yaml",), 3_000_000), (("values.yaml", "values-30m.yaml"), 30_000_000)]
)
def test_milvus_query_nodes_hold_two_versions(files, drawings):
    """Old + new collection version (an upgrade), x1.5 headroom, fit on all query nodes but one."""
    v = _milvus_values(*files)
    need = drawings * BYTES_PER_DRAWING * 2 * 1.5
    q = v["queryNode"]
    mem = q["resources"]["limits"]["memory"]
    per_node = int(mem.removesuffix("Gi")) * GIB * 0.9
    assert (q["replicas"] - 1) * per_node >= need, (files, need / GIB)
    assert q["resources"]["requests"]["memory"] == mem  # no overcommit of index memory


def test_milvus_values():
    v = _milvus_values("values.yaml")
    assert v["cluster"]["enabled"] is True and v["minio"]["enabled"] is False
    s3 = v["externalS3"]
    assert s3["enabled"] and s3["useIAM"] and not s3.get("accessKey") and not s3.get("secretKey")
    user = yaml.safe_load(v["extraConfigFiles"]["user.yaml"])
    assert user["common"]["security"]["authorizationEnabled"] is True
    queues = [
        k
        for k in ("pulsarv3", "pulsar", "kafka", "externalKafka", "externalPulsar", "woodpecker")
        if v.get(k, {}).get("enabled")
    ]
    assert len(queues) == 1, queues
    assert v["mixCoordinator"]["activeStandby"]["enabled"] and v["etcd"]["replicaCount"] == 3
    chart_keys = {
        "cluster",
        "image",
        "extraConfigFiles",
        "service",
        "serviceAccount",
        "metrics",
        "proxy",
        "mixCoordinator",
        "queryNode",
        "dataNode",
        "indexNode",
        "minio",
        "externalS3",
        "etcd",
        "pulsarv3",
        "kafka",
    }
    assert set(v) <= chart_keys, set(v) - chart_keys
    text = (MILVUS / "values.yaml").read_text()
    assert f"{BYTES_PER_DRAWING:,} B" in text and "1,024 B" in text


def test_priorsight_config_points_at_the_milvus_cluster(serve_v2):
    settings = Settings.model_validate(one(MILVUS / "priorsight.yaml"))
    m = settings.milvus
    assert m.target == "external" and m.token is None and m.partition_key
    serve = ServeConfig.model_validate(serve_v2["applications"][0]["args"])
    assert {s.milvus.uri for s in serve.sources} == {m.uri}
    assert m.uri.startswith("http://milvus.milvus.svc")
    assert v_service_port() == int(m.uri.rsplit(":", 1)[1])


def v_service_port() -> int:
    return int(_milvus_values("values.yaml")["service"]["port"])


# -- monitoring ---------------------------------------------------------------------------

METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


def _priorsight_metrics() -> set[str]:
    from services.metrics import ServeMetrics

    names = set()
    for fam in ServeMetrics().registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "summary": ["_sum", "_count"],
        }.get(fam.type, [""])
        names |= {fam.name + s for s in suffixes}
    return names


def _ray_metrics() -> set[str]:
    import ray

    panels = Path(ray.__file__).parent / "dashboard" / "modules" / "metrics" / "dashboards"
    return {m for f in panels.glob("*.py") for m in re.findall(r"\bray_[a-z0-9_]+", f.read_text())}


def _exprs() -> list[str]:
    rules = one(MONITORING / "alerts.yaml")["spec"]["groups"]
    out = [r["expr"] for g in rules for r in g["rules"]]
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return out + [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_monitoring_uses_real_metric_names():
    known = _priorsight_metrics() | _ray_metrics() | {"up"}
    used = {m for e in _exprs() for m in METRIC.findall(e)}
    assert used, "no metric found in the expressions"
    assert used <= known, f"unknown metrics: {sorted(used - known)}"
    ours = {m for m in used if m.startswith("priorsight_")}
    for needed in (
        "priorsight_request_seconds_bucket",
        "priorsight_partial_results_total",
        "priorsight_errors_total",
        "priorsight_source_failures_total",
    ):
        assert needed in ours, needed


def test_alert_rules():
    doc = one(MONITORING / "alerts.yaml")
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    rules = {r["alert"]: r for g in doc["spec"]["groups"] for r in g["rules"]}
    for name in ("PriorSightSearchLatencyP99High", "PriorSightErrorRateHigh", "MilvusUnavailable"):
        assert name in rules
    for r in rules.values():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
        assert r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
    assert "histogram_quantile(0.99" in rules["PriorSightSearchLatencyP99High"]["expr"]


def test_dashboard_covers_latency_partial_errors_replicas():
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    text = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("latency", "partial", "errors", "replicas"):
        assert word in text, word
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${datasource}"


def test_docs_describe_the_deployment():
    text = (ROOT / "docs" / "deploy.md").read_text()
    for needle in ("priorsight deploy render", "3M", "30M", "1,024 B", "swap", "Backups", "serve-overlay.yaml"):
        assert needle in text, needle
