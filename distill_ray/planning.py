"""What a sweep would do and where it would run, without running anything: `distill-ray sweep S.yaml --dry-run`.

    from distill_ray.planning import plan_sweep
    plan = plan_sweep(load_sweep("sweeps/seed.yaml"))      # stages, trials, teacher requests/tokens/dollars, GPU-hours
    rows = placement(sweep, load_cluster("cluster.yaml"))  # per stage: what each actor asks, which node type hosts it

Every figure is an estimate from the constants below, stated as such in the plan's "assumptions". Placement matches
each actor's Ray resource request against each node type's resources (CPUs, GPUs and accelerator type per the
instance type, plus the cluster file's custom resources) and checks GPU memory: bf16 weights of the model per GPU
(over tensor_parallel for an evaluation engine, over the workers under ZeRO-3 for training) against
VLLM_GPU_MEMORY_UTILIZATION of one GPU of the instance type, and that max_workers nodes hold a whole train group.

Not guaranteed: costs or times within any factor (they are planning figures, not measurements); that a placement
that fits leaves room for activations or the KV cache (only weights are counted).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from distill_ray.benchmarks import plan_items
from distill_ray.config import ConfigError, StudentConfig, SweepConfig, TrainingConfig, trial_config

# Planning figures for --dry-run; estimates, stated as such in the plan's "assumptions".
ACTIVE_PARAMETERS = {"Qwen/Qwen3-30B-A3B-Base": 3.3e9, "Qwen/Qwen3-30B-A3B": 3.3e9,
                     "meta-llama/Llama-3.1-8B-Instruct": 8.0e9, "meta-llama/Llama-3.1-8B": 8.0e9}
PEAK_BF16_FLOPS = 989e12  # H100 SXM / H200 dense bf16
ASSUMED_MFU = 0.30
ASSUMED_DECODE_MFU = 0.05  # batched decoding is memory-bound
EVAL_TOKENS_PER_ITEM = 1000


def plan_sweep(sweep: SweepConfig) -> dict:
    """What a run would do, without running anything: stages, trials, requests, tokens, dollars, GPU-hours."""
    from distill_ray.sweep import grid_trials

    trials = grid_trials(sweep)
    teachers: dict[str, dict] = {}
    for name in sweep.grid.teachers:
        t = sweep.teachers[name]
        requests = 0
        for domain in sweep.grid.domains:
            requests += sweep.domains[domain].source.n * t.samples_per_problem
        est_in, est_out = 200, min(t.sampling.max_tokens, 2000)  # assumption: typical prompt and trace lengths
        teachers[name] = {
            "model": t.model, "requests": requests,
            "est_prompt_tokens": requests * est_in, "est_completion_tokens": requests * est_out,
            "est_cost_usd": round(requests * (est_in * t.price.input_per_mtok + est_out * t.price.output_per_mtok)
                                  / 1e6, 2),
            "max_cost_usd": t.max_cost_usd, "mode": t.mode,
        }
        # both modes' estimates, whichever the teacher uses: batch at the provider's batch price (typically half)
        teachers[name]["est_cost_usd_batch"] = round(teachers[name]["est_cost_usd"] * t.batch.price_factor, 2)
    per_trial = []
    for trial in trials:
        config = trial_config(sweep, trial["extra"])
        student = config.students[trial["student"]]
        training = config.training
        tokens = training.samples * min(training.max_length, 1000)
        gpus = student.num_workers * student.gpus_per_worker
        checkpoints = len(set(range(training.checkpoint_every, training.steps + 1, training.checkpoint_every))
                          | {training.steps})
        active = ACTIVE_PARAMETERS.get(student.model)
        gpu_hours = None
        if active and gpus:
            # LoRA: forward plus input-gradient backward over frozen weights = 4 x active params FLOPs per token
            train_s = 4 * active * tokens / (PEAK_BF16_FLOPS * ASSUMED_MFU)
            eval_tokens = (checkpoints + 1) * sum(plan_items(b.name, b.subset) for b in
                                                  config.evaluation.benchmarks) * EVAL_TOKENS_PER_ITEM
            eval_s = 2 * active * eval_tokens / (PEAK_BF16_FLOPS * ASSUMED_DECODE_MFU)
            gpu_hours = round(gpus * train_s / 3600 + eval_s / 3600, 1)
        per_trial.append({"trial": trial["name"], "steps": training.steps, "checkpoints": checkpoints,
                          "train_tokens_est": tokens, "gpus": gpus, "gpu_hours_est": gpu_hours})
    return {
        "experiment_dir": sweep.experiment_dir(),
        "stages": ["problems", "generate", "verify", "evaluate-base", "trials(train+evaluate)", "report"],
        "trials": len(trials), "teachers": teachers, "per_trial": per_trial,
        "evaluations_per_trial": len(sweep.evaluation.benchmarks),
        "assumptions": "teacher tokens: 200 prompt and min(max_tokens, 2000) completion per request; training: "
                       "min(max_length, 1000) tokens per example, 4 x active parameters FLOPs per token at "
                       f"{ASSUMED_MFU:.0%} of {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s per GPU; evaluation: "
                       f"{EVAL_TOKENS_PER_ITEM} tokens per item at {ASSUMED_DECODE_MFU:.0%} MFU; "
                       "GPU-hours only for students with known active parameter counts",
    }


# ---------------------------------------------------------------------------------------------------------- placement

# GPUs and per-GPU memory (nvidia-smi's MiB) of the instance types a cluster file may use; Ray advertises the CPUs,
# the GPUs and `accelerator_type:<name>` of each node by itself, custom resources come from the cluster file.
INSTANCE_TYPES: dict[str, dict[str, Any]] = {
    "m7i.8xlarge": {"cpus": 32, "gpus": 0, "gpu_mib": 0, "accelerator": None},
    "m7i.16xlarge": {"cpus": 64, "gpus": 0, "gpu_mib": 0, "accelerator": None},
    "p5.48xlarge": {"cpus": 192, "gpus": 8, "gpu_mib": 81559, "accelerator": "H100"},
    "p5e.48xlarge": {"cpus": 192, "gpus": 8, "gpu_mib": 143771, "accelerator": "H200"},
    "p4d.24xlarge": {"cpus": 96, "gpus": 8, "gpu_mib": 40960, "accelerator": "A100"},
    "p4de.24xlarge": {"cpus": 96, "gpus": 8, "gpu_mib": 81920, "accelerator": "A100"},
    "g6e.12xlarge": {"cpus": 48, "gpus": 4, "gpu_mib": 46068, "accelerator": "L40S"},
    "g6e.48xlarge": {"cpus": 192, "gpus": 8, "gpu_mib": 46068, "accelerator": "L40S"},
    "g5.12xlarge": {"cpus": 48, "gpus": 4, "gpu_mib": 23028, "accelerator": "A10G"},
}
# Total parameters (every expert counted: all of them sit in GPU memory), for bf16 weight sizes.
TOTAL_PARAMETERS = {"Qwen/Qwen3-30B-A3B-Base": 30.5e9, "Qwen/Qwen3-30B-A3B": 30.5e9,
                    "meta-llama/Llama-3.1-8B-Instruct": 8.03e9, "meta-llama/Llama-3.1-8B": 8.03e9,
                    "builtin:tiny-llama": 5e6, "builtin:tiny-qwen3-moe": 5e6}
VLLM_GPU_MEMORY_UTILIZATION = 0.9  # the fraction of a GPU the vLLM engine may take (backends.VLLMBackend default)
GIB = 1024 ** 3


class PlacementError(ValueError):
    """A student's train group or evaluation engine fits on no node type of the cluster file."""


