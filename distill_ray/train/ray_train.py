"""Ray Train (V2 API) wrapper around the training core: a `TorchTrainer` with `student.num_workers` workers,
checkpoints persisted through `ray.train.report`, and `FailureConfig` restarts that resume from the last checkpoint.

    from distill_ray.train.ray_train import train_with_ray
    summary = train_with_ray(examples, student, training, "runs/demo")

Ray Train V2 is the default in Ray 2.60 (RAY_TRAIN_V2_ENABLED unset means enabled; setting it to 0 would select the
deprecated V1 path, which this module does not support). The same call works from inside a Ray Tune function trial:
the trial's function calls `train_with_ray` (or `train_student(use_ray=True)`), which starts its own Train
controller and worker group; pass `tune_callback=True` to forward each checkpoint's metrics to the trial through
`ray.tune.integration.ray_train.TuneReportCallback`. The trial itself should reserve almost nothing, because the
Train controller and workers ask the cluster for their own resources: `tune.with_resources(trial, {"cpu": 0.01})`
(Tune refuses an empty request; reserving whole CPUs for the trial would starve its workers on a small machine).
Checked on Ray 2.60: a Tune function trial running a 2-worker ZeRO-2 TorchTrainer needs no environment variable.

The examples are tokenised once on the caller's side into OUTPUT_DIR/dataset/tokens-<key>.arrow (data.py); workers
memory-map that file, and `train_loop_config` carries only its path.

Checkpoints land in OUTPUT_DIR/ray_train/step-NNNNNN/ (adapter/ from rank 0, state/ merged from every rank). When a
worker dies, Ray restarts the whole group (up to `training.max_failures` times); each worker then reads
`ray.train.get_checkpoint()` and the core resumes at that step, so the run ends at the same final step having
consumed the same examples. A new call with `resume=True` continues from the newest checkpoint in OUTPUT_DIR.

Not guaranteed: OUTPUT_DIR must be a filesystem path every node sees (local on one machine, or NFS); cloud URIs are
not supported here, because the summary and the adapter paths are read back from the checkpoint folders.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from typing import Any

RUN_NAME = "ray_train"


def _worker(config: dict) -> None:
    """The Ray Train worker: builds a Context from ray.train and runs the core. Reads only `config`."""
    import ray.train
    import ray.train.torch
    import torch

    from distill_ray.config import StudentConfig, TrainingConfig
    from distill_ray.train.core import Context, run_training

    if config.get("cache_root"):
        os.environ["DISTILL_RAY_CACHE"] = config["cache_root"]
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    student = StudentConfig.model_validate(config["student"])
    training = TrainingConfig.model_validate(config["training"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = torch.device("cpu") if student.simulate_gpus else ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    scratch = tempfile.mkdtemp(prefix=f"distill-ray-rank{rank}-")
    resume_dir = None
    checkpoint = ray.train.get_checkpoint()  # set after a FailureConfig restart of this run
    if checkpoint is not None:
        resume_dir = checkpoint.to_directory(os.path.join(scratch, "resume"))
    elif config.get("resume_from"):
        resume_dir = config["resume_from"]

    def save(step: int, folder: str, meta: dict) -> None:
        metrics = {k: v for k, v in meta.items() if k != "loss_curve"}  # the curve stays in meta.json
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=f"step-{step:06d}")
        shutil.rmtree(folder, ignore_errors=True)

    ctx = Context(rank=rank, world=world, device=str(device), resume_dir=resume_dir, save=save,
                  report=lambda metrics: None, scratch=scratch, fault=config.get("fault"))
    try:
        run_training(config["dataset"], student, training, ctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _latest_complete(root: str) -> str | None:
    from distill_ray.train.core import COMPLETE

    done = [d for d in glob.glob(os.path.join(root, "step-*")) if os.path.exists(os.path.join(d, COMPLETE))]
    return max(done, key=lambda d: int(os.path.basename(d).split("-")[1])) if done else None


def train_with_ray(examples: list[dict], student, training, output_dir: str, *, resume: bool = True,
                   fault: dict | None = None, tune_callback: bool = False, threads_per_worker: int | None = None,
                   callbacks: list | None = None) -> dict[str, Any]:
    """Run the core on a Ray Train worker group; returns the same summary as `train_local`."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from distill_ray.train.data import prepare_dataset
    from distill_ray.train.models import cache_root, resolve_model_path

    if student.model.startswith("builtin:"):
        resolve_model_path(student.model)  # build the cached tiny model once, before workers race to do it
    storage = os.path.abspath(output_dir)
    run_dir = os.path.join(storage, RUN_NAME)
    if not resume and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    # Ray Train V2 restores a run launched again with the same name and storage (its checkpoint list and
    # ray.train.get_checkpoint()); resume_from is the fallback when only our own step folders survived.
    resume_from = _latest_complete(run_dir) if resume else None
    use_gpu = student.gpus_per_worker > 0
    resources = {"CPU": student.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = student.gpus_per_worker
    resources.update(getattr(student, "worker_resources", {}))  # e.g. a node type's custom resource (cluster.yaml)
    callbacks = list(callbacks or [])  # ray.train.UserCallback objects, e.g. the sweep's checkpoint listener
    if tune_callback:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    # Tokenised once here, into one file every worker memory-maps: the examples never travel in the config, and
    # a node's workers share the file's pages instead of each holding the dataset as Python objects.
    dataset = prepare_dataset(examples, student, training.max_length, os.path.join(storage, "dataset"))
    config = {
        "dataset": dataset,
        "student": student.model_dump(),
        "training": training.model_dump(),
        "cache_root": cache_root(),
        "resume_from": resume_from,
        "fault": fault,
        "threads": threads_per_worker or max(1, int(student.cpus_per_worker)),
    }
    trainer = TorchTrainer(
        _worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu and not student.simulate_gpus else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=student.num_workers, use_gpu=use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=RUN_NAME, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=training.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
            callbacks=callbacks or None,
        ),
    )
    if resume_from and _step_of(resume_from) >= training.steps:
        return summary_from_checkpoints(run_dir, training.steps)  # already finished: nothing to run
    result = trainer.fit()
    if result.error:
        raise result.error
    return summary_from_checkpoints(run_dir, training.steps)


