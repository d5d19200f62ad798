"""The report on hand-made experiment directories with known per-item verdicts: every cell of the seed's tables."""

import json
import os
import re

import pytest

from distill_ray.cli import main as cli_main
from distill_ray.config import ConfigError
from distill_ray.report import load_experiment, summary_rows, write_report
from distill_ray.report.analysis import split
from distill_ray.stats import paired_difference_interval, wilson_interval

M, C = 20, 10  # math500 and mbppplus items of the synthetic experiment
MATH_IDS = [f"m{i:02d}" for i in range(M)]
CODE_IDS = [f"c{i:02d}" for i in range(C)]


def _write(path, data, jsonl=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        if jsonl:
            handle.writelines(json.dumps(r) + "\n" for r in data)
        else:
            json.dump(data, handle)


def w(k, n):
    """A report cell: accuracy and its Wilson interval."""
    low, high = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * low:.0f}–{100 * high:.0f}]"


def wb(k, n):
    """The same cell in bold, as the seed marks a column's best."""
    pct, interval = w(k, n).split(" ", 1)
    return f"**{pct}** {interval}"


def _score(bench, ids, correct, base_correct=None, capped=0, step=0, new_fields=True):
    low, high = wilson_interval(len(correct), len(ids))
    score = {"benchmark": bench, "step": step, "samples": step * 50, "n": len(ids), "correct": len(correct),
             "accuracy": len(correct) / len(ids), "ci95_low": low, "ci95_high": high, "format_failures": 1,
             "errors": 0}
    if new_fields:
        score.update(base_correct=len(base_correct) if base_correct is not None else None, length_capped=capped)
    return score


def _items(bench, ids, correct, base_correct=None, capped=(), new_fields=True):
    rows = []
    for pid in ids:
        row = {"benchmark": bench, "problem_id": pid, "response": "...",
               "verdict": "pass" if pid in correct else "fail",
               "reason": "correct" if pid in correct else "wrong_answer", "extracted": ""}
        if new_fields:
            plus = base_correct is not None
            row.update(base_status=("pass" if pid in base_correct else "fail") if plus else None,
                       plus_status=("pass" if pid in correct else "fail") if plus else None,
                       finish_reason="length" if pid in capped else "stop", generated_tokens=100)
        rows.append(row)
    return rows


def _checkpoint(folder, math_ok, code_ok, code_base_ok, capped, step=0):
    _write(f"{folder}/responses.jsonl", _items("math500", MATH_IDS, math_ok, capped=capped)
           + _items("mbppplus", CODE_IDS, code_ok, code_base_ok), jsonl=True)
    scores = [_score("math500", MATH_IDS, math_ok, capped=len(capped), step=step),
              _score("mbppplus", CODE_IDS, code_ok, code_base_ok, step=step)]
    _write(f"{folder}/scores.json", scores)
    row = {}
    for s in scores:
        b = s["benchmark"]
        row.update({f"{b}/accuracy": s["accuracy"], f"{b}/ci95_low": s["ci95_low"], f"{b}/ci95_high": s["ci95_high"],
                    f"{b}/n": s["n"], f"{b}/format_failure_rate": s["format_failures"] / s["n"]})
    return row


def prefix(ids, k):
    return set(ids[:k])


# (teacher, domain) -> {step: (math correct, code correct)}; correct sets are prefixes unless given as sets
TRIALS = {
    ("sonnet", "math"): {100: (15, 6), 200: (18, 5), 300: (16, 7)},
    ("sonnet", "code"): {100: (14, 8), 200: (12, 9), 300: (13, 9)},
    ("r1", "math"): {100: (10, 3), 200: (set(MATH_IDS[6:]), 4), 300: (12, 2)},
    ("r1", "code"): {100: (11, 5), 200: (13, 6), 300: (9, 7)},
}
BASE = (13, 8, 9)  # base model: math500 13/20, mbppplus 8/10, MBPP base tests 9/10


def _as_set(ids, spec):
    return spec if isinstance(spec, set) else prefix(ids, spec)