def bf16_weights_gib(model: str) -> float | None:
    params = TOTAL_PARAMETERS.get(model)
    return None if params is None else 2 * params / GIB


def train_memory(student: StudentConfig, training: TrainingConfig) -> dict[str, Any] | None:
    """Per-GPU training memory of `student` (train.memory.estimate_train_memory), or None for a model whose shape
    is unknown here (a local folder without config.json): then no memory check is made, as for evaluation."""
    from distill_ray.train.memory import UnknownShapeError, estimate_train_memory

    try:
        return estimate_train_memory(student, training)
    except UnknownShapeError:
        return None


def load_cluster(path: str) -> dict[str, dict[str, Any]]:
    """Node types of a `ray up` cluster file: {name: {resources, max_workers, instance_type, gpu_mib, head}}."""
    if not os.path.isfile(path):
        raise ConfigError(path, "(file)", "cluster file not found")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    node_types = {}
    for name, spec in (data.get("available_node_types") or {}).items():
        instance = spec.get("node_config", {}).get("InstanceType", "")
        if instance not in INSTANCE_TYPES:
            raise ConfigError(path, f"available_node_types.{name}.node_config.InstanceType",
                              f"unknown instance type {instance!r}; known: {', '.join(INSTANCE_TYPES)}")
        known = INSTANCE_TYPES[instance]
        resources: dict[str, float] = {"CPU": known["cpus"], "GPU": known["gpus"]}
        if known["accelerator"]:
            resources[f"accelerator_type:{known['accelerator']}"] = 1.0
        resources.update(spec.get("resources") or {})
        head = name == data.get("head_node_type")
        node_types[name] = {"resources": resources, "instance_type": instance, "gpu_mib": known["gpu_mib"],
                            "accelerator": known["accelerator"],
                            "max_workers": 1 if head else int(spec.get("max_workers", data.get("max_workers", 1))),
                            "head": head}
    return node_types