def _step_of(folder: str) -> int:
    return int(os.path.basename(folder).split("-")[1])


def summary_from_checkpoints(run_dir: str, steps: int) -> dict[str, Any]:
    """The train_student summary, read back from the checkpoint folders' meta.json (the newest is the final state).

    Reading storage rather than Ray's result metrics makes a resumed or already finished run report the same thing
    as an uninterrupted one.
    """
    from distill_ray.train.core import COMPLETE

    metas = []
    for folder in glob.glob(os.path.join(run_dir, "step-*")):
        if os.path.exists(os.path.join(folder, COMPLETE)) and _step_of(folder) <= steps:
            with open(os.path.join(folder, "state", "meta.json")) as handle:
                metas.append((folder, json.load(handle)))
    if not metas:
        raise RuntimeError(f"training finished without a checkpoint in {run_dir}")
    metas.sort(key=lambda item: item[1]["step"])
    final = metas[-1][1]
    return {
        "checkpoints": [{"step": m["step"], "samples": m["samples"], "path": os.path.join(folder, "adapter"),
                         "train_loss": m["loss"]} for folder, m in metas],
        "trainable_parameters": final["trainable_parameters"],
        "truncated_examples": final["truncated_examples"], "truncated_tokens": final["truncated_tokens"],
        "examples": final["examples"], "tokens": final["tokens"],
        "final_loss": final["loss"], "loss_curve": final["loss_curve"], "steps": final["step"],
        "examples_consumed": final["examples_consumed"], "data_digest": final["data_digest"],
    }


def persisted_checkpoints(storage: str) -> list[str]:
    """Complete Ray Train checkpoint folders of the run stored under `storage` (a trial's train/ folder), in step
    order."""
    from distill_ray.train.core import complete_checkpoints

    return complete_checkpoints(os.path.join(storage, RUN_NAME))
