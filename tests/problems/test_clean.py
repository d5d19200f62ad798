"""Cleaning: duplicates, near-duplicates, decontamination against benchmark items, verifiability drops, the report."""

from __future__ import annotations

import json

from distill_ray.problems.clean import DROP_REASONS, MinHashIndex, clean_problems, prepare_problems, tokens
from distill_ray.problems.decontaminate import DecontaminationSettings
from distill_ray.problems.public_sets import load_math500, load_mbppplus
from distill_ray.problems.schema import (
    DEFAULT_CODE_INSTRUCTION,
    DEFAULT_MATH_INSTRUCTION,
    SEED_CODE_SOURCE,
    SEED_MATH_SOURCE,
    ProblemSourceConfig,
)
from distill_ray.records import Problem


def math(pid: str, text: str, answer: str = "1", source: str = "pool.jsonl", split: str = "train") -> Problem:
    return Problem(
        id=pid,
        domain="math",
        prompt=f"{text}\n\n{DEFAULT_MATH_INSTRUCTION}",
        answer=answer,
        tests="",
        source=source,
        split=split,
    )


def code(pid: str, text: str, tests: dict, source: str = "edu.jsonl") -> Problem:
    return Problem(
        id=pid,
        domain="code",
        prompt=f"{text}\n\n{DEFAULT_CODE_INSTRUCTION}",
        answer="",
        tests=json.dumps(tests),
        source=source,
        split="train",
    )


BENCH_TEXT = (
    "Let $f(x) = 3x^2 - 5$ and let $g$ be the inverse of $f$ on the positive reals. "
    "Find the value of $g(43)$ given that the answer is a positive integer."
)
BENCHMARKS = {
    "math500": [math("test/algebra/77.json", BENCH_TEXT, "4", source="math500.jsonl", split="math500")],
    "mbppplus": [
        code(
            "Mbpp/2",
            "Write a function to find the shared elements from the given two lists.\n"
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            {"format": "assert", "entry_point": "similar_elements", "setup": "", "asserts": ["assert 1"]},
        )
    ],
}


def distinct_math(count: int, start: int = 0) -> list[Problem]:
    return [
        math(
            f"p{i}",
            f"A bakery sells {i + 3} loaves on Monday and {2 * i + 7} loaves on Tuesday. How many loaves in all?",
            str(3 * i + 10),
        )
        for i in range(start, start + count)
    ]


def test_copies_of_benchmark_items_are_dropped_and_listed_by_item(tmp_path):
    spaced = "  LET  $F(X) = 3X^2 - 5$\tand let $G$ be the INVERSE of $f$ on the positive\n\nreals.  " + BENCH_TEXT[80:]
    pool = distinct_math(3) + [
        math("copy", BENCH_TEXT),  # a paraphrase-free copy
        math("respaced", spaced),  # whitespace and case changed
        math("embedded", "Warm-up first. " + BENCH_TEXT + " Then double it."),
        code("mbpp-copy", "Write a function to find the shared elements from the given two lists.", {}),
        code("mbpp-recased", "write a FUNCTION to find the shared elements  from the given two lists", {}),
    ]
    report = tmp_path / "report" / "problems_math.json"
    kept, summary = clean_problems(pool, BENCHMARKS, report_path=str(report), check_answers=False)
    assert [p["id"] for p in kept] == ["p0", "p1", "p2"]
    assert summary["rows_read"] == 8 and summary["kept"] == 3
    assert summary["dropped"]["contaminated"] == 5 and summary["dropped"]["duplicate"] == 0
    by_item = summary["contamination"]["by_item"]
    rows = {bench: {item: [m["row"] for m in hits] for item, hits in items.items()} for bench, items in by_item.items()}
    assert rows["math500"] == {"test/algebra/77.json": ["copy", "respaced", "embedded"]}
    assert rows["mbppplus"] == {"Mbpp/2": ["mbpp-copy", "mbpp-recased"]}
    assert all(m["rule"] in ("ngram", "edit", "similarity") and 0 < m["score"] <= 1
               for items in by_item.values() for hits in items.values() for m in hits)
    assert summary["contamination"]["items_hit"] == {"math500": 1, "mbppplus": 1}
    assert summary["contamination"]["rows_dropped"] == {"math500": 3, "mbppplus": 2}
    assert summary["contamination"]["settings"]["ngram"] == 8
    written = json.loads(report.read_text())
    assert written["contamination"]["by_item"] == by_item
    assert {d["id"]: d["reason"] for d in written["drops"]}["respaced"] == "contaminated"


