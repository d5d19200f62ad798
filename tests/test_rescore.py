"""`distill-ray rescore` on a finished smoke experiment (sweeps/smoke.yaml, storage under tmp): rescoring with the same
judges reproduces every stored score, a changed judge changes them, an interrupted rescore leaves the old files
intact, and a malformed responses file exits 2 naming file, line and field with nothing written."""

import glob
import json
import os
import shutil

import pytest

from distill_ray import files as files_module
from distill_ray.cli import main
from distill_ray.stages.rescore import rescore_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def finished(smoke_run):
    """The session's finished smoke experiment (tests/conftest.py), never rewritten in place."""
    return smoke_run[1]["experiment_dir"]


@pytest.fixture
def experiment(finished, tmp_path):
    """A private copy of the finished experiment (each test rewrites its own)."""
    copy = str(tmp_path / "exp")
    shutil.copytree(finished, copy, ignore=shutil.ignore_patterns("tune"))
    return copy


def _files(exp: str) -> dict[str, bytes]:
    paths = glob.glob(os.path.join(exp, "base", "*", "*")) + glob.glob(os.path.join(exp, "trials", "*", "eval", "*",
                                                                                    "*"))
    paths += glob.glob(os.path.join(exp, "trials", "*", "results.jsonl"))
    return {p: open(p, "rb").read() for p in sorted(paths)}


def _scores(exp: str) -> dict[str, list]:
    return {p: json.loads(b) for p, b in _files(exp).items() if p.endswith("scores.json")}


def test_rescore_with_todays_judges_reproduces_the_stored_scores(experiment):
    before = _files(experiment)
    assert sum(p.endswith("responses.jsonl") for p in before) >= 5  # the base model and every checkpoint
    summary = rescore_experiment(experiment)
    after = _files(experiment)
    assert summary["changed_verdicts"] == 0 and summary["responses"] > 0
    assert after.keys() == before.keys()
    for path in before:
        if path.endswith(".json") or path.endswith(".jsonl"):
            old = [json.loads(line) for line in before[path].splitlines()] if path.endswith("l") else \
                json.loads(before[path])
            new = [json.loads(line) for line in after[path].splitlines()] if path.endswith("l") else \
                json.loads(after[path])
            assert new == old, path
    assert os.path.exists(summary["report"])
    assert not glob.glob(os.path.join(experiment, "**", "*.tmp*"), recursive=True)


def test_a_changed_judge_changes_scores_results_and_report(experiment, monkeypatch):
    import distill_ray.evaluate as evaluate

    real = evaluate.score_responses

    def strict_math(problems, responses, **kwargs):
        items = real(problems, responses, **kwargs)
        if kwargs.get("benchmark") == "mini-math":  # a judge that now rejects every math answer
            items = [{**i, "verdict": "fail", "reason": "wrong_answer", "base_status": "fail"} for i in items]
        return items

    before = _scores(experiment)
    assert any(s["benchmark"] == "mini-math" and s["correct"] > 0 for v in before.values() for s in v)
    monkeypatch.setattr(evaluate, "score_responses", strict_math)
    summary = rescore_experiment(experiment)
    assert summary["changed_verdicts"] > 0
    for path, scores in _scores(experiment).items():
        for new, old in zip(scores, before[path], strict=True):
            if new["benchmark"] == "mini-math":
                assert (new["correct"], new["accuracy"], new["n"]) == (0, 0.0, old["n"])
            else:
                assert new == old
    for path in glob.glob(os.path.join(experiment, "trials", "*", "results.jsonl")):
        for row in map(json.loads, open(path)):
            assert row["mini-math/accuracy"] == 0.0 and row["mini-code/n"] == 20
    data = json.load(open(os.path.join(experiment, "results.json")))
    assert all(r["mini-math/accuracy"] == 0.0 for r in data["trials"])


@pytest.mark.parametrize("where", ["judging", "writing"])
def test_an_interrupted_rescore_leaves_the_old_scores_intact(experiment, monkeypatch, where):
    import distill_ray.evaluate as evaluate

    before = _files(experiment)
    calls = {"n": 0}
    if where == "judging":
        real = evaluate.score_responses

        def failing(problems, responses, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("injected: judge died mid-way")
            return real(problems, responses, **kwargs)

        monkeypatch.setattr(evaluate, "score_responses", failing)
    else:
        real_write = files_module._write_temp

        def failing_write(path, text):
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError("injected: disk full")
            return real_write(path, text)

        monkeypatch.setattr(files_module, "_write_temp", failing_write)
    with pytest.raises((RuntimeError, OSError), match="injected"):
        rescore_experiment(experiment)
    assert _files(experiment) == before
    assert not glob.glob(os.path.join(experiment, "**", "*.tmp*"), recursive=True)


def test_a_responses_row_without_a_field_exits_2_naming_file_line_and_field(experiment, capsys):
    target = sorted(glob.glob(os.path.join(experiment, "trials", "*", "eval", "*", "responses.jsonl")))[-1]
    rows = [json.loads(line) for line in open(target)]
    del rows[1]["response"]
    with open(target, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    before = _files(experiment)
    assert main(["rescore", experiment]) == 2
    err = capsys.readouterr().err
    assert f"{target}:2: missing field 'response'" in err
    assert _files(experiment) == before