def _experiment(tmp_path, student="qwen"):
    exp = tmp_path / "exp"
    for (teacher, domain), steps in TRIALS.items():
        trial = f"{teacher}__{student}__{domain}"
        rows = []
        for step, (m, c) in steps.items():
            math_ok, code_ok = _as_set(MATH_IDS, m), _as_set(CODE_IDS, c)
            capped = set(MATH_IDS[M - step // 100:])  # 1, 2, 3 math responses cut at max_new_tokens
            scores = _checkpoint(f"{exp}/trials/{trial}/eval/step-{step:06d}", math_ok, code_ok,
                                 prefix(CODE_IDS, min(C, len(code_ok) + 1)), capped, step)
            rows.append({"trial": trial, "teacher": teacher, "student": student, "domain": domain, "step": step,
                         "samples": step * 50, "train_loss": 1.0 / step, "examples": 200, "truncated_examples": 20,
                         **scores})
        _write(f"{exp}/trials/{trial}/results.jsonl", rows, jsonl=True)
    m, c, cb = BASE
    _write(f"{exp}/sweep.json", {"grid": {"teachers": ["sonnet", "r1"], "students": [student],
                                          "domains": ["math", "code"]}})
    _checkpoint(f"{exp}/base/{student}", prefix(MATH_IDS, m), prefix(CODE_IDS, c), prefix(CODE_IDS, cb), set())
    _write(f"{exp}/problems/math/done.json", {"rows_read": 500, "kept": 480, "unused": 0,
                                              "dropped": {"duplicate": 15, "contaminated": 5, "unverifiable": 0}})
    _write(f"{exp}/traces/sonnet/math/done.json", {
        "teacher": "sonnet", "domain": "math", "generation": {"paid": 300, "cost_usd": 1.5,
                                                             "failure_reasons": {"timeout": 3, "empty": 1}},
        "statistics": {"n": 290, "pass_rate": 0.7, "ci95": [0.64, 0.75], "tokens_mean": 700, "tokens_p50": 650,
                       "tokens_p90": 1200, "truncation_rate": 0.01}})
    return exp


def _table(text, heading):
    """The Markdown table under `heading` (its header line first), as lists of cells."""
    lines = text.splitlines()
    start = lines.index(heading)
    block = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            break
    return [block[0], *block[2:]]


def test_summary_table_every_cell(tmp_path):
    text = open(write_report(str(_experiment(tmp_path)))).read()
    validation, test = split(MATH_IDS, "math500")
    cvalidation, ctest = split(CODE_IDS, "mbppplus")

    def honest(trial, ids, val, tst, bench_index):
        # by hand: the step with most validation items right (earliest on a tie), scored on the test half
        sets = {s: _as_set(ids, v[bench_index]) for s, v in TRIALS[trial].items()}
        step = max(sorted(sets), key=lambda s: (len(sets[s] & val), -s))
        return f"{w(len(sets[step] & tst), len(tst))} (s{step}, {len(tst)} items)"

    def both(trial):
        return [honest(trial, MATH_IDS, validation, test, 0), honest(trial, CODE_IDS, cvalidation, ctest, 1)]

    assert _table(text, "### Summary") == [
        ["Training Data", "Best MATH-500", "MBPP+ at best MATH", "Best MBPP+", "MATH at best MBPP",
         "MATH-500 picked on validation half", "MBPP+ picked on validation half"],
        ["sonnet math", f"{wb(18, 20)} (s200)", w(5, 10), f"{w(7, 10)} (s300)", w(16, 20),
         *both(("sonnet", "math"))],
        ["sonnet code", f"{w(14, 20)} (s100)", w(8, 10), f"{wb(9, 10)} (s200/s300)",
         f"{w(12, 20)} / {w(13, 20)}", *both(("sonnet", "code"))],
        ["r1 math", f"{w(14, 20)} (s200)", w(4, 10), f"{w(4, 10)} (s200)", w(14, 20), *both(("r1", "math"))],
        ["r1 code", f"{w(13, 20)} (s200)", w(6, 10), f"{w(7, 10)} (s300)", w(9, 20), *both(("r1", "code"))],
        # the base row: math, code, code, math (the column's benchmark, not in-domain / other-domain)
        ["Base", w(13, 20), w(8, 10), w(8, 10), w(13, 20),
         f"{w(len(prefix(MATH_IDS, 13) & test), len(test))} ({len(test)} items)",
         f"{w(len(prefix(CODE_IDS, 8) & ctest), len(ctest))} ({len(ctest)} items)"],
    ]


def test_per_trial_table_every_cell(tmp_path):
    text = open(write_report(str(_experiment(tmp_path)))).read()
    assert _table(text, "### sonnet math traces (`sonnet__qwen__math`)") == [
        ["Step", "Samples", "MATH-500", "MBPP+", "MBPP (base only)", "train loss", "cap hits"],
        ["100", "5K", w(15, 20), w(6, 10), w(7, 10), "0.010", "3.3%"],
        ["200", "10K", wb(18, 20), w(5, 10), w(6, 10), "0.005", "6.7%"],
        ["300", "15K", w(16, 20), wb(7, 10), w(8, 10), "0.003", "10.0%"],
        ["Base", "—", w(13, 20), w(8, 10), w(9, 10), "—", "0.0%"],
    ]


def _cell(text, heading, first_cell, column):
    table = _table(text, heading)
    row = next(r for r in table[1:] if r[0] == first_cell)
    return row[table[0].index(column)]


def test_cross_domain_table_per_teacher(tmp_path):
    text = open(write_report(str(_experiment(tmp_path)))).read()
    assert _table(text, "### r1 traces, both domains") == [
        ["Step", "Math→MATH", "Math→MBPP", "Code→MATH", "Code→MBPP"],
        ["100", w(10, 20), w(3, 10), w(11, 20), w(5, 10)],
        ["200", w(14, 20), w(4, 10), w(13, 20), w(6, 10)],
        ["300", w(12, 20), w(2, 10), w(9, 20), w(7, 10)],
    ]


def test_paired_deltas_equal_hand_computed_values(tmp_path):
    exp = _experiment(tmp_path)
    text = open(write_report(str(exp))).read()
    # sonnet math s200 (m00..m17 right) vs base (m00..m12): 5 items only sonnet got right, none only base;
    # McNemar p = 2 * C(5,0)/2^5 = 0.0625; interval: Newcombe method 10 on (13, 5, 0, 2), checked in test_stats
    _, low, high = paired_difference_interval(13, 5, 0, 2)
    assert _cell(text, "### Deltas (the seed's takeaways, paired)", "sonnet math best MATH (s200) − base",
                 "A − B [95% paired CI], McNemar p") == f"+25.0pp [{100 * low:+.1f}, {100 * high:+.1f}] p=0.062 ~"
    # teacher vs teacher at each side's best: sonnet math s200 (m00..m17) vs r1 math s200 (m06..m19): sonnet alone
    # on m00..m05 (6), r1 alone on m18, m19 (2): p = 2 * (1 + 8 + 28)/256 = 0.2890625, delta (18 - 14)/20 = +20pp
    row = next(r for r in _table(text, "### Deltas (the seed's takeaways, paired)")
               if r[0] == "sonnet math best (s200) − r1 math best (s200)")
    _, low, high = paired_difference_interval(12, 6, 2, 0)
    assert row == ["sonnet math best (s200) − r1 math best (s200)", "MATH-500", "90.0%", "70.0%",
                   f"+20.0pp [{100 * low:+.1f}, {100 * high:+.1f}] p=0.289 ~", "6 / 2", "20"]
    # checkpoint vs previous: sonnet code s200 (c00..c08) vs s100 (c00..c07) on MBPP+: b=1, c=0, p=1
    _, low, high = paired_difference_interval(8, 1, 0, 1)
    changes = _table(text.split("### sonnet code traces (`sonnet__qwen__code`)")[1], "Paired changes (A − B, 95% "
                     "paired interval, exact McNemar p):")
    column = changes[0].index("MBPP+ − previous")
    assert changes[2][column] == f"+10.0pp [{100 * low:+.1f}, {100 * high:+.1f}] p=1.000 ~"
    assert changes[1][column] == "—"  # the first checkpoint has no previous one
    # results.json carries the same comparison, with its discordant counts
    rows = json.load(open(exp / "results.json"))["comparisons"]
    same = [r for r in rows if r["kind"] == "teacher-vs-teacher-step" and r["a"] == "sonnet__qwen__math@300"
            and r["benchmark"] == "mbppplus"]
    # s300: sonnet c00..c06 vs r1 c00..c01: 5 only sonnet; p = 2/32
    assert len(same) == 1 and (same[0]["a_only"], same[0]["b_only"], same[0]["n"]) == (5, 0, 10)
    assert same[0]["p"] == 0.0625 and same[0]["delta"] == pytest.approx(0.5)


def test_unpaired_items_are_dropped_from_the_paired_test(tmp_path):
    exp = _experiment(tmp_path)
    path = exp / "trials/sonnet__qwen__math/eval/step-000200/responses.jsonl"
    rows = [json.loads(line) for line in open(path)]
    _write(path, [r for r in rows if r["problem_id"] != "m19"], jsonl=True)  # one item never scored at step 200
    write_report(str(exp))
    comparisons = json.load(open(exp / "results.json"))["comparisons"]
    vs_base = next(r for r in comparisons if r["kind"] == "checkpoint-vs-base" and r["a"] == "sonnet__qwen__math@200"
                   and r["benchmark"] == "math500")
    assert (vs_base["n"], vs_base["dropped"], vs_base["a_only"], vs_base["b_only"]) == (19, 1, 5, 0)


def test_validation_half_pick_differs_from_the_optimistic_best(tmp_path):
    ids = [f"q{i:02d}" for i in range(20)]
    validation, test = (sorted(h) for h in split(ids, "math500"))
    assert len(validation) == len(test) == 10 and not set(validation) & set(test)
    # s100: every validation item, 2 test items (12/20); s200: 3 validation items, every test item (13/20).
    # The seed's pick is s200 (65%); picked on the validation half it is s100, which scores 2/10 on the test half.
    sets = {100: set(validation) | set(test[:2]), 200: set(validation[:3]) | set(test)}
    exp = tmp_path / "exp"
    rows = []
    for step, ok in sets.items():
        _write(f"{exp}/trials/t/eval/step-{step:06d}/responses.jsonl", _items("math500", ids, ok), jsonl=True)
        low, high = wilson_interval(len(ok), 20)
        rows.append({"trial": "t", "teacher": "a", "student": "s", "domain": "math", "step": step, "samples": 100,
                     "train_loss": 1.0, "math500/accuracy": len(ok) / 20, "math500/ci95_low": low,
                     "math500/ci95_high": high, "math500/n": 20, "math500/format_failure_rate": 0.0})
    _write(f"{exp}/trials/t/results.jsonl", rows, jsonl=True)
    (summary,) = summary_rows(load_experiment(str(exp)))
    assert summary["best"]["math"][0]["step"] == 200
    assert (summary["honest"]["math"]["step"], summary["honest"]["math"]["correct"],
            summary["honest"]["math"]["n"]) == (100, 2, 10)
    text = open(write_report(str(exp))).read()
    assert _table(text, "### Summary")[1][:2] == ["a math", f"{w(13, 20)} (s200)"]
    assert _table(text, "### Summary")[1][5] == f"{w(2, 10)} (s100, 10 items)"


def test_split_is_seeded_stable_and_disjoint():
    ids = [f"p{i}" for i in range(101)]
    first, second = split(ids, "math500"), split(list(reversed(ids)), "math500")
    assert first == second  # the order items arrive in does not matter
    assert len(first[0]) == 50 and len(first[1]) == 51 and first[0] | first[1] == set(ids)
    assert split(ids, "mbppplus") != first  # each benchmark gets its own split
    assert split(ids, "math500", seed=1) != first


def test_old_style_experiment_without_the_new_fields_still_renders(tmp_path):
    # before finish reasons and base/plus statuses: responses carry only verdicts, scores no base_correct/length_capped
    exp = tmp_path / "old"
    ids = [f"x{i}" for i in range(10)]
    rows = []
    for step, (m, c) in {100: (4, 6), 200: (7, 5)}.items():
        folder = f"{exp}/trials/old__tiny__math/eval/step-{step:06d}"
        _write(f"{folder}/responses.jsonl", _items("mini-math", ids, set(ids[:m]), new_fields=False)
               + _items("mini-code", ids, set(ids[:c]), new_fields=False), jsonl=True)
        row = {"trial": "old__tiny__math", "teacher": "old", "student": "tiny", "domain": "math", "step": step,
               "samples": step * 16, "train_loss": 0.5}
        for b, k in (("mini-math", m), ("mini-code", c)):
            low, high = wilson_interval(k, 10)
            row.update({f"{b}/accuracy": k / 10, f"{b}/ci95_low": low, f"{b}/ci95_high": high, f"{b}/n": 10,
                        f"{b}/format_failure_rate": 0.1})
        rows.append(row)
    _write(f"{exp}/trials/old__tiny__math/results.jsonl", rows, jsonl=True)
    _write(f"{exp}/base/tiny/scores.json", [_score("mini-math", ids, set(ids[:2]), new_fields=False),
                                            _score("mini-code", ids, set(ids[:3]), new_fields=False)])
    text = open(write_report(str(exp))).read()

    def honest(bench, k100, k200):
        validation, test = split(ids, bench)
        right = {100: set(ids[:k100]), 200: set(ids[:k200])}
        step = max((100, 200), key=lambda s: (len(right[s] & validation), -s))
        return f"{w(len(right[step] & test), 5)} (s{step}, 5 items)"

    # the embedded default's benchmarks fill the same columns; no MBPP column (no plus tests); cap hits unknown
    assert _table(text, "### old math traces (`old__tiny__math`)") == [
        ["Step", "Samples", "mini-math", "mini-code", "train loss", "cap hits"],
        ["100", "1.6K", w(4, 10), wb(6, 10), "0.500", "—"],
        ["200", "3.2K", wb(7, 10), w(5, 10), "0.500", "—"],
        ["Base", "—", w(2, 10), w(3, 10), "—", "—"],
    ]
    assert _table(text, "### Summary") == [
        ["Training Data", "Best mini-math", "mini-code at best mini-math", "Best mini-code",
         "mini-math at best mini-code", "mini-math picked on validation half", "mini-code picked on validation half"],
        ["old math", f"{w(7, 10)} (s200)", w(5, 10), f"{w(6, 10)} (s100)", w(4, 10), honest("mini-math", 4, 7),
         honest("mini-code", 6, 5)],
        ["Base", w(2, 10), w(3, 10), w(3, 10), w(2, 10), "—", "—"],  # no base responses: no test-half score
    ]


def test_a_responses_file_with_a_missing_field_is_rejected_naming_file_line_and_field(tmp_path, capsys):
    exp = _experiment(tmp_path)
    path = exp / "trials/r1__qwen__math/eval/step-000100/responses.jsonl"
    rows = [json.loads(line) for line in open(path)]
    del rows[1]["verdict"]
    _write(path, rows, jsonl=True)
    with pytest.raises(ConfigError) as err:
        write_report(str(exp))
    assert (err.value.file, err.value.key) == (str(path), "line 2: verdict")
    assert not os.path.exists(exp / "report.md") and not os.path.exists(exp / "results.json")
    assert cli_main(["report", str(exp)]) == 2
    assert "line 2: verdict: missing field" in capsys.readouterr().err


def test_trace_generation_failure_and_problem_tables(tmp_path):
    text = open(write_report(str(_experiment(tmp_path)))).read()
    assert _table(text, "## Teacher traces") == [
        ["Teacher", "Domain", "Requests paid", "Verified", "Pass rate [95%]", "Mean tokens", "p50", "p90",
         "Teacher cut (length)", "Training examples cut at max_length", "Cost (USD)"],
        ["sonnet", "math", "300", "290", "70.0% [64–75]", "700", "650", "1200", "1.0%", "10.0% of 200", "1.5000"]]
    assert _table(text, "### Generation failures (requests that returned no usable trace)") == [
        ["Teacher", "Domain", "Reason", "Requests"], ["sonnet", "math", "empty", "1"],
        ["sonnet", "math", "timeout", "3"]]
    assert _table(text, "## Training problems") == [
        ["Domain", "Rows read", "Kept", "Dropped"], ["math", "500", "480", "contaminated 5, duplicate 15"]]
    # format failures and cap hits per benchmark: base 1 of 20 / 1 of 10 format failures, no cap hits
    responses = _table(text, "### What each response was")
    assert responses[0] == ["Model", "Step", "MATH-500 format failures", "MATH-500 cap hits",
                            "MBPP+ format failures", "MBPP+ cap hits"]
    assert responses[1] == ["base", "0", "5.0%", "0.0%", "10.0%", "0.0%"]
    assert responses[2] == ["sonnet math", "100", "5.0%", "5.0%", "10.0%", "0.0%"]  # 1 of 20 math responses cut


# The seed's Qwen3-30B-A3B-Base numbers (experiment 16/02), steps 100..500: (MATH-500 %, MBPP+ %) per checkpoint.
SEED_QWEN = {
    ("sonnet", "math"): [(85, 65), (82, 62), (88, 57), (85, 63), (86, 62)],
    ("sonnet", "code"): [(82, 69), (79, 74), (77, 74), (84, 71), (79, 73)],
    ("r1", "math"): [(58, 10), (72, 31), (65, 41), (65, 48), (67, 44)],
    ("r1", "code"): [(66, 15), (73, 43), (75, 48), (74, 56), (75, 49)],
}


def test_the_seed_summary_regenerated_from_verdicts_on_the_real_benchmark_items(tmp_path, shared_benchmarks):
    """The real MATH-500 / MBPP+ items, loaded by the sweep's own loader, scored per item so that every checkpoint
    has the seed's accuracy; the report must print the seed's Qwen summary (to the item) from those verdicts."""
    import random

    from distill_ray.config import BenchmarkConfig
    from distill_ray.evaluate import load_benchmark

    math_ids = [p["id"] for p in load_benchmark(BenchmarkConfig(name="math500", path=str(
        shared_benchmarks / "math500.jsonl")))]
    code_ids = [p["id"] for p in load_benchmark(BenchmarkConfig(name="mbppplus", path=str(
        shared_benchmarks / "MbppPlus-v0.2.0.jsonl.gz")))]
    assert (len(math_ids), len(code_ids)) == (500, 378)
    exp = tmp_path / "seed"

    def k(pct, n):
        return round(pct * n / 100)

    def write(folder, km, kc):
        rng = random.Random(folder.rsplit("seed", 1)[1])
        ok_m, ok_c = set(rng.sample(math_ids, km)), set(rng.sample(code_ids, kc))
        _write(f"{folder}/responses.jsonl", _items("math500", math_ids, ok_m)
               + _items("mbppplus", code_ids, ok_c, ok_c), jsonl=True)
        row = {}
        for b, kk, n in (("math500", km, 500), ("mbppplus", kc, 378)):
            low, high = wilson_interval(kk, n)
            row.update({f"{b}/accuracy": kk / n, f"{b}/ci95_low": low, f"{b}/ci95_high": high, f"{b}/n": n,
                        f"{b}/format_failure_rate": 0.0})
        return row

    for (teacher, domain), steps in SEED_QWEN.items():
        trial = f"{teacher}__qwen__{domain}"
        rows = [{"trial": trial, "teacher": teacher, "student": "qwen", "domain": domain, "step": 100 * (i + 1),
                 "samples": 5000 * (i + 1), "train_loss": 0.5,
                 **write(f"{exp}/trials/{trial}/eval/step-{100 * (i + 1):06d}", k(m, 500), k(c, 378))}
                for i, (m, c) in enumerate(steps)]
        _write(f"{exp}/trials/{trial}/results.jsonl", rows, jsonl=True)
    write(f"{exp}/base/qwen", 403, 286)  # 80.6% and 75.7%
    _write(f"{exp}/base/qwen/scores.json", [_score("math500", math_ids, set(math_ids[:403])),
                                            _score("mbppplus", code_ids, set(code_ids[:286]), set(code_ids[:286]))])
    _write(f"{exp}/sweep.json", {"grid": {"teachers": ["sonnet", "r1"], "domains": ["math", "code"]}})
    text = open(write_report(str(exp))).read().replace("**", "")
    summary = [[re.sub(r" \[\d+–\d+\]", "", c) for c in row] for row in _table(text, "### Summary")]
    # the seed's table: Sonnet math 88% (s300) | 57% | 65% (s100) | 85%; Sonnet code 84% (s400) | 71% | 74% (s200/s300)
    # | 77-79%; R1 math 72% (s200) | 31% | 48% (s400) | 65%; R1 code 75% (s300) | 48% | 56% (s400) | 74%;
    # Base 80.6% | 75.7% | 75.7% | 80.6%. Here to the item (57% of 378 is 215 items: 56.9%), ties listed in full.
    assert [r[:5] for r in summary[1:]] == [
        ["sonnet math", "88.0% (s300)", "56.9%", "65.1% (s100)", "85.0%"],
        ["sonnet code", "84.0% (s400)", "70.9%", "74.1% (s200/s300)", "79.0% / 77.0%"],
        ["r1 math", "72.0% (s200)", "31.0%", "47.9% (s400)", "65.0%"],
        ["r1 code", "75.0% (s300/s500)", "47.9% / 48.9%", "56.1% (s400)", "74.0%"],
        ["Base", "80.6%", "75.7%", "75.7%", "80.6%"],
    ]
    assert all(r[5].endswith("250 items)") and r[6].endswith("189 items)") for r in summary[1:])
    # the takeaway: Sonnet traces improve math by +7.4pp over base and +16pp over R1 traces
    deltas = {r[0]: r for r in _table(text, "### Deltas (the seed's takeaways, paired)")[1:]}
    assert deltas["sonnet math best MATH (s300) − base"][4].startswith("+7.4pp [")
    assert deltas["sonnet math best (s300) − r1 math best (s200)"][4].startswith("+16.0pp [")
    assert deltas["sonnet math best (s300) − r1 math best (s200)"][6] == "500"


def test_the_decontamination_audit_is_a_section_of_the_report(tmp_path):
    exp = _experiment(tmp_path)
    audit = {"contamination": {
        "settings": {"ngram": 8, "ngram_coverage": 0.6, "similarity": 0.65, "char_ngram": 5,
                     "edit_min_tokens": 3, "edit_max_tokens": 16},
        "benchmarks": {"math500": 500}, "items_hit": {"math500": 1}, "rows_dropped": {"math500": 2},
        "by_item": {"math500": {"test/algebra/1.json": [{"row": "pool-7", "segment": "problem", "rule": "edit",
                                                          "score": 0.94}]}}}}
    _write(os.path.join(exp, "problems", "math", "contamination.json"), audit)
    text = open(write_report(str(exp))).read()
    assert _table(text, "## Decontamination")[1:] == [["math", "math500", "500", "1", "2"]]
    assert text.index("## Training problems") < text.index("## Decontamination") < text.index("## Teacher traces")


def _stamp(folder, environment):
    path = f"{folder}/scores.json"
    scores = json.load(open(path))
    for score in scores:
        score["environment"] = environment
    _write(path, scores)


ENGINE = {"backend": "vllm", "engine": "vllm 0.32.0", "torch": "2.13.0", "transformers": "5.19.0", "peft": "0.21.2",
          "dtype": "bfloat16", "tensor_parallel": 2, "max_model_len": 5120, "max_lora_rank": 32,
          "device": "NVIDIA L40S"}


def test_the_report_names_the_engine_per_student_and_flags_drift(tmp_path):
    exp = _experiment(tmp_path)
    folders = [f"{exp}/base/qwen"] + [f"{exp}/trials/{t}__qwen__{d}/eval/step-{s:06d}"
                                      for (t, d), steps in TRIALS.items() for s in steps]
    for folder in folders:
        _stamp(folder, ENGINE)
    text = open(write_report(str(exp))).read()
    assert ("Scored with vllm 0.32.0 (torch 2.13.0, transformers 5.19.0, peft 0.21.2), bfloat16, device NVIDIA L40S, "
            "tensor parallel 2, max_model_len 5120, max_lora_rank 32.") in text
    assert "Engine drift" not in text and "Base re-check" not in text
    _write(f"{exp}/base/qwen/base_recheck.json", {"items": 50, "identical": 49, "seed": 0, "environment": ENGINE,
                                                  "first_environment": ENGINE})
    text = open(write_report(str(exp))).read()
    assert ("Base re-check at the end of the sweep: 49/50 greedy answers equal the first scoring (seeded subset, "
            "seed 0).") in text
    _stamp(folders[-1], {**ENGINE, "engine": "vllm 0.33.0"})  # one checkpoint re-scored on another release
    text = open(write_report(str(exp))).read()
    assert "**Engine drift:** this student's scores come from 2 different engine set-ups" in text
    assert "vllm 0.33.0 (torch 2.13.0" in text and "r1__qwen__code@300" in text
