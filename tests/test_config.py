"""Sweep files: every shipped one loads; bad ones fail with exit code 2 and a message naming file and key."""

import copy
import glob
import os

import pytest
import yaml

from distill_ray.cli import main
from distill_ray.config import ConfigError, apply_overrides, load_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "sweeps", "*.yaml")))


def test_the_three_documented_sweeps_are_shipped():
    assert {os.path.basename(p) for p in SHIPPED} >= {"local.yaml", "seed.yaml", "smoke.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_every_shipped_sweep_loads(path):
    sweep = load_sweep(path)
    assert sweep.grid.teachers and sweep.grid.students and sweep.grid.domains


def test_seed_sweep_is_the_seed_study():
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml"))
    assert {t.model for t in sweep.teachers.values()} == {"anthropic/claude-sonnet-4.5", "deepseek/deepseek-r1"}
    assert all(t.api_key_env == "OPENROUTER_API_KEY" and "openrouter.ai" in t.base_url
               for t in sweep.teachers.values())
    assert {s.model for s in sweep.students.values()} == {"Qwen/Qwen3-30B-A3B-Base", "meta-llama/Llama-3.1-8B-Instruct"}
    assert {s.lora.r for s in sweep.students.values()} == {32}
    assert {s.deepspeed_stage for s in sweep.students.values()} == {2, 3}
    t = sweep.training
    assert (t.samples, t.learning_rate, t.schedule, t.global_batch, t.max_length, t.checkpoint_every, t.steps) == (
        25_000, 2e-4, "cosine", 50, 4096, 100, 500)
    assert [d.source.n for d in sweep.domains.values()] == [40_000, 40_000]
    assert [b.name for b in sweep.evaluation.benchmarks] == ["math500", "mbppplus"]
    assert sweep.evaluation.evaluate_base


def _local() -> dict:
    with open(os.path.join(ROOT, "sweeps", "local.yaml")) as handle:
        return yaml.safe_load(handle)


def _set(data, path, value):
    data = copy.deepcopy(data)
    apply_overrides(data, [f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}"], "x")
    return data


def _drop(data, path):
    data = copy.deepcopy(data)
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    del node[last]
    return data


BAD = [
    ("unknown top-level key", lambda d: _set(d, "learning_rat", 1), "learning_rat", "unknown key"),
    ("unknown nested key", lambda d: _set(d, "training.lr", 0.1), "training.lr", "unknown key"),
    ("wrong type", lambda d: _set(d, "training.global_batch", "fifty"), "training.global_batch", "integer"),
    ("negative lr", lambda d: _set(d, "training.learning_rate", -0.001), "training.learning_rate", "greater than 0"),
    ("missing problem file", lambda d: _set(d, "domains.math.source",
                                           {"kind": "jsonl", "path": "/nonexistent/p.jsonl", "n": 5,
                                            "mapping": {"problem": "q", "answer": "a"}}),
     "domains.math.source.path", "file not found"),
    ("unknown student architecture", lambda d: _set(d, "students.tiny-llama.model", "builtin:tiny-gpt5"),
     "students.tiny-llama.model", "unknown built-in student architecture"),
    ("grid names an undefined teacher", lambda d: _set(d, "grid.teachers", ["concise", "nobody"]), "(top level)",
     "'nobody'"),
    ("missing required section", lambda d: _drop(d, "evaluation"), "evaluation", "required"),
    ("unknown benchmark", lambda d: _set(d, "evaluation.benchmarks", [{"name": "gsm8k"}]),
     "evaluation.benchmarks.0.name", "unknown benchmark"),
    ("out of range LoRA rank", lambda d: _set(d, "students.tiny-llama.lora.r", 0), "students.tiny-llama.lora.r",
     "greater than or equal to 1"),
]


@pytest.mark.parametrize(("label", "mutate", "key", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_sweep_files_fail_with_exit_2_naming_the_key(tmp_path, capsys, label, mutate, key, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(mutate(_local())))
    with pytest.raises(ConfigError) as info:
        load_sweep(str(path))
    assert info.value.key == key
    assert reason in info.value.reason
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and key in err


def test_missing_sweep_file_exits_2(capsys):
    assert main(["sweep", "/nonexistent/sweep.yaml", "--dry-run"]) == 2
    assert "sweep file not found" in capsys.readouterr().err


def test_overrides_change_typed_values(tmp_path):
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "local.yaml"),
                       ["training.learning_rate=5e-4", "grid.domains=[math]", "students.tiny-llama.lora.r=4"])
    assert sweep.training.learning_rate == 5e-4
    assert sweep.grid.domains == ["math"]
    assert sweep.students["tiny-llama"].lora.r == 4


def test_api_keys_are_named_not_stored():
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml"))
    dumped = yaml.safe_dump(sweep.model_dump())
    assert "OPENROUTER_API_KEY" in dumped
    assert "sk-" not in dumped


def test_relative_storage_is_the_current_directory_and_paths_the_sweep_folder(tmp_path, monkeypatch):
    data = _set(_local(), "domains.math.source", {"kind": "jsonl", "path": "p.jsonl", "n": 5,
                                                   "mapping": {"problem": "q", "answer": "a"}})
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "p.jsonl").write_text('{"q": "1+1?", "a": "2"}\n')
    (tmp_path / "sweeps" / "s.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep("sweeps/s.yaml")
    assert sweep.experiment_dir() == str(tmp_path / "runs" / "local")
    assert sweep.domains["math"].source.path == str(tmp_path / "sweeps" / "p.jsonl")
