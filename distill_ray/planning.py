"""What a sweep would do and where it would run, without running anything: `distill-ray sweep S.yaml --dry-run`.

    from distill_ray.planning import plan_sweep
    plan = plan_sweep(load_sweep("sweeps/seed.yaml"))      # stages, trials, teacher requests/tokens/dollars, GPU-hours

Every figure is an estimate from the constants below, stated as such in the plan's "assumptions".

Not guaranteed: costs or times within any factor (they are planning figures, not measurements).
"""

from __future__ import annotations

from distill_ray.config import SweepConfig, trial_config

# Planning figures for --dry-run; estimates, stated as such in the plan's "assumptions".
ACTIVE_PARAMETERS = {"Qwen/Qwen3-30B-A3B-Base": 3.3e9, "Qwen/Qwen3-30B-A3B": 3.3e9,
                     "meta-llama/Llama-3.1-8B-Instruct": 8.0e9, "meta-llama/Llama-3.1-8B": 8.0e9}
PEAK_BF16_FLOPS = 989e12  # H100 SXM / H200 dense bf16
ASSUMED_MFU = 0.30
ASSUMED_DECODE_MFU = 0.05  # batched decoding is memory-bound
EVAL_ITEMS = {"math500": 500, "mbppplus": 378}
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
            "max_cost_usd": t.max_cost_usd,
        }
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
            eval_tokens = (checkpoints + 1) * sum(EVAL_ITEMS.get(b.name, b.subset or 100) for b in
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
