"""Decontamination rules: normalisation, each rule on its own case, precision on shared phrasing, the labelled table
built from the real MATH-500 and MBPP+ files, the audit file and its report section, the built-in families."""

from __future__ import annotations

import json

import pytest

from distill_ray import builtin_problems as builtin
from distill_ray.config import ConfigError, DecontaminationConfig, load_sweep, sweep_from_dict
from distill_ray.problems.audit import contamination_section
from distill_ray.problems.clean import clean_problems
from distill_ray.problems.decontaminate import ContaminationIndex, DecontaminationSettings, normalise_tokens
from distill_ray.problems.public_sets import load_math500, load_mbppplus
from distill_ray.problems.schema import DEFAULT_CODE_INSTRUCTION, DEFAULT_MATH_INSTRUCTION
from distill_ray.records import Problem
from distill_ray.report.data import contamination_audits
from distill_ray.stages.problems import prepare_benchmarks
from distill_ray.stages.problems import prepare_problems as prepare_problems_of_sweep


def row(pid: str, text: str, domain: str = "math", source: str = "pool.jsonl", split: str = "train") -> Problem:
    instruction = DEFAULT_MATH_INSTRUCTION if domain == "math" else DEFAULT_CODE_INSTRUCTION
    return Problem(id=pid, domain=domain, prompt=f"{text}\n\n{instruction}", answer="1", tests="", source=source,
                   split=split)


