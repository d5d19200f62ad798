"""Experiment tracking through Ray Tune's own callbacks: the sweep file's `tracking:` section.

    tracking:
      mlflow: {tracking_uri: http://mlflow.internal:5000, experiment_name: seed}   # both optional
      wandb: {project: distill, mode: offline}                                     # offline by default

    check_tracking(sweep, "sweeps/x.yaml")         # ConfigError (exit 2) when a package is not installed
    callbacks = tracking_callbacks(sweep, exp_dir)  # Tune callbacks for RunConfig(callbacks=...)
    log_report(sweep, exp_dir)                      # at the end: report.md, results.*, plots as artifacts

One run per trial in each tracker (Tune's MLflowLoggerCallback and WandbLoggerCallback): the trial's configuration
(its name, teacher, student, domain and extra axes: the `trial` entry of Tune's config) as parameters, and every
number of every checkpoint's results.jsonl row (records.TrialRow: scores, CIs, n, format-failure rates, responses
cut at max_new_tokens, loss, step) as metrics, plus Tune's own counters. At the end one more run, "<sweep>-report",
holds the report and plots as artifacts. Without a `tracking_uri`, MLflow writes a file store under the experiment
(tracking/mlflow; MLflow 3 wants MLFLOW_ALLOW_FILE_STORE=true for it, which this module sets for that case only);
W&B offline runs go under tracking/wandb (`wandb sync` uploads them).

Nothing secret is logged: the trial configuration holds names, never keys (keys come from the environment and
stay there), and no environment is logged. Not guaranteed: Tune's counters (time_this_iter_s, ...) and W&B's
system metrics come with the rows; a tracker that is unreachable mid-run fails that callback (Tune logs the error)
but not the trial.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from typing import Any

from distill_ray import experiment as ex
from distill_ray.config import ConfigError, SweepConfig

_PACKAGES = {"mlflow": ("mlflow", "distill-ray[mlflow]"), "wandb": ("wandb", "distill-ray[wandb]")}


def check_tracking(sweep: SweepConfig, file: str = "<sweep>") -> None:
    """ConfigError naming the key and the extra to install when a configured tracker's package is missing."""
    for name, (module, extra) in _PACKAGES.items():
        if getattr(sweep.tracking, name) is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(file, f"tracking.{name}", f"the {module} package is not installed "
                                                        f"(pip install '{extra}')")


def mlflow_uri(sweep: SweepConfig, exp_dir: str) -> str:
    """The MLflow tracking URI of the sweep: its own, or a file store under the experiment."""
    uri = sweep.tracking.mlflow.tracking_uri if sweep.tracking.mlflow else None
    if uri:
        return uri
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store without it (mlflow-skinny has
    # no database backend); only set when the sweep uses the experiment's own file store
    return "file://" + os.path.join(os.path.abspath(ex.tracking_dir(exp_dir)), "mlflow")


def mlflow_experiment(sweep: SweepConfig) -> str:
    return (sweep.tracking.mlflow.experiment_name if sweep.tracking.mlflow else None) or sweep.name


def wandb_dir(exp_dir: str) -> str:
    return os.path.join(os.path.abspath(ex.tracking_dir(exp_dir)), "wandb")


def _wandb_callback(sweep: SweepConfig, exp_dir: str) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    class KeylessWhenOffline(WandbLoggerCallback):
        """Tune's callback; an offline or disabled run needs no API key (Tune's setup asks for one unless
        WANDB_MODE is set in the environment, which the sweep does not change)."""

        def setup(self, *args: Any, **kwargs: Any) -> None:
            if self.kwargs.get("mode") in ("offline", "disabled"):
                return
            super().setup(*args, **kwargs)

    config = sweep.tracking.wandb
    os.makedirs(wandb_dir(exp_dir), exist_ok=True)
    # Tune waits up to upload_timeout at the experiment's end for each trial's W&B actor to finish; an offline run
    # uploads nothing, so a stuck actor must not hold the sweep for Tune's default 30 minutes
    return KeylessWhenOffline(project=config.project, group=config.group or sweep.name, mode=config.mode,
                              dir=wandb_dir(exp_dir), upload_timeout=1800 if config.mode == "online" else 120)


def tracking_callbacks(sweep: SweepConfig, exp_dir: str) -> list[Any]:
    """Tune callbacks for the sweep's `tracking:` section (none when it is empty)."""
    callbacks: list[Any] = []
    if sweep.tracking.mlflow is not None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=mlflow_uri(sweep, exp_dir),
                                              experiment_name=mlflow_experiment(sweep),
                                              tags={"distill_ray.sweep": sweep.name}))
    if sweep.tracking.wandb is not None:
        callbacks.append(_wandb_callback(sweep, exp_dir))
    return callbacks


def report_files(exp_dir: str) -> list[str]:
    """The report's files that go to the trackers: report.md, results.json/.csv and every plot."""
    names = [ex.report_file(exp_dir), os.path.join(exp_dir, "results.json"), os.path.join(exp_dir, "results.csv")]
    return [p for p in names if os.path.exists(p)] + sorted(glob.glob(os.path.join(exp_dir, "*.png")))


def log_report(sweep: SweepConfig, exp_dir: str) -> dict[str, Any]:
    """One run per tracker, "<sweep>-report", with the report's files as artifacts; returns where they went."""
    files = report_files(exp_dir)
    logged: dict[str, Any] = {}
    if sweep.tracking.mlflow is not None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=mlflow_uri(sweep, exp_dir))
        experiment = client.get_experiment_by_name(mlflow_experiment(sweep))
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(mlflow_experiment(sweep))
        run = client.create_run(experiment_id, run_name=f"{sweep.name}-report", tags={"distill_ray.sweep": sweep.name})
        for path in files:
            client.log_artifact(run.info.run_id, path)
        client.set_terminated(run.info.run_id)
        logged["mlflow"] = run.info.run_id
    if sweep.tracking.wandb is not None and sweep.tracking.wandb.mode != "disabled":
        import wandb

        config = sweep.tracking.wandb
        run = wandb.init(project=config.project, group=config.group or sweep.name, mode=config.mode,
                         dir=wandb_dir(exp_dir), name=f"{sweep.name}-report", job_type="report", reinit="create_new")
        artifact = wandb.Artifact(f"{sweep.name}-report", type="report")
        for path in files:
            artifact.add_file(path)
        run.log_artifact(artifact)
        logged["wandb"] = run.id
        run.finish()
    return logged
