"""Interrupt the sweep driver mid-run, resume it: nothing paid twice, no finished trial redone."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from distill_ray.builtin_problems import make_problems
from distill_ray.config import TeacherConfig
from distill_ray.teacher import generate_traces, start_teacher_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_sweep(storage: str, base_url: str) -> dict:
    with open(os.path.join(ROOT, "sweeps", "smoke.yaml")) as handle:
        data = yaml.safe_load(handle)
    data["name"] = "resume"
    data["storage"] = storage
    del data["teacher_server"]
    data["teachers"] = {"concise": {"provider": "openai-compatible", "base_url": base_url, "model": "sim/concise",
                                    "sampling": {"temperature": 0.7, "max_tokens": 256}, "concurrency": 8}}
    data["domains"]["math"]["source"]["n"] = 120
    data["training"].update(samples=320, global_batch=8, micro_batch=8, checkpoint_every=20)
    data["evaluation"] = {"benchmarks": [{"name": "mini-math", "subset": 8}], "max_new_tokens": 24, "batch_size": 8}
    data["grid"] = {"teachers": ["concise"], "students": ["tiny-llama"], "domains": ["math"],
                    "extra": {"training.learning_rate": [0.002, 0.003]}}
    data["max_concurrent_trials"] = 1
    return data


def _sweep(path: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distill_ray.cli", "sweep", path, "--num-cpus", "2", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_killed_driver_resumes_without_paying_twice_or_rerunning_a_finished_trial(tmp_path):
    server = start_teacher_server(teachers={"sim/concise": {"style": "concise", "correct_rate": 0.75}})
    try:
        path = tmp_path / "resume.yaml"
        path.write_text(yaml.safe_dump(_tiny_sweep(str(tmp_path / "runs"), server.base_url)))
        exp = tmp_path / "runs" / "resume"
        trials = [f"concise__tiny-llama__math_learning_rate={lr}" for lr in (0.002, 0.003)]
        first_done = exp / "trials" / trials[0] / "done.json"

        proc = _sweep(str(path))
        deadline = time.time() + 400
        while not first_done.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert first_done.exists(), proc.communicate()[0][-3000:] if proc.poll() is not None else "timed out"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, mid-run
        proc.wait()
        billed_before = server.billed()
        finished_stamp = first_done.stat().st_mtime_ns
        results_stamp = (exp / "trials" / trials[0] / "results.jsonl").stat().st_mtime_ns

        again = subprocess.run([sys.executable, "-m", "distill_ray.cli", "sweep", str(path), "--num-cpus", "2"],
                               capture_output=True, text=True)
        assert again.returncode == 2 and "--resume" in again.stderr  # an existing experiment is never overwritten

        resumed = _sweep(str(path), "--resume")
        out, _ = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, out[-3000:]
        assert server.duplicates() == {}, "a teacher response was paid twice"
        assert server.billed() == billed_before == 120, "the resumed run paid for teacher responses again"
        assert first_done.stat().st_mtime_ns == finished_stamp
        assert (exp / "trials" / trials[0] / "results.jsonl").stat().st_mtime_ns == results_stamp
        data = json.load(open(exp / "results.json"))
        assert sorted({r["trial"] for r in data["trials"]}) == trials
    finally:
        server.stop()


def test_builtin_teacher_responses_survive_a_new_server_port(tmp_path):
    problems = make_problems("math", "train", 12, 0)
    teacher = TeacherConfig(provider="builtin", model="sim/concise", style="concise", correct_rate=0.75)
    spec = {"sim/concise": {"style": "concise", "correct_rate": 0.75}}
    first = start_teacher_server(teachers=spec)
    try:
        generate_traces(problems, "concise", teacher.model_copy(update={"base_url": first.base_url}),
                        str(tmp_path / "out1"), cache_dir=str(tmp_path / "cache"), use_ray=False)
        assert first.billed() == 12
    finally:
        first.stop()
    second = start_teacher_server(teachers=spec)
    try:
        summary = generate_traces(problems, "concise", teacher.model_copy(update={"base_url": second.base_url}),
                                  str(tmp_path / "out2"), cache_dir=str(tmp_path / "cache"), use_ray=False)
        assert second.base_url != first.base_url
        assert second.billed() == 0
        assert summary["from_cache"] == 12 and summary["paid"] == 0
    finally:
        second.stop()
