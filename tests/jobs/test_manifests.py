"""Every manifest in k8s/ against the KubeRay CRD schemas (unknown fields rejected), and what the
manifests pass to Ray against the project: entry point, Hydra overrides, runtime env, image,
resources and storage."""

from __future__ import annotations

import copy
import importlib
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

from jobs import runtime_env as renv
from jobs import submit
from selfplay import cli

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO.parent / "shared" / "kuberay"
MANIFESTS = sorted((REPO / "k8s").glob("*.yaml"))
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
ENTRY_CONFIGS = {"selfplay.generate": "selfplay.generate:round_config",
                 "selfplay.flywheel": "selfplay.flywheel_config:flywheel_config"}
"""The entry points RayJobs run, and the function each one builds its typed config with."""
OBJECT_META = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    "namespace": {"type": "string"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}


def docs() -> list[tuple[str, dict]]:
    return [(f"{p.name}#{i}", d) for p in MANIFESTS for i, d in enumerate(yaml.safe_load_all(p.read_text())) if d]


def ray_docs(kind: str | None = None) -> list[tuple[str, dict]]:
    return [(n, d) for n, d in docs() if d["apiVersion"].startswith("ray.io/") and kind in (None, d["kind"])]


def strict(schema):
    """The CRD schema with unknown fields rejected: Kubernetes silently prunes them, so a typo'd
    field would vanish on apply. Every object that lists properties gets additionalProperties
    false unless it preserves unknown fields."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def validator(kind: str, version: str) -> jsonschema.Validator:
    path = CRDS / CRD_FILES[kind]
    if not path.exists():
        pytest.skip(f"KubeRay CRD schemas not found at {CRDS} (expected ../shared/kuberay from the repo root)")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 40k lines: C parser
    found = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert found, f"{path.name} has no version {version}"
    schema = strict(found[0]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft4Validator(schema)


def schema_errors(doc: dict) -> list[str]:
    v = validator(doc["kind"], doc["apiVersion"].split("/", 1)[1])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in v.iter_errors(doc)]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def groups(doc: dict) -> list[dict]:
    return cluster_spec(doc)["workerGroupSpecs"]


def containers(doc: dict) -> list[dict]:
    spec = cluster_spec(doc)
    return [c for g in [spec["headGroupSpec"], *spec["workerGroupSpecs"]] for c in g["template"]["spec"]["containers"]]


def project_version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def job_argv(doc: dict) -> tuple[str, list[str]]:
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[:2] == ["python", "-m"], f"entrypoint must be `python -m <entry> overrides...`, got {argv[:3]}"
    return argv[2], argv[3:]


def job_config(doc: dict) -> tuple[str, Any]:
    """The RayJob's entry point and its typed config, composed from conf/ as the entry point composes it."""
    entry, overrides = job_argv(doc)
    assert entry in ENTRY_CONFIGS, f"no test knows the config of {entry}: add it to ENTRY_CONFIGS"
    module, build = ENTRY_CONFIGS[entry].split(":")
    cfg = cli.compose(entry.rsplit(".", 1)[-1], overrides, str(REPO / "conf"))
    return entry, getattr(importlib.import_module(module), build)(cfg)


def round_config(entry: str, config):
    """The generation round the job runs: generate's own, or the flywheel's first (its rounds differ
    in model and problems only, not in engines or placement)."""
    if entry != "selfplay.flywheel":
        return config
    difficulty = config.curriculum.start if config.source is None else None
    return config.round_config("verified", 1, difficulty, config.start_model or config.bootstrap.out_dir)


def out_dir(entry: str, config) -> str:
    return config.out_dir if entry == "selfplay.flywheel" else config.output.out_dir


def paths_read(entry: str, config) -> list[str]:
    """The local paths the job reads (problem files, a model directory); a hub id is none."""
    from selfplay.engines.resolve import _looks_like_path

    rc = round_config(entry, config)
    sources = [rc.source] + ([config.heldout.source(config.source)] if entry == "selfplay.flywheel" and config.source else [])
    paths = [s.path for s in sources if s and s.kind in ("file", "hf_dir")]
    models = [config.start_model] if entry == "selfplay.flywheel" else [rc.solver.engine.model]
    if rc.critic.enabled and not rc.critic.share_solver:
        models.append(rc.critic.model.engine.model)
    return paths + [m for m in models if m and _looks_like_path(m)]


def test_the_manifests_exist():
    kinds = {d["kind"] for _, d in docs()}
    assert {"RayCluster", "RayJob", "PersistentVolumeClaim"} <= kinds
    assert {job_argv(d)[0] for _, d in ray_docs("RayJob")} >= {"selfplay.generate", "selfplay.flywheel"}


