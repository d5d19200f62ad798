import json
import os
import subprocess
import sys

import pytest

from distill_ray.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEPS = os.path.join(ROOT, "sweeps")


def test_dry_run_prints_the_plan_of_the_seed_study(capsys):
    assert main(["sweep", os.path.join(SWEEPS, "seed.yaml"), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["trials"] == 8  # 2 teachers x 2 students x 2 domains
    assert plan["teachers"]["sonnet"]["requests"] == 80_000  # 40K problems per domain, 2 domains, 1 sample each
    assert plan["teachers"]["sonnet"]["model"] == "anthropic/claude-sonnet-4.5"
    assert {t["steps"] for t in plan["per_trial"]} == {500}
    assert {t["checkpoints"] for t in plan["per_trial"]} == {5}


def test_dry_run_applies_overrides(capsys):
    assert main(["sweep", os.path.join(SWEEPS, "seed.yaml"), "--dry-run", "grid.domains=[math]",
                 "training.samples=5000"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["trials"] == 4
    assert {t["steps"] for t in plan["per_trial"]} == {100}


def test_bad_override_exits_2_naming_the_key(capsys):
    assert main(["sweep", os.path.join(SWEEPS, "seed.yaml"), "--dry-run", "training.learning_rate=-1"]) == 2
    err = capsys.readouterr().err
    assert "training.learning_rate" in err and "seed.yaml" in err


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"]])
def test_console_script_is_installed(argv):
    result = subprocess.run([sys.executable, "-m", "distill_ray.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 0 and "distill-ray" in result.stdout