SAME = [  # (a, b): texts that must normalise to the same tokens
    ("Find $\\dfrac{3}{4}$ of 12.", "find $\\frac{7}{9}$ of  48."),
    ("Let $x \\le 5$.", "Let $\\left( y \\leq 7 \\right)$."),
    ("Compute $\\tbinom{31}{28}$.", "Compute $\\binom{10}{3}$."),
    ("A list 1, 2, 3, 4 sums to?", "A list 9 sums to?"),
    ("What is $2\\,000 \\cdot 3$?", "WHAT   IS $7 \\cdot 3$?"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_normalisation_unifies_spellings_spacing_and_numbers(a, b):
    assert normalise_tokens(a) == normalise_tokens(b)


def test_numbers_are_kept_when_masking_is_off():
    assert normalise_tokens("Add 3 to 4.", mask=False) != normalise_tokens("Add 5 to 4.", mask=False)


BENCH = {
    "math500": [
        row("long", "A regular hexagon is inscribed in a circle of radius 5. A point is chosen uniformly at random "
            "inside the circle. What is the probability that the point lies inside the hexagon?", split="math500"),
        row("short", "Simplify $\\sqrt{242}$.", split="math500"),
        row("mid", "What is the value of $513^2 - 487^2$?", split="math500"),
    ]
}
INDEX = ContaminationIndex(BENCH)


def rules(text: str) -> set[str]:
    return {h.rule for h in INDEX.matches(row("r", text))}


def test_a_long_item_with_new_numbers_and_a_sentence_in_front_hits_by_ngram():
    text = ("Here is a practice question. A regular hexagon is inscribed in a circle of radius 9. A point is chosen "
            "uniformly at random inside the circle. What is the probability that the point lies inside the hexagon?")
    assert "ngram" in rules(text)


def test_a_short_item_with_a_sentence_in_front_hits_as_whole_sentences():
    assert rules("Solve the following. Simplify $\\sqrt{250}$.") == {"ngram"}


def test_a_short_item_inside_a_longer_sentence_does_not_hit():
    assert rules("Simplify $\\sqrt{250}$ times the number of sides of a heptagon plus the radius of the moon.") == set()


def test_a_short_item_with_one_word_changed_hits_by_edit():
    assert "edit" in rules("What is the result of $513^2 - 487^2$?")


def test_a_reordered_item_hits_by_character_similarity():
    text = ("What is the probability that the point lies inside the hexagon, if a point is chosen uniformly at random "
            "inside the circle and a regular hexagon is inscribed in a circle of radius 5?")
    assert rules(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the probability that a fair die shows an even number twice in a row?",  # shares the question
        "What is the value of the largest prime factor of the number of days in a leap year?",  # shares the opening
        "A regular hexagon has a perimeter of 12 beads of string; how many beads does one side use?",
    ],
)
def test_shared_phrasing_is_not_contamination(text):
    assert rules(text) == set()


def test_code_items_match_on_the_task_sentence_and_on_the_visible_assert():
    item = row("Mbpp/2", "Write a function to find the shared elements from the given two lists.\n"
               "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))", "code", split="mbppplus")
    index = ContaminationIndex({"mbppplus": [item]})
    task = index.matches(row("t", "Write a function to find the shared elements from the given two lists.", "code"))
    shown = "Find what two tuples share.\nassert set(similar_elements((1, 2),(2, 9))) == set((2,))"
    call = index.matches(row("c", shown, "code"))
    assert {h.segment for h in task} == {"task"} and {h.segment for h in call} == {"assert"}
    fresh = row("f", "Write a function to find the longest palindrome hidden in a list of words.\n"
                "assert longest_palindrome(['ab', 'aba']) == 'aba'", "code")
    assert index.matches(fresh) == []


def test_template_family_members_match_only_exactly():
    bench = {"mini-math": builtin.make_problems("math", "mini-math", 60, 0)}
    train = builtin.make_problems("math", "train", 400, 0)
    assert not any(ContaminationIndex(bench).matches(p) for p in train)
    # Number masking alone would call most of the family contaminated: the family rule is what keeps them.
    masked = ContaminationIndex(bench, template_families=())
    assert sum(1 for p in train if masked.matches(p)) > 200
    copy = dict(bench["mini-math"][0], split="train")
    assert [h.rule for h in ContaminationIndex(bench).matches(copy)] == ["exact"]
    # A pool row from elsewhere with the family's wording is matched with numbers masked, like any other row.
    outsider = dict(copy, source="pool.jsonl", prompt=copy["prompt"].replace(copy["prompt"].split()[2], "77"))
    assert ContaminationIndex(bench).matches(outsider)


@pytest.mark.parametrize(
    ("sweep_file", "counts"), [("sweeps/local.yaml", {"math": 400, "code": 303}), ("sweeps/smoke.yaml", {"math": 300})]
)
def test_the_builtin_sweeps_keep_their_problem_counts(tmp_path, sweep_file, counts):
    # The sweep's own path: its benchmarks (mini-math, mini-code subsets) and problem preparation. The 97 code
    # problems short of 400 are near-duplicates of each other (the family has few distinct code tasks), as before.
    sweep = load_sweep(sweep_file)
    benchmarks = prepare_benchmarks(sweep, str(tmp_path))
    for domain, count in counts.items():
        assert len(prepare_problems_of_sweep(sweep, str(tmp_path), domain, benchmarks)) == count
        audit = json.loads((tmp_path / "problems" / domain / "contamination.json").read_text())
        assert audit["dropped"]["contaminated"] == 0
        assert audit["contamination"]["settings"] == sweep.decontamination.settings().as_dict()
    lines = contamination_section(contamination_audits(str(tmp_path)))
    assert "| math | mini-math | " + str(len(benchmarks["mini-math"])) + " | 0 | 0 |" in lines


def test_the_audit_file_names_rule_score_and_rows_per_benchmark_and_renders(tmp_path):
    pool = [row("copy", "Simplify $\\sqrt{200}$."), row("edit", "What is the result of $513^2 - 487^2$?"),
            row("fresh", "How many positive integers are the ages of the choir's 12 singers?")]
    settings = DecontaminationSettings(ngram=6)
    report = tmp_path / "problems" / "math" / "contamination.json"
    kept, _summary = clean_problems(pool, BENCH, check_answers=False, decontamination=settings,
                                    report_path=str(report))
    assert [p["id"] for p in kept] == ["fresh"]
    audit = json.loads(report.read_text())["contamination"]
    assert audit["settings"]["ngram"] == 6 and audit["rows_dropped"] == {"math500": 2}
    short = audit["by_item"]["math500"]["short"]
    assert short == [{"row": "copy", "segment": "problem", "rule": "ngram", "score": 1.0}]
    assert [(m["row"], m["rule"]) for m in audit["by_item"]["math500"]["mid"]] == [("edit", "edit")]
    lines = contamination_section(contamination_audits(str(tmp_path)))
    assert lines[0] == "## Decontamination" and any("word 6-gram coverage >= 0.6" in line for line in lines)
    assert "| math | math500 | 3 | 2 | 2 |" in lines
    assert any(line.startswith("- math500 short: copy: ngram 1.00") for line in lines)
    assert contamination_section(contamination_audits(str(tmp_path / "nothing"))) == []


def test_the_sweep_section_is_strict_and_reaches_the_settings(tmp_path):
    sweep = load_sweep("sweeps/smoke.yaml", ["decontamination.ngram=10", "decontamination.similarity=0.7"])
    assert sweep.decontamination.settings() == DecontaminationSettings(ngram=10, similarity=0.7)
    assert DecontaminationConfig().settings() == DecontaminationSettings()
    data = load_sweep("sweeps/smoke.yaml").model_dump()
    for bad, key in (({"ngram": 0}, "decontamination.ngram"), ({"n": 8}, "decontamination.n"),
                     ({"similarity": 1.5}, "decontamination.similarity"),
                     ({"edit_min_tokens": 5, "edit_max_tokens": 4}, "decontamination")):
        with pytest.raises(ConfigError) as err:
            sweep_from_dict({**data, "decontamination": bad}, "x.yaml")
        assert err.value.key == key


def test_labelled_table_meets_the_targets(shared_benchmarks, benchmark_script):
    bench = benchmark_script("decontamination")
    benchmarks = {"math500": load_math500(str(shared_benchmarks / "math500.jsonl")),
                  "mbppplus": load_mbppplus(str(shared_benchmarks / "MbppPlus-v0.2.0.jsonl.gz"))}
    table = bench.labelled_table(benchmarks)
    fresh = bench.fresh_problems(1200, seed=7, benchmarks=benchmarks)
    assert len(fresh) >= 1000 and all(kind in {k for k, _, _ in table} for kind in bench.KINDS)
    index = ContaminationIndex(benchmarks)
    result = bench.score_table(table, fresh, lambda r: bool(index.matches(r)))
    recall = {kind: value["recall"] for kind, value in result["recall"].items()}
    assert recall["verbatim"] == 1.0
    assert recall["one_word"] >= 0.98
    assert recall["changed_numbers"] >= 0.90
    assert result["false_drops"] == 0, result["false_drop_ids"]
    # The table can fail: the previous rule (one shared 13-word run) misses most one-word edits on it.
    old = bench.score_table(table, fresh, bench._old_rule(benchmarks))
    assert old["recall"]["one_word"]["recall"] < 0.9


def test_the_package_names_its_entry_point_and_the_old_names_still_import():
    import distill_ray.problems as problems
    from distill_ray.problems import clean, sources
    from distill_ray.verify import code_spec

    assert problems.prepare_problems is clean.prepare_problems
    assert sources.build_test_spec is code_spec.build_test_spec
    with pytest.raises(AttributeError):
        _ = problems.nothing_here
