"""What a trial trains on does not depend on the order verified.jsonl was written in (Ray Data part-file names)."""

from __future__ import annotations

from distill_ray import experiment as ex
from distill_ray.stages.verify import training_examples


def _row(problem_id: str, sample_index: int, verdict: str = "pass", truncated: bool = False) -> dict:
    return {"problem_id": problem_id, "sample_index": sample_index, "prompt": f"p {problem_id}",
            "text": f"t {problem_id} {sample_index}", "verdict": verdict, "truncated": truncated}


def test_examples_come_sorted_by_problem_and_sample_whatever_the_file_order(tmp_path) -> None:
    rows = [_row("b", 1), _row("a", 1), _row("b", 0), _row("c", 0, verdict="fail"), _row("a", 0, truncated=True)]
    ids = {}
    for name, order in (("forward", rows), ("reversed", rows[::-1])):
        ex.write_jsonl(ex.verified_file(str(tmp_path / name), "t", "math"), order)
        ids[name] = [e["id"] for e in training_examples(str(tmp_path / name), "t", "math")]
    assert ids["forward"] == ids["reversed"] == ["a#1", "b#0", "b#1"]
    assert [e["id"] for e in training_examples(str(tmp_path / "forward"), "t", "math", "keep")][:2] == ["a#0", "a#1"]
