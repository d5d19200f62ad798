"""Experiment tracking on the real libraries, offline: the session's smoke sweep logs to an MLflow file store (read
back with MLflow's own client) and to W&B in offline mode (its transaction logs read back with W&B's protobuf
schema); every checkpoint row of results.jsonl is there, value for value, and no secret is."""

import glob
import os
import struct

import pytest

from distill_ray import experiment as ex
from distill_ray.config import ConfigError, load_sweep
from distill_ray.tracking import check_tracking, mlflow_uri

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numeric(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def test_mlflow_has_every_checkpoint_row_and_the_report(smoke_run):
    from mlflow import MlflowClient

    sweep, summary = smoke_run
    exp = summary["experiment_dir"]
    client = MlflowClient(tracking_uri=mlflow_uri(sweep, exp))
    experiment = client.get_experiment_by_name("smoke-tests")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    trials = sorted(os.listdir(os.path.join(exp, "trials")))
    assert len(trials) == 2
    for trial in trials:
        rows = ex.read_jsonl(ex.results_file(exp, trial))
        [run] = [r for r in runs.values() if r.data.params.get("trial/name") == trial]
        assert run.data.params["trial/teacher"] == rows[0]["teacher"]
        for key in _numeric(rows[0]):
            history = [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
            assert history == pytest.approx([float(row[key]) for row in rows]), key
        assert len(rows) == 2  # steps 50 and 100
    report = runs["smoke-report"]
    names = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"report.md", "results.json", "results.csv"} <= names and any(n.endswith(".png") for n in names)


def wandb_records(path: str):
    """The records of a W&B transaction log (run-*.wandb) as wandb's own protobuf Records. The file is a LevelDB-style
    log, as wandb-core writes it: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a
    7-byte header (CRC32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:4] == b":W&B", path
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block  # the block's tail is padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_runs_have_every_checkpoint_row(smoke_run):
    import json

    _, summary = smoke_run
    exp = summary["experiment_dir"]
    histories, report_runs = {}, []
    for path in glob.glob(os.path.join(ex.tracking_dir(exp), "wandb", "wandb", "offline-run-*", "run-*.wandb")):
        records = list(wandb_records(path))
        kinds = [r.WhichOneof("record_type") for r in records]
        run = records[kinds.index("run")].run
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        for r, kind in zip(records, kinds):
            if kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        if run.display_name == "smoke-report":
            report_runs.append(path)
            continue
        histories[config["trial"]["name"]] = [
            {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            for r, kind in zip(records, kinds) if kind == "history"]
    assert len(report_runs) == 1
    trials = sorted(os.listdir(os.path.join(exp, "trials")))
    assert sorted(histories) == trials
    for trial in trials:
        rows = ex.read_jsonl(ex.results_file(exp, trial))
        for key in _numeric(rows[0]):
            logged = [entry[key] for entry in histories[trial] if key in entry]
            assert logged == pytest.approx([float(r[key]) for r in rows]), key


def test_no_secret_reaches_any_tracking_output(smoke_run, fake_secret):
    _, summary = smoke_run
    exp = summary["experiment_dir"]
    files = [p for p in glob.glob(os.path.join(ex.tracking_dir(exp), "**", "*"), recursive=True) if os.path.isfile(p)]
    assert len(files) > 10
    for path in files:
        with open(path, "rb") as handle:
            assert fake_secret.encode() not in handle.read(), path


def test_a_missing_package_is_a_config_error_naming_the_key(monkeypatch):
    import importlib.util

    sweep = load_sweep(os.path.join(ROOT, "sweeps", "smoke.yaml"), ["tracking.wandb.project=x"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError) as exc:
        check_tracking(sweep, "s.yaml")
    assert str(exc.value) == "s.yaml: tracking.wandb: the wandb package is not installed (pip install " \
                             "'distill-ray[wandb]')"


def test_tracking_section_is_strict():
    with pytest.raises(ConfigError) as exc:
        load_sweep(os.path.join(ROOT, "sweeps", "smoke.yaml"), ["tracking.wandb.project=x", "tracking.wandb.mode=on"])
    assert "tracking.wandb.mode" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_sweep(os.path.join(ROOT, "sweeps", "smoke.yaml"), ["tracking.neptune.project=x"])
    assert "tracking.neptune" in str(exc.value)