@pytest.mark.parametrize("name,doc", ray_docs(), ids=[n for n, _ in ray_docs()])
def test_manifest_matches_the_kuberay_crd_schema(name, doc):
    assert doc["apiVersion"] == "ray.io/v1"
    errors = schema_errors(doc)
    assert not errors, f"{name}:\n" + "\n".join(errors)


@pytest.mark.parametrize("path,typo", [
    (["spec", "headGroupSpec", "rayStartParam"], {}),
    (["spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "resource"], {"limits": {}}),
    (["spec", "workerGroupSpecs", 0, "template", "metadata"], {"label": {"a": "b"}}),
    (["spec", "shutdownAfterJobFinish"], True),
])
def test_an_unknown_field_is_rejected_not_pruned(path, typo):
    kind = "RayJob" if path[-1] == "shutdownAfterJobFinish" else "RayCluster"
    doc = copy.deepcopy(ray_docs(kind)[0][1])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = typo
    assert schema_errors(doc), f"a misspelt {path[-1]!r} passed validation"


@pytest.mark.parametrize("name,doc", ray_docs(), ids=[n for n, _ in ray_docs()])
def test_cluster_runs_this_ray_and_image(name, doc):
    spec = cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__, "rayVersion must match the Ray the project pins"
    images = {c["image"] for c in containers(doc)}
    assert len(images) == 1, f"{name}: one image for head and workers, got {images}"
    gpu = any(_gpus(g) for g in groups(doc))
    assert images == {f"selfplay:{project_version()}-{'gpu' if gpu else 'cpu'}"}
    dockerfile = (REPO / "k8s" / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}-" in dockerfile and f"ray.__version__ == '{ray.__version__}'" in dockerfile


@pytest.mark.parametrize("name,doc", ray_docs(), ids=[n for n, _ in ray_docs()])
def test_head_does_no_work_and_auth_mode_is_explicit(name, doc):
    spec = cluster_spec(doc)
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    mode = spec["authOptions"]["mode"]
    for c in containers(doc):
        assert {"name": "RAY_AUTH_MODE", "value": mode} in c["env"], f"{c['name']}: RAY_AUTH_MODE env != authOptions"


def _gpus(group: dict) -> int:
    res = group["template"]["spec"]["containers"][0]["resources"]
    return int(res.get("limits", {}).get("nvidia.com/gpu", 0))


def _mounts(group: dict) -> dict[str, str]:
    """mountPath -> volume name of the group's first container."""
    return {m["mountPath"]: m["name"] for m in group["template"]["spec"]["containers"][0].get("volumeMounts", [])}


@pytest.mark.parametrize("name,doc", ray_docs(), ids=[n for n, _ in ray_docs()])
def test_worker_groups_have_gpus_shm_hf_cache_and_scaling_bounds(name, doc):
    hf_home = renv.load()["env_vars"]["HF_HOME"].replace("${HOME}", "/home/ray")
    for g in groups(doc):
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]
        res = g["template"]["spec"]["containers"][0]["resources"]
        for key in ("nvidia.com/gpu", "cpu", "memory"):
            assert res["requests"].get(key) == res["limits"].get(key), f"{g['groupName']}: {key} requests != limits"
        volumes = {v["name"]: v for v in g["template"]["spec"]["volumes"]}
        mounts = _mounts(g)
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        assert mounts.get(hf_home) in volumes, f"{g['groupName']}: no HF cache volume at {hf_home} (runtime env HF_HOME)"
    if doc["metadata"]["name"] in ("selfplay", "selfplay-generate"):
        assert {g["groupName"] for g in groups(doc)} == {"solver", "critic"}
        assert all(_gpus(g) >= 1 for g in groups(doc))
        assert cluster_spec(doc)["enableInTreeAutoscaling"] is True


def test_the_rayjob_embeds_the_raycluster_spec():
    (_, cluster), = ray_docs("RayCluster")
    job = dict(ray_docs("RayJob"))["rayjob-generate.yaml#0"]
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]


