"""Each stage alone from a sweep file: generate, then verify (locally and through Ray Data), then evaluate."""

import json
import os

import pytest

from distill_ray.cli import main
from distill_ray.verify import batch as verify_batch_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _args(tmp_path):
    return [os.path.join(ROOT, "sweeps", "smoke.yaml"), f"storage={tmp_path}", "grid.teachers=[concise]",
            "domains.math.source.n=40", "evaluation.benchmarks=[{name: mini-math, subset: 4}]",
            "evaluation.max_new_tokens=8"]


def test_generate_then_verify_then_evaluate(tmp_path, ray_instance, monkeypatch, capsys):
    folder = tmp_path / "smoke" / "traces" / "concise" / "math"
    assert main(["verify", *_args(tmp_path)]) == 2  # nothing generated yet: a clear error, not a crash
    assert "distill-ray generate" in capsys.readouterr().err

    assert main(["generate", *_args(tmp_path)]) == 0
    assert (folder / "generated.json").exists() and not (folder / "done.json").exists()

    assert main(["verify", *_args(tmp_path)]) == 0
    local = [json.loads(line) for line in open(folder / "verified.jsonl")]
    assert len(local) == 40 and {r["verdict"] for r in local} <= {"pass", "fail"}

    # the same traces judged across the cluster with Ray Data give the same verdicts, in the same order
    monkeypatch.setattr(verify_batch_module, "RAY_DATA_VERIFY_MIN_ROWS", 1)
    assert main(["verify", *_args(tmp_path), "--force"]) == 0
    distributed = [json.loads(line) for line in open(folder / "verified.jsonl")]
    assert [(r["problem_id"], r["verdict"], r["reason"]) for r in distributed] == [
        (r["problem_id"], r["verdict"], r["reason"]) for r in local]
    stats = json.load(open(folder / "done.json"))["statistics"]
    assert stats["n"] == 40 and stats["passed"] == sum(r["verdict"] == "pass" for r in local)

    capsys.readouterr()
    assert main(["evaluate", *_args(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["student"] == "tiny-llama" and printed["scores"][0]["n"] == 4

    # one trial alone, without Tune or Ray Train: 10 steps, a checkpoint every 5, both evaluated
    capsys.readouterr()
    assert main(["train", *_args(tmp_path), "training.samples=160", "training.checkpoint_every=5",
                 "--trial", "concise__tiny-llama__math", "--no-ray"]) == 0
    rows = [json.loads(line) for line in open(tmp_path / "smoke" / "trials" / "concise__tiny-llama__math" /
                                              "results.jsonl")]
    assert [r["step"] for r in rows] == [5, 10] and all(r["mini-math/n"] == 4 for r in rows)
    assert main(["train", *_args(tmp_path), "--trial", "nobody__tiny-llama__math"]) == 2
