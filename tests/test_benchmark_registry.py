"""The benchmark registry is the one table of what a benchmark is: config validation, loading, judging and plans read
it, and adding a benchmark is one entry plus its loader."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill_ray import benchmarks as registry
from distill_ray.benchmarks import BENCHMARKS, Benchmark, display_name, domain_of, get_benchmark, plan_items
from distill_ray.builtin_problems import BENCHMARK_SPLITS
from distill_ray.config import BenchmarkConfig
from distill_ray.evaluate import load_benchmark, score_responses, summarise


def test_the_four_benchmarks():
    assert {n: (b.domain, b.display, b.judge, b.items) for n, b in BENCHMARKS.items()} == {
        "math500": ("math", "MATH-500", "math", 500),
        "mbppplus": ("code", "MBPP+", "evalplus", 378),
        "mini-math": ("math", "mini-math", "math", 100),
        "mini-code": ("code", "mini-code", "code", 100),
    }
    assert get_benchmark("mbppplus").base_display == "MBPP"
    assert BENCHMARK_SPLITS == {"math": "mini-math", "code": "mini-code"}
    assert (display_name("math500"), display_name("other"), domain_of("mini-code"), domain_of("other")) == (
        "MATH-500", "other", "code", None)
    assert (plan_items("math500"), plan_items("math500", 50), plan_items("mbppplus", 1000), plan_items("mini-math", 40)
            ) == (500, 50, 378, 40)
    for entry in BENCHMARKS.values():
        assert callable(entry.load_function())


def test_the_registry_imports_nothing_heavy():
    code = ("import sys, distill_ray.benchmarks; "
            "print(sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_validates_against_the_registry():
    assert BenchmarkConfig(name="mbppplus").domain == "code"
    with pytest.raises(ValueError, match="unknown benchmark 'gsm8k'; known: math500, mbppplus, mini-math, mini-code"):
        BenchmarkConfig(name="gsm8k")


def _tiny_gsm(path):
    rows = [json.loads(line) for line in open(path)]
    return [{"id": r["id"], "domain": "math", "prompt": r["question"], "answer": r["answer"], "tests": "",
             "source": str(path), "split": "tiny-gsm"} for r in rows]


def test_adding_a_benchmark_is_one_entry_plus_its_loader(tmp_path, monkeypatch):
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(5)))
    monkeypatch.setattr(sys.modules[__name__], "tiny_gsm", _tiny_gsm, raising=False)
    entry = Benchmark("tiny-gsm", "math", "Tiny GSM", f"{__name__}:tiny_gsm", "math", 5)
    monkeypatch.setitem(registry.BENCHMARKS, "tiny-gsm", entry)
    bench = BenchmarkConfig(name="tiny-gsm", path=str(data), subset=4)
    assert bench.domain == "math" and plan_items("tiny-gsm", 4) == 4
    problems = load_benchmark(bench)
    assert len(problems) == 4
    responses = ["<think>add</think>\n\n\\boxed{%s}" % p["answer"] for p in problems[:3]] + ["no box"]
    items = score_responses(problems, responses, benchmark="tiny-gsm")
    score = summarise("tiny-gsm", items, step=0, samples=0)
    assert (score["correct"], score["format_failures"], score["base_correct"]) == (3, 1, 3)