@pytest.mark.parametrize("name,doc", ray_docs("RayJob"), ids=[n for n, _ in ray_docs("RayJob")])
def test_rayjob_entry_point_composes_with_the_project_config(name, doc):
    entry, overrides = job_argv(doc)
    # The same check `python -m jobs.submit` runs: Hydra compose plus the verb's typed config.
    assert submit.checked_overrides(entry, overrides, str(REPO)) == overrides, "choose cluster=ray_job explicitly"
    _, config = job_config(doc)
    rc = round_config(entry, config)
    assert rc.cluster.address == "auto", "the driver must join the cluster, not start a local Ray"
    # Resume on retry: out_dir is keyed by the run (the RayJob's name), on storage all workers mount.
    out = out_dir(entry, config)
    assert out.rstrip("/").rsplit("/", 1)[-1] == doc["metadata"]["name"]
    if entry == "selfplay.generate":
        assert submit.run_name(None, overrides) == doc["metadata"]["name"]
    # The driver and the workers may run on any worker pod: whatever they read or write is on a
    # volume every group mounts (or in an object store).
    for path in [out, *paths_read(entry, config)]:
        assert "://" in path or Path(path).is_absolute(), f"{path}: relative to whichever pod reads it"
        for g in groups(doc):
            assert "://" in path or any(path.startswith(p.rstrip("/") + "/") for p in _mounts(g)), \
                f"{path} is on no volume the {g['groupName']} group mounts"
    assert doc["spec"]["entrypointNumCpus"] == submit._parser("submit").get_default("entrypoint_num_cpus")
    assert doc["spec"]["backoffLimit"] >= 1
    if doc["spec"]["shutdownAfterJobFinishes"]:
        assert doc["spec"]["ttlSecondsAfterFinished"] > 0


@pytest.mark.parametrize("name,doc", ray_docs("RayJob"), ids=[n for n, _ in ray_docs("RayJob")])
def test_rayjob_resources_fit_the_worker_groups(name, doc):
    entry, config = job_config(doc)
    rc = round_config(entry, config)
    by_name = {g["groupName"]: g for g in groups(doc)}
    roles = [("solver", rc.solver)] + ([("critic", rc.critic.model)] if rc.critic.enabled and not rc.critic.share_solver else [])
    for role, model in roles:
        group = by_name.get(role) or groups(doc)[0]
        res = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert model.num_gpus <= _gpus(group), f"{role}: {model.num_gpus} GPUs per replica, pods have {_gpus(group)}"
        assert model.num_cpus + doc["spec"]["entrypointNumCpus"] <= float(res["cpu"]), f"{role}: CPUs per pod"
        per_pod = int(_gpus(group) // model.num_gpus) if model.num_gpus else 1
        assert model.replicas <= group["maxReplicas"] * max(per_pod, 1), f"{role}: autoscaler bound too low"
        if model.num_gpus:
            assert model.engine.tensor_parallel_size <= model.num_gpus


def _flywheel_jobs() -> list[tuple[str, dict]]:
    return [(n, d) for n, d in ray_docs("RayJob") if job_argv(d)[0] == "selfplay.flywheel"]


@pytest.mark.parametrize("name,doc", _flywheel_jobs(), ids=[n for n, _ in _flywheel_jobs()])
def test_flywheel_rayjob_distils_on_the_gpu_workers(name, doc):
    """Distillation is a Ray Train job of distill.workers workers with distill.gpus_per_worker GPUs
    each. The round's engine actors are killed before it starts (run_round closes its pools), so
    the workers need the GPU groups' capacity after them, not beside them; each worker fits one pod."""
    from selfplay.distill_ray import checkpoint_root

    _, fw = job_config(doc)
    d = fw.distill
    assert d.trainer == "trl" and d.workers >= 1 and d.gpus_per_worker >= 1, "distil on the cluster's GPU workers"
    capacity = 0
    for g in groups(doc):
        cpus = float(g["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
        if _gpus(g) >= d.gpus_per_worker:
            assert d.cpus_per_worker + doc["spec"]["entrypointNumCpus"] <= cpus, f"{g['groupName']}: a worker beside the driver"
            capacity += g["maxReplicas"] * min(int(_gpus(g) // d.gpus_per_worker), int(cpus // d.cpus_per_worker))
    assert d.workers <= capacity, f"{d.workers} Ray Train workers x {d.gpus_per_worker:g} GPU; the groups hold {capacity}"
    # Every worker reaches the rounds and the Ray Train checkpoints: both live under out_dir.
    model_dir = fw.model_dir("verified", 1)
    assert str(checkpoint_root(str(model_dir))).startswith(fw.out_dir.rstrip("/") + "/")
    # Evaluation runs on engine actors placed like the solver's, so the driver stays a CPU task.
    assert fw.evaluate_on == "solver", "evaluate on the GPU workers, not in the driver"


@pytest.mark.parametrize("name,doc", ray_docs("RayJob"), ids=[n for n, _ in ray_docs("RayJob")])
def test_rayjob_runtime_env_is_the_jobs_runtime_env(name, doc):
    env = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])
    renv.check(env)
    assert env["env_vars"] == renv.load()["env_vars"]
    assert env["env_vars"]["RAY_AUTH_MODE"] == cluster_spec(doc)["authOptions"]["mode"]
