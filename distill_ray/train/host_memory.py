"""Host (CPU) memory of a student's training, per rank and per node, by component: at model load and while training.

    from distill_ray.train.host_memory import estimate_load_host_memory, node_host_memory
    est = estimate_load_host_memory(sweep.students["qwen3-30b-a3b"])       # per rank, GiB by component
    rows = node_host_memory(sweep.students, placement_rows, load_cluster("cluster.yaml"), trial_drivers=8)

What a rank holds at load follows the load path of train.core.load_base_for_training at the pinned libraries
(transformers 5.16-5.19, DeepSpeed 0.19.8):
- ZeRO-3: every rank maps every checkpoint shard into one CPU state dict (safetensors tensors are views of the
  memory-mapped file: checkpoint_mapped, in every rank's resident set but one copy of page cache per node), builds
  the fused expert tensors of an MoE checkpoint stored per expert (fused_experts, private to the rank, alive until
  the load ends; conversion_transient: one layer's gate and up stacks before they are concatenated), and holds its
  partition of the model (on the CPU only when training on the CPU) plus one gathered layer while rank 0 copies the
  weights in;
- ZeRO-0/2: every rank maps the checkpoint and materialises the whole model in the compute dtype (model_on_host)
  before moving it to its device.
A node's load is its ranks' private memory plus one mapped checkpoint. While training a rank holds its runtime and,
on rank 0 at a checkpoint, the gathered adapter and its optimizer partition on their way to disk. runtime_gib is a
planning figure per rank (Python, torch, the CUDA/NCCL host side, DeepSpeed, the Ray worker), not a measurement;
the head's processes likewise.

Not guaranteed: the memory-mapped dataset's page cache is not counted (shared and reclaimable; ~0.3 GiB for the
seed). A fixed ~14 MiB per rank of load machinery is not counted either (measured on a 2-layer MoE). Evaluation
actors (vLLM) are not counted here. Checked on CPU against a measured load of a small MoE
with 2 ZeRO-3 workers (tests/train/test_host_memory.py states the tolerance); not measured on a GPU node.
"""

from __future__ import annotations

import os
from typing import Any

from distill_ray.files import read_json
from distill_ray.train.memory import GIB, model_shape, parameter_counts

# Memory of each instance type in GiB (AWS's published instance specifications), and the share a plan may use: the
# rest is the OS, the Ray raylet/object store's own processes and headroom.
INSTANCE_RAM_GIB = {
    "m7i.8xlarge": 128, "m7i.16xlarge": 256, "p5.48xlarge": 2048, "p5e.48xlarge": 2048, "p4d.24xlarge": 1152,
    "p4de.24xlarge": 1152, "g6e.12xlarge": 384, "g6e.48xlarge": 1536, "g5.12xlarge": 192,
}
USABLE_RAM_FRACTION = 0.95
RUNTIME_GIB_PER_RANK = 4.0  # planning figure: a GPU training process before the model (torch, CUDA, DeepSpeed, Ray)
HEAD_RUNTIME_GIB = 6.0  # planning figure: Ray head (GCS, dashboard, raylet) and the sweep driver
TRIAL_DRIVER_GIB = 1.0  # planning figure per concurrent Tune trial driver (a local sweep's driver peaked at 0.5)


def checkpoint_dtype_bytes(model: str) -> int:
    """Bytes per parameter of the checkpoint on disk: the seed's hub models are bf16, the built-ins are saved in fp32,
    a local folder says so in config.json (dtype / torch_dtype; bf16 when it does not)."""
    if model.startswith("builtin:"):
        return 4
    config = os.path.join(model, "config.json")
    if os.path.isfile(config):
        cfg = read_json(config)
        return 4 if str(cfg.get("dtype") or cfg.get("torch_dtype") or "bfloat16") == "float32" else 2
    return 2


def estimate_load_host_memory(student, *, device: str = "cuda", world: int | None = None) -> dict[str, Any]:
    """Per-rank host memory (GiB) while `student`'s base model loads for training, by component, `total_gib`, and
    `model_gib` (everything but the runtime: what a load adds to a running process's resident set), and
    `shared_per_node_gib` (the mapped checkpoint, one copy per node whatever the ranks). Raises UnknownShapeError
    (train.memory) for a model without a known shape."""
    s = model_shape(student.model)
    world = world or student.num_workers
    on_gpu = device.startswith("cuda")
    compute = 4 if student.dtype == "float32" or (student.dtype == "auto" and not on_gpu) else 2
    stored = checkpoint_dtype_bytes(student.model)
    base, _, layer = parameter_counts(s, student.lora)
    experts = s["layers"] * s["experts"] * 3 * s["hidden"] * s["expert_intermediate"]
    mapped = base * stored / GIB
    if student.deepspeed_stage == 3:
        components = {
            "checkpoint_mapped_gib": mapped,
            "fused_experts_gib": experts * stored / GIB,
            "conversion_transient_gib": (2 / 3) * experts / max(1, s["layers"]) * stored / GIB,
            "partition_gib": 0.0 if on_gpu else base * compute / world / GIB,
            "gathered_layer_gib": 0.0 if on_gpu else layer * compute / GIB,
        }
    else:
        components = {"checkpoint_mapped_gib": mapped, "model_on_host_gib": base * compute / GIB}
    model_gib = sum(components.values())
    components["runtime_gib"] = RUNTIME_GIB_PER_RANK if on_gpu else 0.0
    return {"model": student.model, "device": device, "world": world, "deepspeed_stage": student.deepspeed_stage,
            "checkpoint_bytes_per_parameter": stored, "components": components, "model_gib": model_gib,
            "total_gib": sum(components.values()), "shared_per_node_gib": mapped}


