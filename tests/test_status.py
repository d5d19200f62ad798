"""`distill-ray status`: a synthetic experiment directory caught mid-run (every figure asserted), the CLI, the
sweep's periodic printer, and a finished smoke sweep whose status equals its results and traces summaries."""

import io
import json
import os

import pytest

from distill_ray import experiment as ex
from distill_ray.cli import main
from distill_ray.config import load_sweep
from distill_ray.status import read_status
from distill_ray.status_view import StatusPrinter, print_status, status_lines
from distill_ray.sweep import grid_trials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1_800_000_000.0


def _score(benchmark: str, step: int, accuracy: float) -> dict:
    return {"benchmark": benchmark, "step": step, "samples": step * 16, "n": 40, "correct": int(accuracy * 40),
            "accuracy": accuracy, "ci95_low": 0.0, "ci95_high": 1.0, "format_failures": 0, "errors": 0,
            "base_correct": int(accuracy * 40), "length_capped": 0}


@pytest.fixture
def running(tmp_path):
    """The smoke sweep's directory as it would be mid-run: concise/math generated and verified, verbose/math half
    generated; the concise trial at step 75 of 100 with step 50 scored; the verbose trial waiting; base scored."""
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "smoke.yaml"), [f"storage={tmp_path}"])
    exp = sweep.experiment_dir()
    ex.write_json(ex.sweep_file(exp), sweep.model_dump())
    for bench in sweep.evaluation.benchmarks:
        ex.write_jsonl(ex.benchmark_file(exp, bench.name), [])
    ex.mark_done(ex.problems_dir(exp, "math"), {})
    concise = ex.traces_dir(exp, "concise", "math")
    ex.write_json(os.path.join(concise, "generated.json"), {
        "rows": 300, "failed": 3, "permanent_failures": 2, "cost_usd": 0.25, "spent_before_usd": 0.0,
        "wall_s": 12.0, "complete": True})
    ex.mark_done(concise, {})
    ex.write_json(ex.generation_progress_file(exp, "verbose", "math"), {
        "teacher": "verbose", "rows_total": 300, "rows_done": 100, "requests": 100, "cost_usd": 0.05,
        "spent_before_usd": 0.01, "max_cost_usd": None, "errors": {"timeout": 4}, "elapsed_s": 20.0,
        "updated": NOW - 1})
    trial = grid_trials(sweep)[0]["name"]
    assert trial.startswith("concise__")
    ex.write_json(ex.train_progress_file(exp, trial), {"step": 75, "steps": 100, "loss": 1.5, "started": NOW - 30,
                                                       "started_step": 0, "updated": NOW})
    for step in (50,):
        folder = os.path.join(ex.train_dir(exp, trial), "ray_train", f"step-{step:06d}")
        os.makedirs(folder)
        open(os.path.join(folder, "COMPLETE"), "w").close()
    ex.write_json(os.path.join(ex.eval_dir(exp, trial, 50), "scores.json"),
                  [_score("mini-math", 50, 0.6), _score("mini-code", 50, 0.1)])
    ex.write_json(os.path.join(ex.base_dir(exp, "tiny-llama"), "scores.json"),
                  [_score("mini-math", 0, 0.05), _score("mini-code", 0, 0.0)])
    return exp, trial


def test_running_experiment_every_figure(running):
    exp, trial = running
    status = read_status(exp, now=NOW)
    assert status["stages"] == {"benchmarks": "done", "problems": "done", "generate": "running",
                                "verify": "running", "train+evaluate": "running", "report": "waiting"}
    concise, verbose = status["teachers"]
    assert (concise["generate"], concise["verify"], concise["rows_done"], concise["rows_total"]) == (
        "done", "done", 300, 300)
    assert (concise["failures"], concise["permanent_failures"], concise["cost_usd"]) == (3, 2, 0.25)
    assert (verbose["generate"], verbose["verify"], verbose["rows_done"], verbose["rows_total"]) == (
        "running", "waiting", 100, 300)
    assert verbose["failures"] == 4 and verbose["cost_usd"] == 0.05 and verbose["spent_before_usd"] == 0.01
    assert verbose["rate_rows_s"] == pytest.approx(5.0) and verbose["seconds_left"] == pytest.approx(40.0)
    first, second = status["trials"]
    assert first["trial"] == trial and first["state"] == "running"
    assert (first["step"], first["steps"], first["last_scored_step"]) == (75, 100, 50)
    assert first["scores"] == {"mini-math": 0.6, "mini-code": 0.1}
    assert first["rate_steps_s"] == pytest.approx(2.5) and first["seconds_left"] == pytest.approx(10.0)
    assert first["queued_steps"] == []
    assert second["state"] == "waiting" and second["step"] == 0 and second["scores"] == {}
    assert status["pools"] == {"tiny-llama": {"queued": 0}}
    assert status["base"] == {"tiny-llama": {"mini-math": 0.05, "mini-code": 0.0}}
    # 10 s left on the running trial; the waiting one runs beside it (2 concurrent) in 100 steps / 2.5 per s
    assert status["estimated_end"] == pytest.approx(NOW + 10.0 + 40.0)
    assert status["finished"] is False