def _asks(num_cpus: float, num_gpus: float = 0.0, resources: dict[str, float] | None = None,
          accelerator_type: str | None = None) -> dict[str, float]:
    asks = {"CPU": num_cpus, **({"GPU": num_gpus} if num_gpus else {}), **(resources or {})}
    if accelerator_type:
        asks[f"accelerator_type:{accelerator_type}"] = 0.001  # what Ray asks for accelerator_type=...
    return asks


def _why_not(asks: dict[str, float], node: dict[str, Any]) -> str | None:
    for key, amount in asks.items():
        if amount and node["resources"].get(key, 0.0) < amount:
            return f"needs {key}={amount:g}, has {node['resources'].get(key, 0.0):g}"
    return None


def placement(sweep: SweepConfig, cluster: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per stage, each kind of actor: what it asks Ray for, how many, and which node types could host it (with the
    reason for every node type that could not). Raises PlacementError naming the student and the node types when
    a student's train group or evaluation engine fits on none (every such student, not only the first)."""
    from distill_ray.evaluate.pool import worker_options

    rows: list[dict[str, Any]] = []
    unplaced: list[str] = []

    def add(stage: str, actor: str, count: int, asks: dict[str, float], gib_per_gpu: float | None = None,
            group: int = 1, on_driver_node: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {"stage": stage, "actor": actor, "count": count, "asks": asks}
        if gib_per_gpu is not None:
            row["gib_per_gpu"] = round(gib_per_gpu, 1)
        if cluster is not None and on_driver_node:  # pinned there (NodeAffinitySchedulingStrategy), never elsewhere
            row["node_types"] = [n for n, node in cluster.items() if node["head"]]
            row["rejected"] = {}
        elif cluster is not None:
            hosts, rejected = [], {}
            for name, node in cluster.items():
                reason = _why_not(asks, node)
                usable = node["gpu_mib"] * 1024 ** 2 / GIB * VLLM_GPU_MEMORY_UTILIZATION
                if reason is None and gib_per_gpu and asks.get("GPU") and gib_per_gpu > usable:
                    reason = (f"{gib_per_gpu:.1f} GiB per GPU > {usable:.1f} GiB usable of one "
                              f"{node['accelerator']} ({node['instance_type']})")
                per_node = min((node["resources"].get(k, 0.0) // v for k, v in asks.items() if v),
                               default=float("inf")) if not reason else 0
                if reason is None and per_node * node["max_workers"] < group:
                    reason = (f"group of {group} needs {group} slots, {node['max_workers']} node(s) x "
                              f"{per_node:g} = {per_node * node['max_workers']:g}")
                if reason:
                    rejected[name] = reason
                else:
                    hosts.append(name)
            row["node_types"], row["rejected"] = hosts, rejected
        rows.append(row)
        return row

    for name in sweep.grid.teachers:
        add("generate", f"teacher client ({name})", sweep.teachers[name].actors, _asks(0.0))
    add("verify", "Ray Data VerifyBatch (>= 5000 traces)", 1, _asks(2.0))
    trial = dict(sweep.trial_resources)
    from distill_ray.sweep import grid_trials

    add("trials", "Tune trial driver", sweep.max_concurrent_trials or len(grid_trials(sweep)), _asks(
        trial.pop("CPU", 0.0), trial.pop("GPU", 0.0), trial))
    for name in sweep.grid.students:
        student = sweep.students[name]
        memory = train_memory(student, sweep.training)
        row = add("train", f"Ray Train worker ({name}, ZeRO-{student.deepspeed_stage})", student.num_workers,
                  _asks(student.cpus_per_worker, student.gpus_per_worker, student.worker_resources),
                  memory["total_gib"] if memory and student.gpus_per_worker else None, group=student.num_workers)
        row["student"] = name
        _require_host(row, name, "train group", unplaced)
        options = worker_options(student)
        if sweep.evaluation.backend == "vllm" and not options["num_gpus"]:
            raise PlacementError(f"student {name}: evaluation.backend is vllm, which needs a GPU, but "
                                 f"students.{name}.evaluation.gpus is 0")
        weights = bf16_weights_gib(student.model)
        per_gpu = None if weights is None or not options["num_gpus"] else weights / student.evaluation.tensor_parallel
        row = add("evaluate", f"evaluation actor ({name}, tensor_parallel {student.evaluation.tensor_parallel})",
                  student.evaluation.actors, _asks(options["num_cpus"], options["num_gpus"],
                                                   options.get("resources"), options.get("accelerator_type")),
                  per_gpu)
        _require_host(row, name, "evaluation engine", unplaced)
        add("evaluate", f"evaluation dispatcher ({name}, driver's node)", 1, _asks(0.0),
            on_driver_node=True)
    if unplaced:
        raise PlacementError("; ".join(unplaced))
    return rows


def _require_host(row: dict[str, Any], student: str, what: str, unplaced: list[str]) -> None:
    if "node_types" in row and not row["node_types"]:
        reasons = "; ".join(f"{node}: {why}" for node, why in row["rejected"].items())
        unplaced.append(f"student {student}: its {what} fits on no node type ({reasons})")


def memory_table(sweep: SweepConfig, rows: list[dict[str, Any]],
                 cluster: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per student, the training-memory estimate by component (what --dry-run prints) beside the GPU memory of the
    first node type that can host its train group; returns (estimates, table lines)."""
    from distill_ray.train.memory import format_memory_rows

    estimates = {n: e for n in sweep.grid.students if (e := train_memory(sweep.students[n], sweep.training))}
    gpu_gib: dict[str, float] = {}
    for row in rows:
        if row.get("student") in estimates and cluster is not None and row.get("node_types"):
            gpu_gib[row["student"]] = cluster[row["node_types"][0]]["gpu_mib"] / 1024
    return estimates, format_memory_rows(estimates, gpu_gib)


def host_memory_plan(sweep: SweepConfig, rows: list[dict[str, Any]],
                     cluster: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Host memory per node type (train.host_memory) for the placement `rows`: (per node, table lines, one message
    per node type that cannot hold it)."""
    from distill_ray.sweep import grid_trials
    from distill_ray.train.host_memory import host_memory_problems, host_memory_table, node_host_memory

    drivers = sweep.max_concurrent_trials or len(grid_trials(sweep))
    nodes = node_host_memory(dict(sweep.students), rows, cluster, drivers)
    return nodes, host_memory_table(nodes), host_memory_problems(nodes)


def placement_table(rows: list[dict[str, Any]]) -> str:
    """The placement as a fixed-width text table (what --dry-run prints to stderr)."""
    lines = [f"{'stage':<9} {'actor':<58} {'n':>3}  {'asks':<44} {'GiB/GPU':>7}  node type"]
    for row in rows:
        asks = ", ".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in row["asks"].items())
        hosts = ", ".join(row["node_types"]) if "node_types" in row else "-"
        gib = f"{row['gib_per_gpu']:.1f}" if "gib_per_gpu" in row else ""
        lines.append(f"{row['stage']:<9} {row['actor']:<58} {row['count']:>3}  {asks:<44} {gib:>7}  {hosts}")
    return "\n".join(lines)
