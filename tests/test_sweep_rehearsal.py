"""A dress rehearsal of the seed study (sweeps/rehearsal.yaml) on a simulated cluster shaped like cluster.yaml.

The head advertises `trial_driver` and no GPU; an "H100" node and an "L40S" node advertise logical GPUs, their
node-type resource and accelerator type (Ray schedules on logical GPUs; the code inside runs on the CPU). Everything
is checked from Ray's own state (the GCS actor table, with node ids) and from what the actors recorded: every train
worker and every evaluation actor ran on a GPU node, trial drivers on the head, each student's base was evaluated
once, no evaluation actor loaded its engine twice, a checkpoint was scored while its trial was still training, and
an evaluation actor killed mid-run was replaced without losing a row of the report.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import threading
import time

import pytest

from distill_ray.config import load_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REHEARSAL = os.path.join(ROOT, "sweeps", "rehearsal.yaml")
NIL_NODE = "f" * 56


def test_rehearsal_fits_the_real_cluster_file(shared_benchmarks, capsys):
    from distill_ray.cli import main

    assert main(["sweep", REHEARSAL, "--dry-run", "--cluster", os.path.join(ROOT, "cluster.yaml")]) == 0
    plan = json.loads(capsys.readouterr().out)
    hosts = {row["actor"]: row["node_types"] for row in plan["placement"]}
    assert hosts["Ray Train worker (qwen3-30b-a3b, ZeRO-3)"] == ["gpu-h100x8"]
    assert hosts["Tune trial driver"] == ["head"]


def test_rehearsal_keeps_the_seed_structure(shared_benchmarks):
    seed, rehearsal = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml")), load_sweep(REHEARSAL)
    assert rehearsal.grid.model_dump() == seed.grid.model_dump()
    assert set(rehearsal.teachers) == set(seed.teachers) and set(rehearsal.domains) == set(seed.domains)
    for name, student in rehearsal.students.items():
        real = seed.students[name]
        assert student.num_workers > 1 and student.deepspeed_stage == real.deepspeed_stage
        assert student.gpus_per_worker == real.gpus_per_worker and student.worker_resources == real.worker_resources
        assert student.evaluation.gpus >= 1 and student.evaluation.resources
        # the same LoRA targets as the seed (the MoE's experts included), so the adapter the seed evaluates is written
        assert student.lora.target_modules == real.lora.target_modules
        assert student.lora.expert_lora == real.lora.expert_lora
    assert [b.name for b in rehearsal.evaluation.benchmarks] == [b.name for b in seed.evaluation.benchmarks]
    assert rehearsal.trial_resources.get("trial_driver") == seed.trial_resources["trial_driver"]


@pytest.mark.slow
def test_dress_rehearsal_on_a_cluster_shaped_like_cluster_yaml(tmp_path, shared_benchmarks):
    import ray
    import ray._private.state as gcs_state  # the GCS view with node ids; the state API would need the dashboard
    from ray.cluster_utils import Cluster

    from distill_ray.sweep import grid_trials, run_sweep

    sweep = load_sweep(REHEARSAL, [f"storage={tmp_path}"])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0,
                                                            "resources": {"trial_driver": 2}})
    h100 = cluster.add_node(num_cpus=1, num_gpus=2, resources={"node_h100": 2, "accelerator_type:H100": 1})
    l40s = cluster.add_node(num_cpus=2, num_gpus=4, resources={"node_l40s": 4, "accelerator_type:L40S": 1})
    gpu_nodes = {h100.node_id, l40s.node_id}
    head = cluster.head_node.node_id
    exp = sweep.experiment_dir()
    killed: list[int] = []
    actors_seen: dict[str, dict] = {}
    stop = threading.Event()

    def watch() -> None:
        """Record every actor the GCS knows (node included), and kill one evaluation actor mid-run."""
        while not stop.is_set():
            for actor_id, actor in gcs_state.actors().items():
                if actor["Address"]["NodeID"] != NIL_NODE:  # a pending actor has no node yet
                    actors_seen[actor_id] = actor
            if not killed and glob.glob(os.path.join(exp, "trials", "*", "eval", "*", "worker.json")):
                alive = [a for a in gcs_state.actors().values()
                         if a["ActorClassName"] == "EvalWorker" and a["State"] == "ALIVE" and a.get("Pid")]
                if alive:
                    os.kill(alive[0]["Pid"], signal.SIGKILL)
                    killed.append(alive[0]["Pid"])
            time.sleep(0.2)

    ray.init(address=cluster.address)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = run_sweep(sweep)
    finally:
        stop.set()
        watcher.join()
        ray.shutdown()
        cluster.shutdown()

    assert summary["failed_trials"] == 0, summary["errors"]
    assert killed, "no evaluation actor was killed: the replacement path was not exercised"
    assert sum(p["replaced"] for p in summary["evaluation_pools"].values()) >= 1

    by_class: dict[str, set[str]] = {}
    for actor in actors_seen.values():
        by_class.setdefault(actor["ActorClassName"], set()).add(actor["Address"]["NodeID"])
    assert by_class["RayTrainWorker"] <= gpu_nodes and by_class["EvalWorker"] <= gpu_nodes
    assert by_class["EvalPool"] == {head}
    # Tune's actor for a function trainable (named after the function or Tune's wrapper): the trial drivers
    trial_drivers = [c for c in by_class if c in ("ImplicitFunc", "tune_trial")]
    assert trial_drivers and all(by_class[c] == {head} for c in trial_drivers), by_class

    # what the evaluation actors recorded beside their scores
    trials = grid_trials(sweep)
    records = {path: json.load(open(path)) for path in glob.glob(os.path.join(exp, "**", "worker.json"),
                                                                 recursive=True)}
    checkpoints = sweep.training.steps // sweep.training.checkpoint_every
    assert len(records) == len(trials) * checkpoints + len(sweep.grid.students)  # each base once, each checkpoint once
    assert {r["node_id"] for r in records.values()} <= gpu_nodes
    assert {r["engine_loads"] for r in records.values()} == {1}
    for student in sweep.grid.students:
        assert os.path.join(exp, "base", student, "worker.json") in records

    early = 0
    for trial in trials:
        steps = sorted(glob.glob(os.path.join(exp, "trials", trial["name"], "train", "ray_train", "step-*")))
        last_written = os.path.getmtime(os.path.join(steps[-1], "COMPLETE"))
        # when the pool began scoring the first checkpoint, not when it finished: with expert LoRA on 2 cores the
        # first score can land just after the last checkpoint, while its evaluation still ran beside training
        first_started = records[os.path.join(exp, "trials", trial["name"], "eval", os.path.basename(steps[0]),
                                             "worker.json")]["started"]
        early += first_started < last_written
    assert early >= 1, "no checkpoint's evaluation began before its trial's training finished"

    data = json.load(open(os.path.join(exp, "results.json")))
    assert len(data["trials"]) == len(trials) * checkpoints
    report = open(summary["report"]).read()
    assert report.count("| Base | — |") == len(sweep.grid.teachers) * len(sweep.grid.domains) * len(sweep.grid.students)
    for row in data["trials"]:
        assert 0.0 <= row["math500/accuracy"] <= 1.0 and row["math500/n"] + row["mbppplus/n"] > 0