def test_a_persisted_unscored_checkpoint_is_in_its_pools_queue(running):
    exp, trial = running
    folder = os.path.join(ex.train_dir(exp, trial), "ray_train", "step-000100")
    os.makedirs(folder)
    open(os.path.join(folder, "COMPLETE"), "w").close()
    os.makedirs(os.path.join(ex.train_dir(exp, trial), "ray_train", "step-000150"))  # no COMPLETE: not persisted
    status = read_status(exp, now=NOW)
    assert status["trials"][0]["queued_steps"] == [100]
    assert status["trials"][0]["step"] == 100
    assert status["pools"]["tiny-llama"]["queued"] == 1


def test_plain_lines_and_bars(running):
    exp, trial = running
    status = read_status(exp, now=NOW)
    lines = status_lines(status)
    assert lines[0].startswith("smoke: benchmarks done | problems done | generate running")
    assert any("teacher verbose/math: generate running" in line and "rows 100/300" in line and "$0.0600" in line
               and "5.0 rows/s" in line and "left 0m40s" in line for line in lines)
    assert any(f"trial {trial}: running, step 75/100" in line and "mini-math 60.0%" in line for line in lines)
    assert any("pool tiny-llama: 0 queued" in line for line in lines)
    stream = io.StringIO()
    print_status(status, stream, bars=True, width=160)  # rich's progress bars, rendered to a plain stream
    text = stream.getvalue()
    assert "concise/math" in text and trial in text and "$0.0600" in text
    assert "75%" in text and "33%" in text  # the trial's bar (75/100 steps) and verbose/math's (100/300 rows)


def test_cli_status_json_and_errors(running, capsys, tmp_path):
    exp, _ = running
    assert main(["status", exp, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trials"][0]["step"] == 75
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "no experiment here" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["status", exp, "--watch", "0"])
    assert exc.value.code == 2


def test_status_printer_prints_the_lines_at_its_interval(running):
    exp, _ = running
    stream = io.StringIO()
    with StatusPrinter(exp, interval_s=0.05, stream=stream) as printer:
        while printer.printed < 2:
            pass
    assert stream.getvalue().count("smoke: benchmarks done") >= 2


def test_finished_smoke_sweep_status_equals_its_results(smoke_run):
    sweep, summary = smoke_run
    exp = summary["experiment_dir"]
    status = read_status(exp)
    assert status["finished"] and set(status["stages"].values()) == {"done"}
    assert status["profile"] == summary["profile"] and status["estimated_end"] == summary["finished"]
    for row in status["trials"]:
        results = ex.read_jsonl(ex.results_file(exp, row["trial"]))
        assert row["state"] == "done" and row["step"] == sweep.training.steps and row["seconds_left"] == 0
        assert row["last_scored_step"] == results[-1]["step"]
        assert row["scores"] == {b.name: results[-1][f"{b.name}/accuracy"] for b in sweep.evaluation.benchmarks}
        assert ex.read_json(ex.train_progress_file(exp, row["trial"]))["step"] == sweep.training.steps
    for row in status["teachers"]:
        generated = ex.read_json(os.path.join(ex.traces_dir(exp, row["teacher"], row["domain"]), "generated.json"))
        assert row["cost_usd"] == generated["cost_usd"] and row["rows_done"] == generated["rows"]
        progress = ex.read_json(ex.generation_progress_file(exp, row["teacher"], row["domain"]))
        assert progress["rows_done"] == progress["rows_total"] == generated["rows"]
    assert status["pools"] == {s: {"queued": 0} for s in sweep.grid.students}
    assert status_lines(status)[-1].startswith("  time: ") and "trials (train + evaluate)" in status_lines(status)[-1]


def test_status_read_while_the_smoke_sweep_ran(smoke_run, smoke_run_statuses):
    sweep, summary = smoke_run
    statuses = smoke_run_statuses
    assert len(statuses) > 10 and not any(s["finished"] for s in statuses)
    mid = [s for s in statuses if s["stages"]["train+evaluate"] == "running"]
    assert mid, "no read saw the trials running"
    # a trial between its first step and its last, and a scored checkpoint before the end
    assert any(0 < t["step"] < sweep.training.steps for s in mid for t in s["trials"])
    assert any(t["last_scored_step"] == sweep.training.checkpoint_every for s in mid for t in s["trials"])
    assert all(s["teachers"][0]["cost_usd"] > 0 for s in mid)  # generation was paid for before any trial ran
    for name in (t["name"] for t in grid_trials(sweep)):  # a trial's step never goes back
        steps = [t["step"] for s in statuses for t in s["trials"] if t["trial"] == name]
        assert steps == sorted(steps)
