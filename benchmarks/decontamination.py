"""Decontamination recall, false drops and speed, on the real MATH-500 and MBPP+ files.

What it measures
  A labelled table built from every MATH-500 and MBPP+ item: verbatim copies, one-word edits, reordered clauses,
  changed numbers (new constants and one sentence in front, the classic "rephrased sample"), renamed variables
  (math: single-letter variables; code: the function name, translated); and fresh problems written from templates
  that share the benchmarks' common phrasing ("How many positive integers ...", "Write a python function to check
  whether ...") and share templates with each other, but are no benchmark item. Prints recall per kind and false
  drops of the fresh problems, for today's rules (problems/decontaminate.py, the sweep's default settings) and, side
  by side on the same table, the previous rule (one shared 13-word run, unmasked). Then times decontaminating a
  generated pool of `--pool` rows (default 100,000: fresh problems of both domains with planted copies) against
  MATH-500 + MBPP+, with peak memory (ru_maxrss) and the machine's load average, and, on the pool's first
  `--compare` rows, the indexed rules side by side with the similarity rule written plainly (Python sets against
  every benchmark segment).

How to run it
  python benchmarks/decontamination.py [--benchmarks ../shared/benchmarks] [--pool 100000] [--fresh 2000]
  The last stdout line is JSON.

What it does not measure
  Paraphrases by a language model, or translations of the problem text into another language: the rules are not
  built for them. The fresh problems are templated, so they measure the phrasing the templates share, not every
  phrasing a real pool has.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from distill_ray.problems.decontaminate import ContaminationIndex, DecontaminationSettings, normalise_tokens
from distill_ray.problems.public_sets import load_math500, load_mbppplus
from distill_ray.problems.schema import DEFAULT_CODE_INSTRUCTION, DEFAULT_MATH_INSTRUCTION
from distill_ray.records import Problem

KINDS = ("verbatim", "one_word", "reordered", "changed_numbers", "renamed_variables")
TARGETS = {"verbatim": 1.0, "one_word": 0.98, "changed_numbers": 0.90}
_REPLACEMENTS = ["certain", "specific", "particular", "chosen", "following", "exact", "total", "final", "overall"]
_PREFACES = [
    "Here is a variation of a known problem.",
    "Solve the following.",
    "Consider this question carefully.",
    "The following was asked in a practice round.",
]
_WORD_RE = re.compile(r"(?<![\\\w])[A-Za-z]{3,}(?!\w)")
_NUMBER_RE = re.compile(r"\d+")
_MATH_SPAN_RE = re.compile(r"\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)", re.S)
_LETTER_RE = re.compile(r"(?<![\\A-Za-z])([a-z])(?![A-Za-z])")  # a one-letter variable inside a math span


# ------------------------------------------------------------------------------------------------ the labelled table


def _text_parts(item: Problem) -> tuple[str, str]:
    """(problem text, visible assert) of a benchmark item, instruction removed."""
    instruction = DEFAULT_MATH_INSTRUCTION if item["domain"] == "math" else DEFAULT_CODE_INSTRUCTION
    text = item["prompt"].replace(instruction, "").strip()
    if item["domain"] != "code":
        return text, ""
    lines = text.splitlines()
    task = "\n".join(line for line in lines if not line.lstrip().startswith("assert "))
    asserts = "\n".join(line for line in lines if line.lstrip().startswith("assert "))
    return task.strip(), asserts


def _prose_words(text: str) -> list[re.Match[str]]:
    """Words of three letters or more outside math spans (an edit a reader would call a word edit)."""
    spans = [m.span() for m in _MATH_SPAN_RE.finditer(text)]
    return [m for m in _WORD_RE.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


def one_word_edit(text: str, rng: random.Random) -> str | None:
    words = _prose_words(text)
    if not words:
        return None
    m = rng.choice(words)
    choices = [w for w in _REPLACEMENTS if w != m.group().lower()]
    return text[: m.start()] + rng.choice(choices) + text[m.end() :]


def reorder_clauses(text: str) -> str | None:
    """The last sentence moved to the front, or the two halves of a comma-split sentence swapped."""
    sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z$])", text.strip())
    if len(sentences) >= 2:
        return " ".join([sentences[-1], *sentences[:-1]])
    head, sep, tail = text.partition(", ")
    if sep and len(head) > 10 and len(tail) > 10:
        return f"{tail.rstrip('.?!')}, {head[0].lower()}{head[1:]}."
    return None


def change_numbers(text: str, rng: random.Random) -> str | None:
    if not _NUMBER_RE.search(text):
        return None
    changed = _NUMBER_RE.sub(lambda m: str(int(m.group()) + rng.randint(1, 9)), text)
    return f"{rng.choice(_PREFACES)} {changed}"


def rename_variables(item: Problem, text: str, asserts: str) -> str | None:
    if item["domain"] == "code":
        name = re.search(r"assert\s+(?:\w+\()?\s*([A-Za-z_]\w*)\(", asserts)
        if not name:
            return None
        old = name.group(1)
        new = "funcion_" + "_".join(reversed(old.split("_")))  # a translated, reshuffled name
        return f"{text}\n{asserts.replace(old, new)}"
    spans = _MATH_SPAN_RE.findall(text)
    letters = sorted({m.group(1) for span in spans for m in _LETTER_RE.finditer(span)})
    if not letters:
        return None
    pool = [c for c in "pqrstuwkm" if c not in letters]
    mapping = dict(zip(letters, pool, strict=False))

    def swap(span: re.Match[str]) -> str:
        return _LETTER_RE.sub(lambda m: mapping.get(m.group(1), m.group(1)), span.group())

    return _MATH_SPAN_RE.sub(swap, text)


def _row(pid: str, domain: str, text: str) -> Problem:
    instruction = DEFAULT_MATH_INSTRUCTION if domain == "math" else DEFAULT_CODE_INSTRUCTION
    return Problem(id=pid, domain=domain, prompt=f"{text}\n\n{instruction}", answer="1", tests="", source="pool",
                   split="train")


def labelled_table(benchmarks: dict[str, list[Problem]], seed: int = 0) -> list[tuple[str, str, Problem]]:
    """(kind, benchmark item id or "", pool row) for every item and kind that applies to it."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, Problem]] = []
    for bench, items in benchmarks.items():
        for item in items:
            text, asserts = _text_parts(item)
            full = f"{text}\n{asserts}" if asserts else text
            variants = {
                "verbatim": full,
                "one_word": (lambda e: e and (f"{e}\n{asserts}" if asserts else e))(one_word_edit(text, rng)),
                "reordered": (lambda e: e and (f"{e}\n{asserts}" if asserts else e))(reorder_clauses(text)),
                "changed_numbers": change_numbers(full, rng),
                "renamed_variables": rename_variables(item, text, asserts),
            }
            for kind, variant in variants.items():
                if variant:
                    rows.append((kind, f"{bench}:{item['id']}", _row(f"{kind}:{item['id']}", item["domain"], variant)))
    return rows


