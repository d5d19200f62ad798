"""The benchmark registry: what each evaluation benchmark is, in one table.

    from distill_ray.benchmarks import BENCHMARKS, get_benchmark, plan_items
    get_benchmark("mbppplus").display        # "MBPP+"
    plan_items("math500", subset=None)       # 500 items, for cost plans

Each entry names the benchmark (its config name), its domain, how the report shows it (and its base-only score, for
benchmarks with extra tests), the loader that yields its `Problem` rows, the judge that scores a response, and how many
items it has. Adding a benchmark (GSM8K, HumanEval+) is one entry here plus its loader; config validation, loading,
judging, plans and the report read this table. Loaders are named as "module:function" and imported on use, so this
module imports nothing heavy (no torch, no Ray) and config validation can use it.

Loader signatures: a file benchmark's loader is `fn(path: str | None) -> list[Problem]` (None: the pinned public
file), and the evaluation takes a seeded `subset` of its rows; a generated benchmark's loader is
`fn(n: int, seed: int) -> list[Problem]`, and `subset` (default `items`) says how many it generates.
Judges: "math" (the last-box grader), "code" (the sandboxed test-spec judge), "evalplus" (base and plus inputs with
evalplus's rules; the same judge as `distill-ray score mbppplus`).

Not guaranteed: that a loader's file matches `items` (the count is for plans; the loaded rows are what is scored).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Benchmark:
    name: str  # the config name (evaluation.benchmarks[].name) and the key in scores and reports
    domain: Literal["math", "code"]
    display: str  # column header in reports
    loader: str  # "module:function" (see the module docstring for the signatures)
    judge: Literal["math", "code", "evalplus"]
    items: int  # items in the full benchmark; for a generated one, how many it generates by default
    generated: bool = False  # items are generated (the built-in sets), not read from a file
    base_display: str | None = None  # report name of the base-tests-only score (MBPP for MBPP+); None: no plus tests
    short: str | None = None  # as the seed's summary headers name it ("MBPP+ at best MATH"); None: `display`

    def load_function(self) -> Callable[..., Any]:
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("math500", "math", "MATH-500", "distill_ray.problems.public_sets:load_math500", "math", 500,
                  short="MATH"),
        Benchmark("mbppplus", "code", "MBPP+", "distill_ray.problems.public_sets:load_mbppplus_evalplus", "evalplus",
                  378, base_display="MBPP", short="MBPP"),
        Benchmark("mini-math", "math", "mini-math", "distill_ray.builtin_problems:mini_math", "math", 100,
                  generated=True),
        Benchmark("mini-code", "code", "mini-code", "distill_ray.builtin_problems:mini_code", "code", 100,
                  generated=True),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The registry entry; KeyError naming the known benchmarks otherwise."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def display_name(name: str) -> str:
    """Report header of a benchmark (the name itself for one not in the registry)."""
    entry = BENCHMARKS.get(name)
    return entry.display if entry else name


def domain_of(name: str) -> str | None:
    entry = BENCHMARKS.get(name)
    return entry.domain if entry else None


def plan_items(name: str, subset: int | None = None) -> int:
    """Items one evaluation of the benchmark scores: the subset when set (at most the full count for a file)."""
    entry = get_benchmark(name)
    if subset is None:
        return entry.items
    return subset if entry.generated else min(subset, entry.items)
