"""Packed rows against padded rows for the embedded default's training on CPU: `training.packing` true or false.

    python benchmarks/cpu_row_layout.py --experiment runs/local --teacher verbose --domain math
    python benchmarks/cpu_row_layout.py --experiment runs/smoke --steps 20 --reps 2

Trains the tiny student of an experiment (its sweep.json: student, LoRA, training settings) in one process
(train.train_local, the core the sweep's Ray Train workers run) on the verified training examples of one (teacher,
domain) of that experiment, the same `--steps` with `packing: true` (sequences packed into rows, position ids
restarting per example) and with `packing: false` (each micro-batch padded to its longest example, as a careful user
writes with transformers), alternating the two `--reps` times so that a machine's load falls on both alike. Both see
the same examples in the same order (the data digest is compared) and report their final loss, so a change of
layout that changed what is learnt would show. The last stdout line is JSON: seconds per run of each layout, the
median ratio, the final losses.

Not guaranteed: figures on a machine shared with other work (the JSON records the load average before and after);
GPU behaviour (where packing avoids attention over padding and wins; this is about CPU only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run_layout(examples: list[dict], student, training, packing: bool) -> dict:
    from distill_ray.train.core import train_local

    settings = training.model_validate({**training.model_dump(), "packing": packing})
    with tempfile.TemporaryDirectory(prefix="row-layout-") as folder:
        started = time.perf_counter()
        summary = train_local(examples, student, settings, folder, resume=False, device="cpu")
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "final_loss": summary["final_loss"], "digest": summary["data_digest"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", required=True, help="an experiment directory whose traces are verified")
    parser.add_argument("--teacher", default="verbose")
    parser.add_argument("--domain", default="math")
    parser.add_argument("--student", default=None, help="default: the grid's first student")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    import torch

    from distill_ray import experiment as ex
    from distill_ray.config import sweep_from_dict
    from distill_ray.stages.verify import training_examples

    sweep = sweep_from_dict(ex.read_json(ex.sweep_file(args.experiment)), ex.sweep_file(args.experiment))
    student = sweep.students[args.student or sweep.grid.students[0]]
    training = sweep.training.model_validate({**sweep.training.model_dump(),
                                              "samples": args.steps * sweep.training.global_batch,
                                              "checkpoint_every": args.steps})
    examples = training_examples(args.experiment, args.teacher, args.domain,
                                 sweep.teachers[args.teacher].truncation_policy)
    torch.set_num_threads(max(1, int(student.cpus_per_worker)))
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"packed": [], "padded": []}
    for _ in range(args.reps):
        for name, packing in (("packed", True), ("padded", False)):
            runs[name].append(run_layout(examples, student, training, packing))
            print(name, runs[name][-1], file=sys.stderr, flush=True)
    same_data = len({r["digest"] for rs in runs.values() for r in rs}) == 1
    ratios = [p["seconds"] / q["seconds"] for p, q in zip(runs["packed"], runs["padded"])]
    print(json.dumps({
        "experiment": os.path.abspath(args.experiment), "teacher": args.teacher, "domain": args.domain,
        "student": student.model, "steps": args.steps, "examples": len(examples),
        "global_batch": training.global_batch, "micro_batch": training.micro_batch, "max_length": training.max_length,
        "threads": torch.get_num_threads(), "same_data": same_data,
        "packed_s": [r["seconds"] for r in runs["packed"]], "padded_s": [r["seconds"] for r in runs["padded"]],
        "packed_over_padded_median": round(statistics.median(ratios), 3),
        "final_loss": {k: [round(r["final_loss"], 4) for r in v] for k, v in runs.items()},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