def test_shared_boilerplate_is_not_contamination():
    # 13 words in common with the benchmark item, but 6 of them are the appended instruction: not a copy.
    bench = {"math500": [math("b1", "A circle has area 9 pi. Then what is the value of x?", split="math500")]}
    pool = [math("t1", "The line meets the parabola twice. Then what is the value of x?")]
    assert len(tokens(pool[0]["prompt"], ())) - len(tokens(pool[0]["prompt"])) == 6
    # Half of the item's 8-grams are shared once the instruction counts; a coverage threshold of 0.5 shows it.
    half = DecontaminationSettings(ngram_coverage=0.5)
    kept, summary = clean_problems(pool, bench, check_answers=False, decontamination=half)
    assert [p["id"] for p in kept] == ["t1"] and summary["dropped"]["contaminated"] == 0
    # Without removing the instruction the same pair matches.
    kept, summary = clean_problems(pool, bench, check_answers=False, ignore_phrases=(), decontamination=half)
    assert summary["dropped"]["contaminated"] == 1


def test_exact_duplicates_after_normalisation():
    base = distinct_math(4)
    pool = base + [
        math("dup-exact", base[1]["prompt"].split("\n\n")[0]),
        math("dup-spaced", "  a BAKERY sells 3 loaves on monday and 7 loaves   on TUESDAY.\nHow many loaves in all ? "),
    ]
    kept, summary = clean_problems(pool, {}, check_answers=False)
    assert [p["id"] for p in kept] == ["p0", "p1", "p2", "p3"]
    assert summary["dropped"]["duplicate"] == 2
    drops = {d["id"]: d for d in summary["drops"]}
    assert drops["dup-exact"]["of"] == "p1" and drops["dup-spaced"]["of"] == "p0"


def test_near_duplicates_but_not_problems_that_differ_in_substance():
    words = [f"w{i % 37}x{i}" for i in range(150)]
    long_text = " ".join(words)
    one_word_changed = " ".join(words[:75] + ["changed"] + words[76:])
    pool = [
        math("long", long_text),
        math("long-edit", one_word_changed),  # Jaccard of 5-shingles: 141/151 = 0.93
        *distinct_math(2),  # short problems differing in two numbers: far below the threshold
    ]
    kept, summary = clean_problems(pool, {}, check_answers=False)
    assert [p["id"] for p in kept] == ["long", "p0", "p1"]
    (drop,) = summary["drops"]
    assert drop["id"] == "long-edit" and drop["reason"] == "near_duplicate" and drop["of"] == "long"
    assert drop["similarity"] >= 0.85


def test_minhash_estimates_jaccard():
    index = MinHashIndex(0.5, num_perm=128)
    a = [f"t{i}" for i in range(200)]
    b = a[:100] + [f"u{i}" for i in range(100)]  # 96 shared 5-shingles of 196 + 196 - 96 = 296: J = 0.324
    estimate = float((index.signature(a) == index.signature(b)).mean())
    assert abs(estimate - 96 / 296) < 0.12
    # At the default threshold 0.8 with 64 permutations: 16 bands of 4 rows, S-curve midpoint (1/16)^(1/4) = 0.5.
    assert MinHashIndex(0.8).rows == 4


