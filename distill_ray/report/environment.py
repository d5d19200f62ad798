"""The report's engine line per student: which engine and library versions scored its base model and checkpoints
(`environment` in each scores.json, evaluate.fingerprint), a flag when they were not all scored under one, and the
end-of-sweep base re-check (base_recheck.json: how many greedy answers equal the first scoring).

    lines = environment_lines(data, "tiny-llama")   # data: report.data.load_experiment(...)

Not guaranteed: scores written before fingerprints existed have none; they are counted as "unrecorded", not guessed.
"""

from __future__ import annotations

import json
from typing import Any


def describe(environment: dict[str, Any]) -> str:
    get = environment.get
    text = (f"{environment['engine']} (torch {get('torch')}, transformers {get('transformers')}, peft {get('peft')}), "
            f"{get('dtype')}, device {get('device')}")
    if environment.get("backend") == "vllm":
        text += (f", tensor parallel {environment.get('tensor_parallel')}, max_model_len "
                 f"{environment.get('max_model_len')}, max_lora_rank {environment.get('max_lora_rank')}")
    return text


def student_environments(data: dict[str, Any], student: str) -> dict[str, list[str]]:
    """Distinct fingerprints (as JSON) of `student`'s scores -> the models they scored ("base", "trial@step")."""
    scored: dict[str, list[str]] = {}
    models = [("base", data["base"].get(student, {}))]
    trials = {row["trial"] for row in data["rows"] if row["student"] == student}
    models += [(f"{trial}@{step}", scores) for (trial, step), scores in sorted(data["eval_scores"].items())
               if trial in trials]
    for label, scores in models:
        for score in scores.values():
            key = json.dumps(score.get("environment"), sort_keys=True)
            if label not in scored.setdefault(key, []):
                scored[key].append(label)
    return scored


def recheck_line(data: dict[str, Any], student: str) -> list[str]:
    recheck = (data.get("base_recheck") or {}).get(student)
    if not recheck:
        return []
    changed = recheck.get("environment") != recheck.get("first_environment")
    return [f"Base re-check at the end of the sweep: {recheck['identical']}/{recheck['items']} greedy answers equal "
            f"the first scoring (seeded subset, seed {recheck['seed']})"
            + (", on a different engine set-up than the first scoring." if changed else "."), ""]


def environment_lines(data: dict[str, Any], student: str) -> list[str]:
    scored = student_environments(data, student)
    if not scored:
        return recheck_line(data, student)
    if len(scored) == 1:
        (key,) = scored
        environment = json.loads(key)
        return [f"Scored with {describe(environment) if environment else 'an unrecorded engine'}.", "",
                *recheck_line(data, student)]
    lines = [f"**Engine drift:** this student's scores come from {len(scored)} different engine set-ups; "
             "differences between columns may be the engine's, not the training's.", ""]
    for key, labels in scored.items():
        environment = json.loads(key)
        shown = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
        lines.append(f"- {describe(environment) if environment else 'unrecorded'}: {shown}")
    return [*lines, "", *recheck_line(data, student)]
