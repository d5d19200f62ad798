"""PhaseClock: phases sum per name, in first-entered order, with "other" and "total" rows; the smoke sweep keeps its
profile in done.json. Time is a fake counter here (no wall-clock assertions)."""

import pytest

from distill_ray import experiment as ex
from distill_ray import profile
from distill_ray.profile import PhaseClock, profile_table


def test_phases_add_up_with_other_and_total(monkeypatch):
    ticks = iter([0.0, 1.0, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0])
    monkeypatch.setattr(profile.time, "perf_counter", lambda: next(ticks))
    clock = PhaseClock()  # starts at 0
    with clock.phase("generate"):  # 1 -> 4
        pass
    with clock.phase("train"):  # 4.5 -> 5
        pass
    with pytest.raises(RuntimeError), clock.phase("generate"):  # 6 -> 8, counted although it raised
        raise RuntimeError("a failed phase still took its time")
    rows = clock.rows()  # total at 10
    assert rows == [{"phase": "generate", "seconds": 5.0, "share": 0.5},
                    {"phase": "train", "seconds": 0.5, "share": 0.05},
                    {"phase": "other", "seconds": 4.5, "share": 0.45},
                    {"phase": "total", "seconds": 10.0, "share": 1.0}]
    assert profile_table(rows).splitlines()[0] == "generate        5.0 s   50.0%"


def test_smoke_sweep_keeps_its_profile_in_done_json(smoke_run):
    _, summary = smoke_run
    done = ex.read_json(ex.sweep_done_file(summary["experiment_dir"]))
    phases = [row["phase"] for row in done["profile"]]
    assert phases[-2:] == ["other", "total"]
    assert {"benchmarks", "problems", "traces concise/math (generate + verify)", "trials (train + evaluate)",
            "report"} <= set(phases)
    assert sum(r["seconds"] for r in done["profile"][:-1]) == pytest.approx(done["profile"][-1]["seconds"], abs=0.1)
    assert done["trials"] == 2 and done["failed_trials"] == 0