# --------------------------------------------------------------------------------- fresh problems (common phrasing)

_MATH_OPENINGS = [
    "How many positive integers {q}",
    "What is the smallest positive integer {q}",
    "What is the largest possible value of {q}",
    "Find the number of {q}",
    "Compute the sum of all {q}",
    "In how many ways can {q}",
    "What is the probability that {q}",
    "Find the remainder when {q}",
]
_MATH_STORIES = [
    "a gardener can plant in {a} rows of {b} tulip bulbs if every row must hold a different number of red bulbs",
    "a courier needs so that {a} parcels and {b} envelopes fit into crates of equal weight",
    "a choir of {a} singers can be split into {b} sections whose sizes are consecutive odd numbers",
    "the librarian stacks on {a} shelves so that each shelf holds {b} more atlases than the one below it",
    "a tiled mosaic of {a} by {b} hexagonal tiles has when exactly one border tile is painted gold",
    "the ferry carries over {a} crossings if it takes {b} cyclists and twice as many hikers each time",
    "a beekeeper's {a} hives produce in total when each hive yields {b} jars more than the previous hive",
    "the robot visits on a {a} by {b} grid moving only north or east and never entering a flooded cell",
    "a baker divides {a} croissants among {b} trays so that no two trays hold the same number of croissants",
    "the weather station records in {a} days if the temperature rises by {b} degrees on every rainy day",
    # short ones: the common opening is most of the text
    "fit in a crate of {a} pears",
    "does a ferry need for {a} cyclists",
    "tulips fill {a} vases of {b}",
    "hikers reach {a} summits",
    "are left after {a} bees swarm",
]
_CODE_OPENINGS = [
    "Write a function to find the {q}",
    "Write a python function to check whether {q}",
    "Write a function to count the {q}",
    "Write a python function to find the {q}",
    "Write a function that returns the {q}",
]
_CODE_TASKS = [
    ("longest run of days a parking garage stays above {a} percent occupancy in a list of hourly readings",
     "garage_run"),
    ("names of hikers who reached at least {a} summits, given a list of (name, summits) tuples", "summit_hikers"),
    ("number of library loans overdue by more than {a} days in a list of (title, days) pairs", "overdue_loans"),
    ("thermostat setting that keeps {a} rooms closest to their target temperatures", "thermostat_setting"),
    ("checksum of a barcode string when every {a}th digit is tripled", "barcode_checksum"),
    ("total rainfall over the wettest {a} consecutive weeks of a season's weekly readings", "wettest_weeks"),
    ("ferry schedule slots that leave fewer than {a} minutes between departures", "tight_slots"),
    ("average score of chess players whose rating rose by {a} points or more", "rising_players"),
    ("seat labels in a theatre row that have at least {a} empty seats on both sides", "lonely_seats"),
    ("beehive ids whose honey yield beat the apiary median by {a} jars", "top_hives"),
    # short ones
    ("median ferry delay", "ferry_delay"),
    ("tallest tulip in {a} vases", "tallest_tulip"),
    ("a hiker's badge count is prime", "badge_prime"),
    ("busiest beehive", "busy_hive"),
]


