"""cluster.yaml against Ray's own cluster-launcher schema, and the security properties the README promises."""

import json
import os

import jsonschema
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
