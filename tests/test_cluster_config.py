"""cluster.yaml against Ray's own cluster-launcher schema, and the security properties the README promises."""

import json
import os
import re

import jsonschema
import pytest
import ray
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cluster() -> dict:
    with open(os.path.join(ROOT, "cluster.yaml")) as handle:
        return yaml.safe_load(handle)


def test_cluster_yaml_is_valid_for_ray_up():
    with open(os.path.join(os.path.dirname(ray.__file__), "autoscaler", "ray-schema.json")) as handle:
        schema = json.load(handle)
    jsonschema.validate(_cluster(), schema)


def test_cluster_turns_on_token_auth_and_keeps_the_dashboard_private():
    cluster = _cluster()
    for command in cluster["head_start_ray_commands"][1:] + cluster["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in command
    head = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    rules = cluster["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert all(not r["CidrIp"].startswith("0.0.0.0") for rule in rules for r in rule["IpRanges"])


def test_cluster_installs_the_gpu_extra_and_sizes_workers_for_both_students():
    cluster = _cluster()
    assert any("[gpu]" in c for c in cluster["setup_commands"])
    types = {t["node_config"]["InstanceType"] for t in cluster["available_node_types"].values()}
    assert "p5.48xlarge" in types  # 8 GPUs: the 30B MoE under ZeRO-3
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert head["resources"].get("trial_driver")  # trial drivers stay on the on-demand head
    assert "OPENROUTER" not in yaml.safe_dump(cluster)  # keys travel with jobs, never in cluster files


SEED = os.path.join(ROOT, "sweeps", "seed.yaml")
CLUSTER = os.path.join(ROOT, "cluster.yaml")


def _dry_run(capsys, *overrides: str) -> tuple[int, dict | None, str]:
    from distill_ray.cli import main

    code = main(["sweep", SEED, "--dry-run", "--cluster", CLUSTER, *overrides])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, captured.err


def test_seed_placement_names_the_node_type_of_every_actor(capsys):
    code, plan, table = _dry_run(capsys)
    assert code == 0
    hosts = {row["actor"]: row["node_types"] for row in plan["placement"]}
    assert hosts["Tune trial driver"] == ["head"]  # trial drivers stay on the on-demand head
    assert hosts["Ray Train worker (qwen3-30b-a3b, ZeRO-3)"] == ["gpu-h100x8"]
    assert hosts["Ray Train worker (llama-3.1-8b, ZeRO-2)"] == ["gpu-l40sx4-spot"]
    assert hosts["evaluation actor (qwen3-30b-a3b, tensor_parallel 2)"] == ["gpu-l40sx4-spot"]
    assert hosts["evaluation actor (llama-3.1-8b, tensor_parallel 1)"] == ["gpu-l40sx4-spot"]
    assert all(h == ["head"] for a, h in hosts.items() if a.startswith("evaluation dispatcher"))
    assert "gpu-h100x8" in table and "node_l40s=2" in table  # the human table on stderr


@pytest.mark.parametrize("label, overrides, student, node_type", [
    ("30B MoE engine on one 48 GB L40S", ["students.qwen3-30b-a3b.evaluation.tensor_parallel=1",
                                          "students.qwen3-30b-a3b.evaluation.gpus=1"],
     "qwen3-30b-a3b", "gpu-l40sx4-spot"),
    ("ZeRO-3 group of 24 H100 workers: 2 nodes x 8 GPUs hold 16", ["students.qwen3-30b-a3b.num_workers=24"],
     "qwen3-30b-a3b", "gpu-h100x8"),
    ("30B MoE under ZeRO-2 on L40S: 57 GiB replicated on every 48 GB GPU",
     ["students.qwen3-30b-a3b.worker_resources={node_l40s: 1}", "students.qwen3-30b-a3b.deepspeed_stage=2"],
     "qwen3-30b-a3b", "gpu-l40sx4-spot"),
    ("vLLM engine without a GPU", ["students.qwen3-30b-a3b.evaluation.gpus=0",
                                   "students.qwen3-30b-a3b.evaluation.tensor_parallel=1"], "qwen3-30b-a3b", None),
])
def test_a_student_that_fits_no_node_type_exits_2_naming_it(capsys, label, overrides, student, node_type):
    code, _, err = _dry_run(capsys, *overrides)
    assert code == 2, label
    assert f"student {student}" in err, label
    assert node_type is None or node_type in err, label


def test_the_seed_dry_run_prints_the_training_memory_plan_against_the_node_type(capsys):
    code, plan, err = _dry_run(capsys)
    assert code == 0
    memory = plan["train_memory"]
    assert set(memory) == {"qwen3-30b-a3b", "llama-3.1-8b"}
    # the planner's figure is what decides the fit: below one usable H100 / L40S, and above the bf16 weights alone
    assert 9.4 < memory["qwen3-30b-a3b"]["total_gib"] < 71.7 and 15.0 < memory["llama-3.1-8b"]["total_gib"] < 40.5
    lines = err.split("estimated training memory per GPU", 1)[1].splitlines()
    qwen = next(line for line in lines if line.startswith("qwen3-30b-a3b")).split()
    llama = next(line for line in lines if line.startswith("llama-3.1-8b")).split()
    assert qwen[-1] == "80" and llama[-1] == "45"  # the GPU GiB of the node type hosting each train group


def test_a_token_budget_that_cannot_fit_exits_2_naming_student_node_type_and_estimate(capsys):
    code, _, err = _dry_run(capsys, "training.max_length=32768", "training.micro_batch_tokens=null",
                            "grid.students=[llama-3.1-8b]")
    assert code == 2
    assert "student llama-3.1-8b: its train group fits on no node type" in err
    assert re.search(r"gpu-l40sx4-spot: \d+\.\d GiB per GPU > 40\.\d GiB usable of one L40S", err)


def test_every_custom_resource_the_seed_asks_for_is_advertised_by_cluster_yaml():
    from distill_ray.config import load_sweep

    sweep = load_sweep(SEED)
    advertised = {key for t in _cluster()["available_node_types"].values() for key in (t.get("resources") or {})}
    asked = set(sweep.trial_resources) - {"CPU", "GPU"}
    for student in sweep.students.values():
        asked |= set(student.worker_resources) | set(student.evaluation.resources)
    assert asked and asked <= advertised


@pytest.mark.parametrize("uri", ["s3://bucket/runs", "gs://bucket/runs", "file:///tmp/runs"])
def test_a_storage_uri_is_refused_before_anything_runs(capsys, uri):
    from distill_ray.cli import main

    assert main(["sweep", SEED, "--dry-run", f"storage={uri}"]) == 2
    err = capsys.readouterr().err
    assert "storage" in err and "seed.yaml" in err and "URI" in err


def test_one_example_longer_than_the_token_budget_is_planned_and_refused(capsys):
    """An example longer than micro_batch_tokens gets a row of its own: at max_length 65,536 Llama-3.1-8B's largest
    row holds 65,536 tokens, which no L40S holds (the issue's example); seed.yaml as shipped still plans."""
    code, _, err = _dry_run(capsys, "training.max_length=65536", "training.micro_batch=16")
    assert code == 2
    assert "student llama-3.1-8b: its train group fits on no node type" in err
    assert re.search(r"gpu-l40sx4-spot: \d+\.\d GiB per GPU > 40\.\d GiB usable of one L40S", err)
    code, plan, _ = _dry_run(capsys)
    assert code == 0 and plan["train_memory"]["llama-3.1-8b"]["tokens_per_micro_batch"] == 16384
