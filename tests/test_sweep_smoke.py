"""The smoke sweep end to end on a local Ray instance: the whole pipeline, checked through its outputs."""

import glob
import json
import os

from distill_ray.sweep import grid_trials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_trial_finished_and_every_checkpoint_was_scored(smoke_run):
    sweep, summary = smoke_run
    assert summary["failed_trials"] == 0
    exp = summary["experiment_dir"]
    data = json.load(open(os.path.join(exp, "results.json")))
    trials = grid_trials(sweep)
    assert summary["trials"] == len(trials) == 2
    assert {r["trial"] for r in data["trials"]} == {t["name"] for t in trials}
    steps = sweep.training.steps
    expected_steps = sorted({*range(sweep.training.checkpoint_every, steps + 1, sweep.training.checkpoint_every),
                             steps})
    for trial in trials:
        rows = [r for r in data["trials"] if r["trial"] == trial["name"]]
        assert [r["step"] for r in rows] == expected_steps
        for row in rows:
            for bench in ("mini-math", "mini-code"):
                assert 0.0 <= row[f"{bench}/accuracy"] <= 1.0
                assert row[f"{bench}/n"] == {"mini-math": 40, "mini-code": 20}[bench]
            assert row["samples"] == row["step"] * sweep.training.global_batch


def test_report_has_base_rows_and_trained_beats_base_for_the_concise_teacher(smoke_run):
    sweep, summary = smoke_run
    exp = summary["experiment_dir"]
    report = open(summary["report"]).read()
    assert report.count("| Base | — |") == 2  # one per trial table
    data = json.load(open(os.path.join(exp, "results.json")))
    base = data["base"]["tiny-llama"]["mini-math"]["accuracy"]
    concise = [r["mini-math/accuracy"] for r in data["trials"] if r["teacher"] == "concise"]
    assert max(concise) > base
    assert os.path.exists(os.path.join(exp, "curves-tiny-llama.png"))


def test_traces_were_generated_once_per_teacher_and_verified(smoke_run):
    _, summary = smoke_run
    exp = summary["experiment_dir"]
    stats = {}
    for teacher in ("concise", "verbose"):
        done = json.load(open(os.path.join(exp, "traces", teacher, "math", "done.json")))
        stats[teacher] = done["statistics"]
    # the concise teacher is right about 3 in 4, the verbose one about half the time; verification sees the difference
    assert 0.6 < stats["concise"]["pass_rate"] < 0.9
    assert 0.3 < stats["verbose"]["pass_rate"] < 0.7


def _readme_snippet(heading: str) -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index(heading):]
    return section[section.index("```python") + len("```python"):].split("```", 1)[0]


def test_readme_tune_snippet_shows_every_checkpoint_of_every_trial(smoke_run, monkeypatch, capsys):
    _, summary = smoke_run
    exp = summary["experiment_dir"]
    monkeypatch.chdir(os.path.dirname(exp))  # the README's path is relative: it must work as written
    snippet = _readme_snippet("### Reading results with Tune").replace('"runs/local"', repr(os.path.basename(exp)))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert "concise__tiny-llama__math" in capsys.readouterr().out
    data = json.load(open(os.path.join(exp, "results.json")))
    seen = {}
    for result in namespace["grid"]:
        frame = result.metrics_dataframe
        seen[result.config["trial"]["name"]] = list(zip(frame["step"], frame["mini-math/accuracy"], strict=True))
    expected = {}
    for row in data["trials"]:
        expected.setdefault(row["trial"], []).append((row["step"], row["mini-math/accuracy"]))
    assert seen == expected  # one Tune result per checkpoint, no duplicate, the same numbers as the report


def test_report_numbers_are_the_trial_results(smoke_run):
    _, summary = smoke_run
    exp = summary["experiment_dir"]
    report = open(summary["report"]).read().replace("**", "")  # the best of a column is bold, as in the seed
    for trial in os.listdir(os.path.join(exp, "trials")):
        for line in open(os.path.join(exp, "trials", trial, "results.jsonl")):
            row = json.loads(line)
            cells = [f"{100 * row[f'{b}/accuracy']:.1f}% [{100 * row[f'{b}/ci95_low']:.0f}–"
                     f"{100 * row[f'{b}/ci95_high']:.0f}]" for b in ("mini-math", "mini-code")]
            samples = f"{row['samples'] / 1000:g}K" if row["samples"] >= 1000 else str(row["samples"])
            expected = f"| {row['step']} | {samples} | {cells[0]} | {cells[1]} | {row['train_loss']:.3f} |"
            assert expected in report


def test_one_warm_engine_scored_the_base_and_every_checkpoint(smoke_run):
    sweep, summary = smoke_run
    exp = summary["experiment_dir"]
    records = [json.load(open(p)) for p in glob.glob(os.path.join(exp, "trials", "*", "eval", "*", "worker.json"))]
    base = json.load(open(os.path.join(exp, "base", "tiny-llama", "worker.json")))
    steps = sweep.training.steps // sweep.training.checkpoint_every
    assert len(records) == len(grid_trials(sweep)) * steps
    pool = summary["evaluation_pools"]["tiny-llama"]
    assert pool["started"] == 1 and pool["replaced"] == 0
    assert {r["actor_id"] for r in [*records, base]} == set(pool["actors"])  # the pool's one actor did them all
    assert {r["engine_loads"] for r in [*records, base]} == {1}  # and loaded its engine once


def test_the_base_model_was_rechecked_at_the_end_and_the_report_says_so(smoke_run):
    _, summary = smoke_run
    exp = summary["experiment_dir"]
    recheck = json.load(open(os.path.join(exp, "base", "tiny-llama", "base_recheck.json")))
    # 50 of the base model's items, re-generated on the same warm transformers engine: greedy, so all equal
    assert recheck["items"] == 50 and recheck["identical"] == 50
    assert recheck["environment"] == recheck["first_environment"]
    report = open(summary["report"]).read()
    assert "Base re-check at the end of the sweep: 50/50 greedy answers equal the first scoring" in report
    assert "Scored with transformers" in report
