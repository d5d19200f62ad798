"""What each evaluated response was (finish reason, token count, the EvalItem row schema), one definition of a format
failure for the sweep and both score commands, and adapter parity (a silently dropped LoRA fails its evaluation)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from distill_ray.config import BenchmarkConfig, EvaluationConfig, StudentConfig
from distill_ray.evaluate import evaluate_checkpoint, load_benchmark, score_responses, summarise
from distill_ray.evaluate.backends import TransformersBackend
from distill_ray.evaluate.parity import AdapterParityError, check_not_base
from distill_ray.records import EVAL_ITEM_FIELDS
from distill_ray.verify.verdict import FORMAT_FAILURE_REASONS

STUDENT = StudentConfig(model="builtin:tiny-llama")


def test_generate_with_info_reports_finish_reason_and_tokens(tools):
    backend = TransformersBackend(STUDENT, batch_size=4)
    messages = tools.mixed_messages(6, seed=3)
    ids = backend.generate_ids(backend.encode(messages), max_new_tokens=12)
    info = backend.generate_with_info(messages, max_new_tokens=12)
    assert [g.text for g in info] == backend.generate(messages, max_new_tokens=12)
    for tokens, g in zip(ids, info, strict=True):
        assert g.generated_tokens == len(tokens) <= 12
        assert g.finish_reason == ("stop" if tokens[-1] in backend.stop_ids else "length")
        assert g.finish_reason == "stop" or g.generated_tokens == 12


def test_responses_rows_carry_the_eval_item_schema(tmp_path):
    benchmarks = {"mini-math": load_benchmark(BenchmarkConfig(name="mini-math", subset=5))}
    evaluation = EvaluationConfig(benchmarks=[BenchmarkConfig(name="mini-math", subset=5)], max_new_tokens=6,
                                  batch_size=5)
    (score,) = evaluate_checkpoint(STUDENT, None, benchmarks, evaluation, step=0, samples=0, output_dir=str(tmp_path))
    rows = [json.loads(line) for line in open(os.path.join(tmp_path, "responses.jsonl"))]
    assert len(rows) == 5
    for row in rows:
        assert tuple(row) == EVAL_ITEM_FIELDS
        assert row["finish_reason"] in ("stop", "length") and 0 < row["generated_tokens"] <= 6
        assert row["plus_status"] is None and row["base_status"] == ("pass" if row["verdict"] == "pass" else "fail")
    assert score["length_capped"] == sum(r["finish_reason"] == "length" for r in rows)
    assert score["base_correct"] == score["correct"]


def test_one_definition_of_format_failure_for_the_sweep_and_score_math500(tmp_path):
    from distill_ray.verify.score_cli import score_main

    problems = load_benchmark(BenchmarkConfig(name="mini-math", subset=6))
    gold = [p["answer"] for p in problems]
    responses = [
        "<think>ok</think>\n\n\\boxed{%s}" % gold[0],             # right
        "<think>ok</think>\n\nIt is %s." % gold[1],                # no box
        "<think>ok</think>\n\n\\boxed{}",                          # empty box
        "<think>it is \\boxed{%s} and then" % gold[3],             # reasoning never closed
        "<think>ok</think>\n\n\\boxed{%s or 1}" % gold[4],         # a hedge: answered, wrongly
        "<think>ok</think>\n\n\\boxed{%s}" % (int(gold[5]) + 1),   # wrong
    ]
    items = score_responses(problems, responses)
    sweep = summarise("mini-math", items, step=0, samples=0)
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("".join(json.dumps({"unique_id": p["id"], "answer": p["answer"], "problem": p["prompt"]}) + "\n"
                               for p in problems))
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"unique_id": p["id"], "response": r}) + "\n"
                               for p, r in zip(problems, responses)))
    out = tmp_path / "o.json"
    assert score_main(["math500", "--samples", str(samples), "--dataset", str(dataset), "--output", str(out)]) == 0
    cli = json.loads(out.read_text())
    assert [i["reason"] for i in items] == [i["reason"] for i in cli["items"]]
    assert sweep["format_failures"] == cli["summary"]["format_failures"] == 3
    assert {"no_box", "empty_box", "no_answer", "no_code"} <= FORMAT_FAILURE_REASONS
    assert "multiple_candidates" not in FORMAT_FAILURE_REASONS


def _broken_copy(adapter: str, folder) -> str:
    """The adapter with every tensor renamed so PEFT no longer recognises it (it would then serve the base model)."""
    from safetensors.torch import load_file, save_file

    os.makedirs(folder, exist_ok=True)
    tensors = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    save_file({k.replace("lora_A", "lora_a_renamed"): v for k, v in tensors.items()},
              os.path.join(folder, "adapter_model.safetensors"))
    with open(os.path.join(adapter, "adapter_config.json")) as src, \
            open(os.path.join(folder, "adapter_config.json"), "w") as dst:
        dst.write(src.read())
    return str(folder)


def test_adapter_with_renamed_keys_is_rejected_naming_the_checkpoint(lora_adapter, tmp_path, tools):
    good = lora_adapter(STUDENT.model, 0)
    broken = _broken_copy(good, tmp_path / "step-000100")
    backend = TransformersBackend(STUDENT, batch_size=4)
    messages = tools.mixed_messages(3, seed=1)
    base = backend.generate(messages, max_new_tokens=8)
    with pytest.raises(AdapterParityError, match=r"step-000100.*unexpected key"):
        backend.load_adapter(broken)
    # the engine is left serving the exact base model, and a good adapter still loads
    assert backend.adapter_path is None and backend.generate(messages, max_new_tokens=8) == base
    assert backend.generate(messages, max_new_tokens=8, adapter_path=good) != base


def _zero_adapter(folder) -> str:
    """A correctly keyed LoRA whose B matrices are zero: it loads cleanly and changes nothing (a dropped update)."""
    from peft import LoraConfig, get_peft_model

    from distill_ray.train.models import load_base_model

    model = get_peft_model(load_base_model(STUDENT), LoraConfig(r=8, target_modules=["q_proj", "v_proj"],
                                                                task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.zero_()
    model.save_pretrained(str(folder))
    return str(folder)


def test_checkpoint_answering_like_the_base_model_fails_its_evaluation(lora_adapter, tmp_path):
    bench = BenchmarkConfig(name="mini-math", subset=8)
    benchmarks = {"mini-math": load_benchmark(bench)}
    evaluation = EvaluationConfig(benchmarks=[bench], max_new_tokens=8, batch_size=8)
    base_dir = tmp_path / "base"
    evaluate_checkpoint(STUDENT, None, benchmarks, evaluation, step=0, samples=0, output_dir=str(base_dir))
    base_file = str(base_dir / "responses.jsonl")
    dropped = _zero_adapter(tmp_path / "ckpt-step-000050")
    out = tmp_path / "eval-50"
    with pytest.raises(AdapterParityError, match=r"ckpt-step-000050.*100\.0% of 8 items"):
        evaluate_checkpoint(STUDENT, dropped, benchmarks, evaluation, step=50, samples=400, output_dir=str(out),
                            base_responses=base_file)
    assert not out.exists()  # nothing written for a failed evaluation
    trained = lora_adapter(STUDENT.model, 0)
    scores = evaluate_checkpoint(STUDENT, trained, benchmarks, evaluation, step=100, samples=800,
                                 output_dir=str(tmp_path / "eval-100"), base_responses=base_file)
    assert scores[0]["n"] == 8


def test_parity_threshold_on_rows():
    base = [{"benchmark": "b", "problem_id": str(i), "response": "r%d" % i} for i in range(100)]
    same = [dict(r) for r in base]
    with pytest.raises(AdapterParityError):
        check_not_base("ckpt", same, base)
    for r in same[:3]:
        r["response"] = "changed"
    assert check_not_base("ckpt", same, base) == pytest.approx(0.97)
    assert check_not_base("ckpt", same, "/nonexistent/responses.jsonl") == 0.0
