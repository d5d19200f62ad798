"""The strict several-boxes rule is a training-data verifier option, off by default, set per domain in the sweep file;
and bad MBPP+ input files name the file, the line and the field."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from distill_ray.config import ConfigError, load_sweep
from distill_ray.problems.public_sets import load_mbppplus_evalplus
from distill_ray.problems.sources import ProblemSourceError
from distill_ray.verify import verify_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(ROOT, "sweeps", "smoke.yaml")
CORRECTED = "<think>work</think>\n\nSo \\boxed{10}. Wait, I made a slip: the answer is \\boxed{9}."


def test_strict_boxes_is_off_by_default_and_set_per_domain():
    assert load_sweep(SMOKE).domains["math"].verifier_options.strict_boxes is False
    sweep = load_sweep(SMOKE, ["domains.math.verifier_options.strict_boxes=true"])
    assert sweep.domains["math"].verifier_options.strict_boxes is True
    with pytest.raises(ConfigError, match=r"domains\.math\.verifier_options\.single_box"):
        load_sweep(SMOKE, ["domains.math.verifier_options.single_box=true"])


def test_verify_rows_applies_the_option(grader, pool):
    rows = [{"domain": "math", "text": CORRECTED, "answer": "9", "tests": ""}]
    assert verify_rows(rows, grader=grader, pool=pool)[0]["verdict"] == "pass"
    strict = verify_rows(rows, grader=grader, pool=pool, strict_boxes=True)[0]
    assert (strict["verdict"], strict["reason"]) == ("fail", "multiple_boxes")


def test_mbppplus_rows_without_plus_inputs_name_file_line_and_field(tmp_path):
    row = {"task_id": "Mbpp/1", "prompt": '"""\nf\n"""\n', "canonical_solution": "def f(x):\n    return x\n",
           "entry_point": "f", "base_input": [[1]], "plus_input": [[2]], "atol": 0}
    path = tmp_path / "MbppPlus.jsonl.gz"
    bad = {k: v for k, v in row.items() if k != "plus_input"}
    path.write_bytes(gzip.compress((json.dumps(row) + "\n" + json.dumps(bad) + "\n").encode()))
    with pytest.raises(ProblemSourceError, match=r"MbppPlus\.jsonl\.gz:2: missing field 'plus_input'"):
        load_mbppplus_evalplus(str(path))
    path.write_bytes(gzip.compress((json.dumps({**row, "base_input": "x"}) + "\n").encode()))
    with pytest.raises(ProblemSourceError, match=r":1: field 'base_input' must be a list"):
        load_mbppplus_evalplus(str(path))
