"""Built-in synthetic problem families for the embedded default: arithmetic word problems and tiny Python functions.

`make_problems(domain, split, n, seed)` draws problems from a family; the training split and the held-out benchmark
splits (`mini-math`, `mini-code`) never share a problem, because each split owns a disjoint part of the parameter space
(split assignment is a hash of the problem's parameters, not of the draw). `solve_prompt(prompt)` recovers the
parameters from a prompt's text, which is how the simulated teachers answer without any shared state with the
generator. `simulated_response(prompt, style, key)` writes a teacher response in either simulated style.

Nothing here is meant to be hard: the families are sized so that tiny random-initialised students can learn them on
two CPU cores within a minute, which is what makes the embedded default's "trained beats base" a real measurement.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass

from distill_ray.benchmarks import BENCHMARKS
from distill_ray.records import Problem

MATH_INSTRUCTION = "Put your final answer in \\boxed{}."
CODE_INSTRUCTION = "Write your final solution as a Python code block."
# The generated benchmark of each domain, from the benchmark registry (distill_ray/benchmarks.py).
BENCHMARK_SPLITS = {b.domain: b.name for b in BENCHMARKS.values() if b.generated}

_NAMES = [
    ("Ann", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Eva", "She"), ("Finn", "He"),
    ("Gina", "She"), ("Hugo", "He"), ("Iris", "She"), ("Jack", "He"), ("Kate", "She"), ("Leo", "He"),
]
_OBJECTS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards"]
_FUNCTION_NAMES = [
    "adjust", "convert", "scale_value", "shift", "transform", "apply_rule", "compute", "update_score",
    "step_value", "map_number", "next_value", "rescale", "bump", "offset_value", "modify", "evaluate_rule",
    "process", "change_value", "calc", "new_total",
]
# (operation, phrase in the prompt, Python expression, reasoning sentence)
_CODE_OPS = {
    "add": ("x plus {k}", "x + {k}", "The function adds {k} to x."),
    "sub": ("x minus {k}", "x - {k}", "The function subtracts {k} from x."),
    "mul": ("x times {k}", "x * {k}", "The function multiplies x by {k}."),
}
_APPLY = {"add": lambda x, k: x + k, "sub": lambda x, k: x - k, "mul": lambda x, k: x * k}


@dataclass(frozen=True)
class Solution:
    """What a correct teacher knows about a built-in problem."""

    domain: str
    steps: tuple[str, ...]  # the reasoning, one sentence each
    answer: str  # math: the integer as text; code: the Python source of the function
    wrong_answer: str  # a plausible mistake of the kind teachers make (off by a little, wrong operator)


def _split_of(params: tuple) -> str:
    """A fixed ~20% of parameter tuples belong to the benchmark split; the rest to training."""
    digest = hashlib.sha256(repr(params).encode()).digest()
    return "bench" if digest[0] < 52 else "train"


def _math_params(rng: random.Random) -> tuple:
    op = rng.choice(["add", "sub"])
    a = rng.randint(2, 9)
    b = rng.randint(1, 9) if op == "add" else rng.randint(1, a - 1)
    name = rng.randrange(len(_NAMES))
    obj = rng.randrange(len(_OBJECTS))
    return ("math", op, a, b, name, obj)


def _code_params(rng: random.Random) -> tuple:
    return ("code", rng.choice(sorted(_CODE_OPS)), rng.randint(1, 9), rng.randrange(len(_FUNCTION_NAMES)))


def _math_problem(params: tuple, split: str) -> Problem:
    _, op, a, b, name_i, obj_i = params
    name, _pronoun = _NAMES[name_i]
    obj = _OBJECTS[obj_i]
    if op == "add":
        text = f"{name} has {a} {obj}. {_NAMES[name_i][1]} gets {b} more. How many {obj} does {name} have now?"
        answer = a + b
    else:
        text = f"{name} has {a} {obj}. {_NAMES[name_i][1]} gives away {b}. How many {obj} does {name} have left?"
        answer = a - b
    return Problem(
        id=f"math-{op}-{a}-{b}-{name_i}-{obj_i}", domain="math", prompt=f"{text} {MATH_INSTRUCTION}",
        answer=str(answer), tests="", source="builtin:math", split=split,
    )


def _code_problem(params: tuple, split: str) -> Problem:
    _, op, k, fn_i = params
    fn = _FUNCTION_NAMES[fn_i]
    phrase, _, _ = _CODE_OPS[op]
    text = f"Write a Python function {fn}(x) that returns {phrase.format(k=k)}."
    inputs = [[v] for v in (0, 1, 4, 7, -3, 12)]
    outputs = [_APPLY[op](v[0], k) for v in inputs]
    tests = {"format": "call", "entry_point": fn, "inputs": inputs, "outputs": outputs, "atol": 0}
    return Problem(
        id=f"code-{op}-{k}-{fn_i}", domain="code", prompt=f"{text} {CODE_INSTRUCTION}", answer="",
        tests=json.dumps(tests), source="builtin:code", split=split,
    )


def make_problems(domain: str, split: str, n: int, seed: int) -> list[Problem]:
    """Draw `n` distinct problems of `domain` from `split` ("train" or the domain's benchmark name), seeded.

    Raises ValueError when the family has fewer than `n` distinct problems in that split.
    """
    if domain not in BENCHMARK_SPLITS:
        raise ValueError(f"builtin problems: unknown domain {domain!r} (expected 'math' or 'code')")
    wanted = "train" if split == "train" else "bench"
    if wanted == "bench" and split != BENCHMARK_SPLITS[domain]:
        raise ValueError(f"builtin problems: split {split!r} is not 'train' or {BENCHMARK_SPLITS[domain]!r}")
    draw = _math_params if domain == "math" else _code_params
    build = _math_problem if domain == "math" else _code_problem
    rng = random.Random(f"{seed}:{domain}:{split}")
    seen: set[tuple] = set()
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"builtin problems: only {len(problems)} distinct {domain} problems in split {split!r}")
        params = draw(rng)
        if params in seen or _split_of(params) != wanted:
            continue
        seen.add(params)
        problems.append(build(params, split))
    return problems


_MATH_RE = re.compile(
    r"^(?P<name>\w+) has (?P<a>\d+) (?P<obj>\w+)\. \w+ (?P<verb>gets|gives away) (?P<b>\d+)(?: more)?\."
)
_CODE_RE = re.compile(r"^Write a Python function (?P<fn>\w+)\(x\) that returns x (?P<op>plus|minus|times) (?P<k>\d+)\.")
_CODE_WORDS = {"plus": "add", "minus": "sub", "times": "mul"}


def mini_math(n: int, seed: int) -> list[Problem]:
    """The mini-math benchmark (the registry's loader): `n` held-out arithmetic problems."""
    return make_problems("math", "mini-math", n, seed)


def mini_code(n: int, seed: int) -> list[Problem]:
    """The mini-code benchmark (the registry's loader): `n` held-out function problems."""
    return make_problems("code", "mini-code", n, seed)


def solve_prompt(prompt: str) -> Solution | None:
    """Solve a built-in problem from its prompt text alone; None for a prompt no family wrote."""
    m = _MATH_RE.match(prompt)
    if m:
        a, b = int(m["a"]), int(m["b"])
        add = m["verb"] == "gets"
        result = a + b if add else a - b
        sentence = f"{m['name']} has {a} {m['obj']}."
        step = f"{a} + {b} = {result}." if add else f"{a} - {b} = {result}."
        wrong = result + (1 if (a * 7 + b) % 2 else -1)
        return Solution("math", (sentence, step), str(result), str(wrong))
    m = _CODE_RE.match(prompt)
    if m:
        op, k, fn = _CODE_WORDS[m["op"]], int(m["k"]), m["fn"]
        _, expr, sentence = _CODE_OPS[op]
        source = f"def {fn}(x):\n    return {expr.format(k=k)}\n"
        wrong_op = {"add": "sub", "sub": "add", "mul": "add"}[op]
        wrong = f"def {fn}(x):\n    return {_CODE_OPS[wrong_op][1].format(k=k)}\n"
        return Solution("code", (sentence.format(k=k),), source, wrong)
    return None


def render_final(solution: Solution, answer: str) -> str:
    """The part after the reasoning, in the format the verifiers expect."""
    if solution.domain == "math":
        return f"The answer is \\boxed{{{answer}}}."
    return f"```python\n{answer}```"


_VERBOSE_OPENERS = [
    "Okay, let me read the problem carefully and make sure I understand what is being asked.",
    "Let me restate the problem in my own words before doing anything else.",
    "First, I want to identify every quantity mentioned and what the question wants.",
]
_VERBOSE_CHECKS = [
    "Wait, let me double-check that step to be sure I did not make an arithmetic slip.",
    "Hmm, let me reconsider whether I read the problem correctly.",
    "Let me verify this once more by going through the reasoning again from the start.",
    "Actually, I should be careful here, because small mistakes are easy to make.",
]


def simulated_response(prompt: str, style: str, correct_rate: float, key: str) -> tuple[str, str] | None:
    """A simulated teacher's (reasoning, content) for a built-in prompt; None when the prompt is not built-in.

    `style` is "concise" (one or two sentences of reasoning) or "verbose" (the same reasoning restated and re-checked
    several times, so traces run several times longer, some past a small training max_length). Whether this answer
    is right is drawn from `key` (the request's content key and sample index), so the same request always gets the
    same answer: a retried or re-sent request cannot change a verdict.
    """
    solution = solve_prompt(prompt)
    if solution is None:
        return None
    rng = random.Random(hashlib.sha256(f"{style}:{key}".encode()).hexdigest())
    answer = solution.answer if rng.random() < correct_rate else solution.wrong_answer
    if style == "concise":
        reasoning = " ".join(solution.steps)
    elif style == "verbose":
        # Three to six times the concise reasoning; the embedded default's max_length cuts the longest third, as a
        # 4096-token limit cut the seed's longest R1 traces.
        parts = [rng.choice(_VERBOSE_OPENERS)]
        for _ in range(rng.randint(1, 3)):
            parts.append(rng.choice(_VERBOSE_CHECKS))
            parts.extend(solution.steps)
        parts.append("I am fairly confident in this result now.")
        reasoning = " ".join(parts)
    else:
        raise ValueError(f"unknown simulated teacher style {style!r}")
    return reasoning, render_final(solution, answer)


def mixed_length_messages(n: int, seed: int, max_traces: int = 3) -> list[str]:
    """User messages of very different lengths, for generation throughput and batching checks: built-in problems,
    every third one after one to `max_traces` verbose traces (hundreds of tokens), shuffled so that prompt order is
    not length order."""
    rng = random.Random(seed)
    problems = make_problems("math", "train", n - n // 2, seed) + make_problems("code", "train", n // 2, seed)
    messages = []
    for i, problem in enumerate(problems):
        if i % 3 == 0:
            traces = [simulated_response(problem["prompt"], "verbose", 1.0, f"{problem['id']}:{k}")[0]
                      for k in range(rng.randint(1, max_traces))]
            messages.append(f"{problem['prompt']}\n\nA previous attempt reasoned:\n" + "\n".join(traces))
        else:
            messages.append(problem["prompt"])
    rng.shuffle(messages)
    return messages