def estimate_training_host_memory(student, *, world: int | None = None) -> dict[str, Any]:
    """Per-rank host memory (GiB) while training on GPUs: the runtime, and on rank 0 at a checkpoint the adapter
    gathered to the CPU (compute dtype) and its fp32 master + Adam moments partition on their way to disk."""
    s = model_shape(student.model)
    world = world or student.num_workers
    _, trainable, _ = parameter_counts(s, student.lora)
    components = {"runtime_gib": RUNTIME_GIB_PER_RANK, "checkpoint_adapter_gib": trainable * 2 / GIB,
                  "checkpoint_optimizer_gib": trainable * 12 / world / GIB}
    return {"components": components, "total_gib": sum(components.values())}


def _ranks_per_node(asks: dict[str, float], node: dict[str, Any], workers: int) -> int:
    slots = min((node["resources"].get(k, 0.0) // v for k, v in asks.items() if v), default=float(workers))
    return int(max(1, min(workers, slots)))


def node_host_memory(students: dict[str, Any], rows: list[dict[str, Any]], cluster: dict[str, dict[str, Any]],
                     trial_drivers: int) -> list[dict[str, Any]]:
    """Per node type that hosts something: host memory at load and while training against its usable RAM.
    `students` maps names to student configs, `rows` are planning.placement's rows (a train group is planned on the
    first node type that can host it), `trial_drivers` the concurrent trial drivers on the head."""
    from distill_ray.train.memory import UnknownShapeError

    out: list[dict[str, Any]] = []
    for row in rows:
        name = row.get("student")
        if row.get("stage") != "train" or not name or not row.get("node_types"):
            continue
        student = students[name]
        node_type = row["node_types"][0]
        node = cluster[node_type]
        try:
            load = estimate_load_host_memory(student)
            train = estimate_training_host_memory(student)
        except UnknownShapeError:
            continue
        ranks = _ranks_per_node(row["asks"], node, student.num_workers)
        ram = INSTANCE_RAM_GIB[node["instance_type"]]
        at_load = ranks * (load["total_gib"] - load["shared_per_node_gib"]) + load["shared_per_node_gib"]
        # ranks other than 0 hold only their runtime while training; rank 0 adds the checkpoint's copies
        training = (ranks - 1) * RUNTIME_GIB_PER_RANK + train["total_gib"]
        out.append({"node_type": node_type, "instance_type": node["instance_type"], "what": f"{name} x {ranks} ranks",
                    "student": name, "ranks": ranks, "ram_gib": ram, "usable_gib": ram * USABLE_RAM_FRACTION,
                    "load_gib": at_load, "training_gib": training, "per_rank_load": load,
                    "per_rank_training": train})
    for node_type, node in cluster.items():
        if node["head"]:
            drivers = trial_drivers
            gib = HEAD_RUNTIME_GIB + drivers * TRIAL_DRIVER_GIB
            ram = INSTANCE_RAM_GIB[node["instance_type"]]
            out.append({"node_type": node_type, "instance_type": node["instance_type"],
                        "what": f"head + {drivers} trial drivers", "student": None, "ranks": 0, "ram_gib": ram,
                        "usable_gib": ram * USABLE_RAM_FRACTION, "load_gib": gib, "training_gib": gib})
    return out


def host_memory_problems(nodes: list[dict[str, Any]]) -> list[str]:
    """One message per node type whose planned host memory exceeds its usable RAM, naming student and node type."""
    problems = []
    for n in nodes:
        worst = max(n["load_gib"], n["training_gib"])
        if worst > n["usable_gib"]:
            when = "at model load" if n["load_gib"] >= n["training_gib"] else "while training"
            who = f"student {n['student']}" if n["student"] else "the head's processes"
            problems.append(f"{who}: {worst:.0f} GiB of host memory {when} on node type {n['node_type']} "
                            f"({n['what']}) > {n['usable_gib']:.0f} GiB usable of {n['ram_gib']} GiB "
                            f"({n['instance_type']})")
    return problems


def host_memory_table(nodes: list[dict[str, Any]]) -> list[str]:
    """Table lines: node type, what runs there, host GiB at load and while training, usable RAM; then per student the
    per-rank load by component."""
    lines = [f"{'node type':<17} {'instance':<13} {'what':<30} {'load':>7} {'train':>7} {'usable':>7} {'RAM':>6}"]
    for n in nodes:
        lines.append(f"{n['node_type']:<17} {n['instance_type']:<13} {n['what']:<30} {n['load_gib']:>7.0f} "
                     f"{n['training_gib']:>7.0f} {n['usable_gib']:>7.0f} {n['ram_gib']:>6}")
    for n in nodes:
        if n["student"]:
            parts = ", ".join(f"{k.removesuffix('_gib')} {v:.1f}" for k, v in n["per_rank_load"]["components"].items())
            lines.append(f"  {n['student']}: per rank at load {n['per_rank_load']['total_gib']:.1f} GiB ({parts}; "
                         "the mapped checkpoint is one copy per node)")
    return lines