def test_unparseable_answers_and_failing_references_are_dropped_and_counted(fake_checker):
    good = {"format": "assert", "entry_point": "inc", "setup": "", "asserts": ["assert inc(1) == 2"]}
    pool = [
        math("m-ok", "Compute six times seven.", "42"),
        math("m-bad", "Compute one half.", "\\frac{1}{"),
        code("c-ok", "Write inc(x) returning x plus one.", good),
        code("c-bad", "Write inc(x) returning x plus one, again.", good),
        code("c-noref", "Write inc(x) that returns its argument plus one.", good),  # no reference: kept
    ]
    references = {"c-ok": "def inc(x):\n    return x + 1\n", "c-bad": "def inc(x):\n    return x + 2\n"}
    kept, summary = clean_problems(pool, {}, references=references, reference_checker=fake_checker)
    assert [p["id"] for p in kept] == ["m-ok", "c-ok", "c-noref"]
    assert summary["dropped"]["unparseable_answer"] == 1 and summary["dropped"]["failing_reference"] == 1
    assert summary["settings"]["reference_check"] is True


def test_sandbox_errors_are_retried_and_never_counted_as_failures():
    calls: dict[str, int] = {}

    def flaky(response, tests_json):
        name = "always" if "always" in response else "once"
        calls[name] = calls.get(name, 0) + 1
        ok = name == "once" and calls[name] > 1
        return type("V", (), {"verdict": "pass" if ok else "error"})()

    spec = {"format": "assert", "entry_point": "f", "setup": "", "asserts": ["assert f() == 1"]}
    pool = [code("a", "Task one about lists.", spec), code("b", "Task two about strings.", spec)]
    refs = {"a": "# once\ndef f(): return 1", "b": "# always\ndef f(): return 1"}
    kept, summary = clean_problems(pool, {}, references=refs, reference_checker=flaky)
    assert [p["id"] for p in kept] == ["a"]
    assert summary["dropped"]["reference_error"] == 1 and summary["dropped"]["failing_reference"] == 0
    assert calls == {"once": 2, "always": 3}  # one retry succeeded; the other gave up after 2 retries


def test_n_keeps_the_first_survivors_and_marks_the_rest_unused():
    pool = distinct_math(6)
    pool.insert(1, math("dup", pool[0]["prompt"].split("\n\n")[0]))
    pool.append(math("late-dup", pool[0]["prompt"].split("\n\n")[0]))
    kept, summary = clean_problems(pool, {}, n=3, check_answers=False)
    assert [p["id"] for p in kept] == ["p0", "p1", "p2"]
    assert summary["kept"] == 3 and summary["unused"] == 4 and summary["dropped"]["duplicate"] == 1
    assert summary["requested"] == 3 and summary["short_by"] == 0
    for chunk in (1, 2, 5):  # the scan stops early in chunks; the outcome must not depend on their size
        _, other = clean_problems(pool, {}, n=3, check_answers=False, chunk=chunk)
        assert {k: v for k, v in other.items() if k != "seconds"} == {
            k: v for k, v in summary.items() if k != "seconds"
        }
    kept, summary = clean_problems(pool, {}, n=10, check_answers=False)
    assert len(kept) == 6 and summary["short_by"] == 4 and summary["dropped"]["duplicate"] == 2


def test_summary_is_per_source():
    pool = distinct_math(3) + [
        math("s2-0", "A different source asks for the sum of the first ten odd numbers.", source="s2")
    ]
    pool.append(math("s2-dup", pool[0]["prompt"].split("\n\n")[0], source="s2"))
    _, summary = clean_problems(pool, {}, check_answers=False)
    assert summary["by_source"]["pool.jsonl"] == {
        "rows_read": 3,
        "kept": 3,
        "unused": 0,
        "dropped": dict.fromkeys(DROP_REASONS, 0),
    }
    assert summary["by_source"]["s2"]["rows_read"] == 2 and summary["by_source"]["s2"]["dropped"]["duplicate"] == 1


