"""A simulated multi-node cluster on 127.0.0.1: the node running a trial's training worker dies; the sweep completes."""

import glob
import json
import os
import threading
import time

import pytest

from distill_ray.config import load_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sweep_survives_the_loss_of_a_worker_node(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from distill_ray.sweep import run_sweep

    sweep = load_sweep(os.path.join(ROOT, "sweeps", "smoke.yaml"), [
        f"storage={tmp_path}", "grid.teachers=[concise]", "domains.math.source.n=120",
        "training.samples=960", "training.checkpoint_every=20",
        "students.tiny-llama.cpus_per_worker=1",
        # the trial driver may only run on the head (as on a real cluster, off the spot workers), so killing a
        # worker node takes a training worker, never the trial
        "trial_resources={CPU: 0.5, trial_driver: 1}",
        # the evaluation actor on a node type of its own (here: the head), as cluster.yaml gives evaluation its own
        # GPUs; left free to land on a worker, its quarter CPU would keep the restarted 1-CPU training worker out
        "students.tiny-llama.evaluation={cpus: 0.25, resources: {eval_node: 1}}",
        "evaluation.benchmarks=[{name: mini-math, subset: 8}]", "evaluation.max_new_tokens=24",
    ])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"trial_driver": 1,
                                                                                        "eval_node": 1}})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]  # two "spot" nodes; training fits on either
    killed: list[str] = []
    train_dir = os.path.join(sweep.experiment_dir(), "trials", "concise__tiny-llama__math", "train", "ray_train")

    def kill_the_training_node_after_a_checkpoint() -> None:
        import ray._private.state as gcs_state  # the GCS view; the state API would need the dashboard

        deadline = time.time() + 400
        while time.time() < deadline and not glob.glob(os.path.join(train_dir, "step-000020")):
            time.sleep(0.2)
        hosts = {actor["Address"]["NodeID"] for actor in gcs_state.actors().values()
                 if actor["ActorClassName"] == "RayTrainWorker" and actor["State"] == "ALIVE"}
        for node in workers:
            if node.node_id in hosts:
                cluster.remove_node(node, allow_graceful=False)
                killed.append(node.node_id)

    ray.init(address=cluster.address)
    watcher = threading.Thread(target=kill_the_training_node_after_a_checkpoint, daemon=True)
    watcher.start()
    try:
        summary = run_sweep(sweep)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no node hosting a training worker was killed: the test did not test anything"
    assert summary["failed_trials"] == 0, summary["errors"]
    rows = [json.loads(line) for line in open(os.path.join(summary["experiment_dir"], "trials",
                                                           "concise__tiny-llama__math", "results.jsonl"))]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert all(0.0 <= r["mini-math/accuracy"] <= 1.0 for r in rows)