def _openings(benchmarks: dict[str, list[Problem]] | None, domain: str) -> list[str]:
    """The first five words of every benchmark item of a domain: the phrasing fresh problems are made to share."""
    found = []
    for items in (benchmarks or {}).values():
        for item in items:
            words = _text_parts(item)[0].split()
            # Words only: an opening holding a formula would copy the item, not its phrasing.
            if item["domain"] == domain and len(words) > 6 and all(w.isalpha() for w in words[:5]):
                found.append(" ".join(words[:5]))
    return sorted(set(found))


def fresh_problems(count: int, seed: int = 0, benchmarks: dict[str, list[Problem]] | None = None) -> list[Problem]:
    """`count` problems of both domains that share openings with the benchmarks and templates with each other.

    With `benchmarks`, every fourth problem starts with the first five words of a real benchmark item ("Write a
    python function to check", "How many vertical asymptotes does") and goes on with a story of its own.
    """
    rng = random.Random(seed)
    borrowed = {d: _openings(benchmarks, d) for d in ("math", "code")}
    rows: list[Problem] = []
    for i in range(count):
        a, b = rng.randint(3, 90), rng.randint(2, 40)
        if i % 4 == 0 and borrowed["math"] and borrowed["code"]:
            if i % 8 == 0:
                text = f"{rng.choice(borrowed['math'])} {rng.choice(_MATH_STORIES).format(a=a, b=b)}?"
                rows.append(_row(f"fresh-math-{i}", "math", text))
            else:
                task, name = rng.choice(_CODE_TASKS)
                text = f"{rng.choice(borrowed['code'])} {task.format(a=a)}."
                rows.append(_row(f"fresh-code-{i}", "code", text))
        elif i % 2 == 0:
            text = rng.choice(_MATH_OPENINGS).format(q=rng.choice(_MATH_STORIES).format(a=a, b=b)) + "?"
            rows.append(_row(f"fresh-math-{i}", "math", text))
        else:
            task, name = rng.choice(_CODE_TASKS)
            text = rng.choice(_CODE_OPENINGS).format(q=task.format(a=a)) + "."
            text += f"\nassert {name}_{i % 7}({[rng.randint(0, 99) for _ in range(3)]}, {a}) == {rng.randint(0, 9)}"
            rows.append(_row(f"fresh-code-{i}", "code", text))
    return rows


# ------------------------------------------------------------------------------------------------------- measuring


def _old_rule(benchmarks: dict[str, list[Problem]]) -> Callable[[Problem], bool]:
    """The previous rule: one shared 13-word run of the unmasked words (items shorter than that must appear whole)."""
    n = 13
    grams: set[tuple[str, ...]] = set()
    short: set[tuple[str, ...]] = set()
    for items in benchmarks.values():
        for item in items:
            words = [w for w in normalise_tokens(_text_parts(item)[0], mask=False) if w[0].isalnum()]
            if len(words) < n:
                short.add(tuple(words))
            grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    lengths = {len(s) for s in short}

    def hit(row: Problem) -> bool:
        words = [w for w in normalise_tokens(row["prompt"], mask=False) if w[0].isalnum()]
        if any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1)):
            return True
        return any(tuple(words[i : i + k]) in short for k in lengths for i in range(len(words) - k + 1))

    return hit


def _shingle_set(words: Sequence[str], n: int) -> set[str]:
    text = " ".join(words)
    return {text[i : i + n] for i in range(max(1, len(text) - n + 1))}


def score_table(
    table: Sequence[tuple[str, str, Problem]], fresh: Sequence[Problem], is_hit: Callable[[Problem], bool]
) -> dict[str, object]:
    recall: dict[str, dict[str, float | int]] = {}
    for kind in KINDS:
        rows = [row for k, _, row in table if k == kind]
        caught = sum(1 for row in rows if is_hit(row))
        recall[kind] = {"rows": len(rows), "caught": caught, "recall": round(caught / len(rows), 4) if rows else 0.0}
    false = [row["id"] for row in fresh if is_hit(row)]
    return {"recall": recall, "fresh": len(fresh), "false_drops": len(false), "false_drop_ids": false[:20]}