def test_prepare_problems_keeps_exactly_n_from_a_dirty_source(tmp_path, schemas, fake_checker):
    rows = schemas.numina_rows(24)
    rows.append(dict(rows[3]))  # an exact duplicate
    rows.append(schemas.numina_row(BENCH_TEXT.upper(), "4"))  # a contaminated row
    rows.append(schemas.numina_row("Find x when the value is undefined.", "\\frac{1}{"))  # unparseable
    path = schemas.write_jsonl(tmp_path / "numina.jsonl", rows)
    data = SEED_MATH_SOURCE.model_dump(by_alias=True, exclude={"dataset", "revision", "streaming"})
    source = ProblemSourceConfig.model_validate(
        {**data, "kind": "jsonl", "path": str(path), "n": 20, "oversample": 1.5}
    )
    report = tmp_path / "problems_math.json"
    kept, summary = prepare_problems(source, "math", BENCHMARKS, report_path=str(report))
    assert len(kept) == 20 and len({p["id"] for p in kept}) == 20
    entry = summary["sources"]["'numinamath-1.5'"]
    assert entry["rows_scanned"] == 32 and entry["filtered_out"] == 5 and entry["pool"] == 27
    assert entry["license"] == "apache-2.0" and entry["kept"] == 20
    assert json.loads(report.read_text())["sources"] == summary["sources"]

    edu = schemas.write_jsonl(tmp_path / "edu.jsonl", schemas.opencoder_rows())
    data = SEED_CODE_SOURCE.model_dump(by_alias=True, exclude={"dataset", "config", "revision", "streaming"})
    code_source = ProblemSourceConfig.model_validate({**data, "kind": "jsonl", "path": str(edu), "n": 8})
    kept, summary = prepare_problems(code_source, "code", BENCHMARKS, reference_checker=fake_checker)
    assert len(kept) == 8 and summary["dropped"]["failing_reference"] == 1
    assert "2000" not in {p["id"] for p in kept}


def test_real_benchmarks_catch_copies_and_spare_the_builtin_training_split(shared_benchmarks):
    from distill_ray import builtin_problems as builtin

    math500 = load_math500(str(shared_benchmarks / "math500.jsonl"))
    mbpp = load_mbppplus(str(shared_benchmarks / "MbppPlus-v0.2.0.jsonl.gz"))
    benchmarks = {
        "math500": math500,
        "mbppplus": mbpp,
        "mini-math": builtin.make_problems("math", "mini-math", 60, 0),
        "mini-code": builtin.make_problems("code", "mini-code", 60, 0),
    }
    leaks = [
        math(f"leak-{i}", " ".join(p["prompt"].split("\n\n")[0].upper().split())) for i, p in enumerate(math500[:40])
    ]
    leaks += [
        code(f"mbpp-leak-{i}", p["prompt"].split("\n")[0], {}) for i, p in enumerate(mbpp[:40])
    ]  # the task sentence alone, as a training set would state it
    train = builtin.make_problems("math", "train", 400, 1) + builtin.make_problems("code", "train", 150, 1)
    kept, summary = clean_problems(leaks + train, benchmarks, check_answers=False)
    assert summary["dropped"]["contaminated"] == 80  # every leak, none of the built-in training problems
    contaminated = {d["id"] for d in summary["drops"] if d["reason"] == "contaminated"}
    assert contaminated == {p["id"] for p in leaks}
    assert {p["id"] for p in kept} <= {p["id"] for p in train}
    by_item = summary["contamination"]["by_item"]
    assert all([m["row"] for m in by_item["math500"][p["id"]]] == [f"leak-{i}"] for i, p in enumerate(math500[:40]))
    assert all(f"mbpp-leak-{i}" in {m["row"] for m in by_item["mbppplus"][p["id"]]} for i, p in enumerate(mbpp[:40]))
    # A copied sentence can hit a second item: MBPP states tasks in stock phrasing, and a one-slot sibling is one token
    # away ("Write a function to find the nth octagonal number." / "... nth hexagonal number.", the edit rule) or
    # shares most of its 8-grams ("Write a function to sort a list of elements." twice). Measured: 48 items.
    assert summary["contamination"]["items_hit"]["mbppplus"] == 48
    assert summary["contamination"]["items_hit"]["mini-math"] == 0
    assert summary["contamination"]["items_hit"]["mini-code"] == 0  # speed: benchmarks/decontamination.py
