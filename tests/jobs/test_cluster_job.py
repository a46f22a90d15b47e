"""jobs/cluster.yaml builds a graph without Ray or GPUs; jobs/kuberay-rayjob.yaml runs it.

/shared does not exist here, so the seed files are pointed at the repository's own with a
--set override, as a user would for a trial run; the tokenizer ships inside synthmix.
"""

from pathlib import Path

import yaml

from synthmix.pipeline.config import load_job
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.llm.engines import check_models
from synthmix.pipeline.llm.engines.vllm import VllmEngine, VllmModel
from synthmix.stages.registry import STAGES

JOBS = Path(__file__).resolve().parents[2] / "jobs"
LOCAL_INPUTS = ["seeds.path=data/natural.jsonl"]


def cluster_plan():
    job = load_job(JOBS / "cluster.yaml", LOCAL_INPUTS)
    return job, build_graph(job, STAGES, run_dir=Path("/shared/runs/cluster"), job_dir=JOBS)


def test_cluster_job_builds_the_whole_recipe():
    job, plan = cluster_plan()
    assert [node.name for node in plan] == [
        "seeds", "synthesize", "evolve", "dedup_instructions", "answer", "gather_samples", "consistency",
        "verify_code", "critique", "quality", "dedup_samples", "decontaminate", "tokenize", "mix",
    ]  # fmt: skip
    used = {name for node in plan for name in node.stage.models_used()}
    assert used == {"general", "math", "code", "critic"}


def test_answer_routes_each_domain_to_its_expert_model():
    job, plan = cluster_plan()
    answer = next(node for node in plan if node.name == "answer")
    assert answer.stage.params.routes == {"math": "math", "code": "code", "default": "general"}
    assert job.models["math"].model == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert job.models["code"].model == "Qwen/Qwen2.5-Coder-7B-Instruct"


def test_cluster_models_pass_the_checks_of_a_16_gpu_cluster_with_tensor_parallel_bundles():
    job, _ = cluster_plan()
    check_models(job.models, {"CPU": 128, "GPU": 16})
    general = job.models["general"]
    assert isinstance(general, VllmModel)
    settings = VllmEngine().start_settings(general)
    assert settings["engine_kwargs"]["tensor_parallel_size"] == 4
    assert settings["placement_group_config"] == {"bundle_per_worker": {"GPU": 1, "CPU": 2}}


def test_rayjob_manifest_runs_the_cluster_job_with_token_auth_and_gpu_workers():
    manifest = yaml.safe_load((JOBS / "kuberay-rayjob.yaml").read_text())
    assert manifest["kind"] == "RayJob" and manifest["apiVersion"] == "ray.io/v1"
    spec = manifest["spec"]
    command = spec["entrypoint"].split()
    assert command[:5] == ["python", "-m", "synthmix", "run", "jobs/cluster.yaml"]
    assert (JOBS.parent / command[4]).is_file()
    assert command[command.index("--run-dir") + 1].startswith("/shared/")
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    (gpu_group,) = cluster["workerGroupSpecs"]
    limits = gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) * gpu_group["replicas"] == 16