def generated_pool(size: int, benchmarks: dict[str, list[Problem]], seed: int = 1) -> list[Problem]:
    """`size` rows: fresh problems, with one planted changed-numbers copy per 1,000 rows."""
    pool = fresh_problems(size, seed, benchmarks)
    rng = random.Random(seed)
    items = [item for items in benchmarks.values() for item in items]
    for k in range(0, size, 1000):
        item = rng.choice(items)
        text, asserts = _text_parts(item)
        planted = change_numbers(f"{text}\n{asserts}" if asserts else text, rng) or text
        pool[k] = _row(f"planted-{k}", item["domain"], planted)
    return pool


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks"
    parser.add_argument("--benchmarks", default=str(default))
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--fresh", type=int, default=2000)
    parser.add_argument("--compare", type=int, default=500, help="rows timed against the unindexed similarity")
    args = parser.parse_args(argv)
    folder = Path(args.benchmarks)
    benchmarks = {
        "math500": load_math500(str(folder / "math500.jsonl")),
        "mbppplus": load_mbppplus(str(folder / "MbppPlus-v0.2.0.jsonl.gz")),
    }
    settings = DecontaminationSettings()
    table = labelled_table(benchmarks)
    fresh = fresh_problems(args.fresh, seed=7, benchmarks=benchmarks)
    index = ContaminationIndex(benchmarks, settings)
    new = score_table(table, fresh, lambda row: bool(index.matches(row)))
    old = score_table(table, fresh, _old_rule(benchmarks))
    for name, result in (("rules", new), ("previous 13-gram rule", old)):
        print(f"{name}: " + ", ".join(f"{k} {v['caught']}/{v['rows']}" for k, v in result["recall"].items())
              + f"; false drops {result['false_drops']}/{result['fresh']}")

    # Distinct real problems that share phrasing: each benchmark item's own text against the other items. Some are
    # true template siblings (MATH-500's two rotation problems), most are different tasks in MBPP's stock phrasing.
    cross: dict[str, int] = {}
    for items in benchmarks.values():
        for item in items:
            for hit in index.matches(_row("self", item["domain"], _text_parts(item)[0])):
                if hit.item != item["id"]:
                    cross[hit.rule] = cross.get(hit.rule, 0) + 1
    print(f"benchmark items hitting another item: {cross}")

    pool = generated_pool(args.pool, benchmarks)
    load_before = os.getloadavg()
    cpu_started = time.process_time()
    started = time.perf_counter()
    index = ContaminationIndex(benchmarks, settings)
    built = time.perf_counter() - started
    dropped = sum(1 for row in pool if index.matches(row))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    load_after = os.getloadavg()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    planted = sum(1 for row in pool if row["id"].startswith("planted-"))
    # Side by side on the same first rows: the similarity rule as a careful user would write it without an index
    # (the row's character shingles against every segment's, as Python sets), and the index's whole rule set.
    sample = pool[: args.compare]
    segment_sets = [_shingle_set(seg.tokens, settings.char_ngram) for seg in index.segments]
    started = time.perf_counter()
    naive_hits = 0
    for row in sample:
        mine = _shingle_set(normalise_tokens(row["prompt"]), settings.char_ngram)
        naive_hits += any(len(mine & other) / len(mine | other) >= settings.similarity for other in segment_sets)
    naive_seconds = time.perf_counter() - started
    started = time.perf_counter()
    indexed_hits = sum(1 for row in sample if index.matches(row))
    indexed_seconds = time.perf_counter() - started
    print(f"first {len(sample)} rows: all rules with the index {indexed_seconds:.2f} s ({indexed_hits} hits); "
          f"similarity alone, sets against every segment {naive_seconds:.2f} s ({naive_hits} hits)")
    print(f"pool of {len(pool)} rows: {dropped} dropped ({planted} planted), {seconds:.1f} s "
          f"(index {built:.2f} s; {cpu_seconds:.1f} s of CPU), peak RSS {peak_mib:.0f} MiB, "
          f"load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    result = {
        "settings": settings.as_dict(),
        "recall": {k: v["recall"] for k, v in new["recall"].items()},
        "rows": {k: v["rows"] for k, v in new["recall"].items()},
        "false_drops": new["false_drops"],
        "fresh": new["fresh"],
        "previous_rule_recall": {k: v["recall"] for k, v in old["recall"].items()},
        "previous_rule_false_drops": old["false_drops"],
        "benchmark_cross_hits": cross,
        "pool_rows": len(pool),
        "pool_dropped": dropped,
        "pool_planted": planted,
        "pool_seconds": round(seconds, 2),
        "pool_cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mib": round(peak_mib),
        "compare_rows": len(sample),
        "compare_indexed_seconds": round(indexed_seconds, 2),
        "compare_naive_similarity_seconds": round(naive_seconds, 2),
        "load_avg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
