"""Fixtures shared by the stage test folders."""

import os
from pathlib import Path

import pytest
import torch

# The real MATH-500 and MBPP+ files lie beside the checkout (../shared/benchmarks), as CI lays them; never in the repo.
SHARED_BENCHMARKS = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks"


@pytest.fixture
def shared_benchmarks() -> Path:
    """The folder of the real benchmark files; the test is skipped where they are not present."""
    path = SHARED_BENCHMARKS.resolve()
    if not (path / "math500.jsonl").exists() or not (path / "MbppPlus-v0.2.0.jsonl.gz").exists():
        pytest.skip("shared benchmark files not present")
    return path


@pytest.fixture(scope="session")
def private_model_cache(tmp_path_factory):
    """Build the tiny students once per session in a private folder (never the user's ~/.cache)."""
    old = os.environ.get("DISTILL_RAY_CACHE")
    os.environ["DISTILL_RAY_CACHE"] = str(tmp_path_factory.mktemp("distill-ray-cache"))
    torch.set_num_threads(1)  # 2 shared cores: oversubscribed OpenMP threads spin and crawl
    yield
    if old is None:
        os.environ.pop("DISTILL_RAY_CACHE", None)
    else:
        os.environ["DISTILL_RAY_CACHE"] = old


@pytest.fixture
def benchmark_script():
    """Load a script of benchmarks/ as a module (they are scripts, not a package): `benchmark_script("x")`."""
    import importlib.util

    def load(name: str):
        path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", f"{name}.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


# A key-shaped value the smoke run's environment holds: no tracking output may contain it (tests/test_tracking.py).
FAKE_SECRET = "sk-or-v1-cockpit-fake-0123456789abcdef"


@pytest.fixture
def fake_secret() -> str:
    """The fake API key the smoke run's environment holds (see smoke_run)."""
    return FAKE_SECRET


_SMOKE_STATUSES: list[dict] = []


class _StatusWatcher:
    """Reads `distill-ray status` of an experiment every second from a thread, as a user beside the job would."""

    def __init__(self, exp_dir: str) -> None:
        import threading

        self.exp_dir, self.statuses = exp_dir, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from distill_ray.status import read_status

        while not self.stop.wait(1.0):
            try:
                self.statuses.append(read_status(self.exp_dir))
            except FileNotFoundError:
                pass  # sweep.json not written yet

    def __enter__(self) -> "_StatusWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture(scope="session")
def smoke_run_statuses(smoke_run) -> list[dict]:
    """The status of the session's smoke sweep read every second while it ran (read_status's dicts, in order)."""
    return list(_SMOKE_STATUSES)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """sweeps/smoke.yaml run once per session on a local Ray of 2 CPUs: (sweep, run_sweep's summary). Tests read it;
    a test that rewrites files works on its own copy of summary["experiment_dir"]. Tracking is on (an MLflow file
    store and W&B offline, both inside the experiment), the status view prints every 2 s, and a fake API key sits in
    the environment."""
    import ray

    from distill_ray.config import load_sweep
    from distill_ray.sweep import run_sweep

    storage = tmp_path_factory.mktemp("smoke")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sweep = load_sweep(os.path.join(root, "sweeps", "smoke.yaml"), [
        f"storage={storage}", "tracking.mlflow.experiment_name=smoke-tests", "tracking.wandb.project=smoke-tests",
        "status_interval_s=2"])
    saved = {k: os.environ.get(k) for k in ("OPENROUTER_API_KEY", "WANDB_SILENT")}
    os.environ.update(OPENROUTER_API_KEY=FAKE_SECRET, WANDB_SILENT="true")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    watcher = _StatusWatcher(sweep.experiment_dir())
    try:
        with watcher:
            summary = run_sweep(sweep)
    finally:
        ray.shutdown()
        _SMOKE_STATUSES[:] = watcher.statuses
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return sweep, summary
