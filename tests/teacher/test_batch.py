"""Batch mode against the simulated OpenRouter batch endpoints (`batch_sim.py`): one behaviour per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.config import TeacherConfig
from distill_ray.teacher import batch as batch_mod
from distill_ray.teacher import generate_traces
from distill_ray.teacher.batch import BatchRunner, ledger_dir, open_ledgers
from distill_ray.teacher.batch_api import OpenRouterBatches
from distill_ray.teacher.cache import namespace
from distill_ray.teacher.parts import read_traces
from distill_ray.teacher.spec import teacher_spec

R1 = "deepseek/r1-sim"
TEACHERS = {R1: {"style": "verbose", "correct_rate": 0.6}}
FAST = {"poll_initial_s": 0.05, "poll_max_s": 0.2}


@pytest.fixture
def problems():
    return make_problems("math", "train", 12, seed=5)


@pytest.fixture
def batches(server_factory):
    def start(**options):
        return server_factory(teachers=TEACHERS, profile={"batches": {"complete_after_s": 0.2, **options}})

    return start


def teacher(base_url: str, **overrides) -> TeacherConfig:
    values = {"provider": "openrouter", "base_url": base_url, "model": R1, "sampling": {"max_tokens": 2048},
              "request_timeout_s": 5.0, "retry_base_delay_s": 0.02, "retry_max_delay_s": 0.2, "mode": "batch",
              "batch": dict(FAST)}
    batch = overrides.pop("batch", {})
    values.update(overrides)
    values["batch"] = {**values["batch"], **batch}
    return TeacherConfig(**values)


def run(problems, config, tmp_path, out="out", **kwargs):
    return generate_traces(problems, "r1", config, str(tmp_path / out), cache_dir=str(tmp_path / "cache"),
                           progress_interval_s=0, use_ray=False, **kwargs)


def rows(tmp_path, out="out"):
    return read_traces(os.path.join(tmp_path, out))  # batch mode writes part files as batches settle


def ledgers(tmp_path, base_url):
    folder = ledger_dir(str(tmp_path / "cache"), namespace(base_url, R1))
    return [json.load(open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))] if os.path.isdir(folder) \
        else []


def http(method, url, body=None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_simulator_endpoints_follow_the_documented_lifecycle(batches):
    server = batches(complete_after_s=0.3, max_requests=3)
    url = server.base_url
    body = {"endpoint": "/v1/chat/completions", "model": R1, "metadata": {"distill_ray_tag": "t1"},
            "requests": [{"custom_id": f"s0-{i}", "body": {"messages": [{"role": "user", "content": f"q{i}"}]}}
                         for i in range(2)]}
    status, created = http("POST", f"{url}/batches", body)
    assert status == 202 and created["status"] == "validating" and created["results"] is None
    assert http("DELETE", f"{url}/batches/{created['id']}")[0] == 409  # only a finished batch can be deleted
    assert http("GET", f"{url}/batches/{created['id']}/results")[0] == 409
    too_many = {**body, "requests": body["requests"] * 2}
    assert http("POST", f"{url}/batches", too_many)[0] == 400  # over max_requests (and custom_id repeated)
    listed = http("GET", f"{url}/batches?limit=10")[1]
    assert [b["metadata"] for b in listed["data"]] == [{"distill_ray_tag": "t1"}] and listed["data"][0]["results"] \
        is None
    time.sleep(0.35)
    done = http("GET", f"{url}/batches/{created['id']}")[1]
    assert done["status"] == "completed" and done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    page = http("GET", f"{url}/batches/{created['id']}/results?limit=1")[1]
    assert len(page["data"]) == 1 and page["next_cursor"] == "1" and page["data"][0]["response"]["usage"]["cost"] > 0
    assert http("DELETE", f"{url}/batches/{created['id']}")[0] == 200
    assert server.billed() == 2


def test_batch_mode_costs_half_and_stores_what_online_stores(batches, server_factory, problems, tmp_path):
    batch_server = batches()
    online_server = batches()
    summary = run(problems, teacher(batch_server.base_url), tmp_path, out="batch", probe=False)
    online = generate_traces(problems, "r1", teacher(online_server.base_url, mode="online"), str(tmp_path / "online"),
                             cache_dir=str(tmp_path / "cache_online"), progress_interval_s=0, use_ray=False,
                             probe=False)
    assert summary["ok"] == online["ok"] == 12 and summary["paid"] == 12
    assert summary["cost_usd"] == pytest.approx(online["cost_usd"] / 2, rel=1e-6)
    assert batch_server.duplicates() == {} and batch_server.billed() == 12
    by_mode = {mode: {(r["problem_id"], r["sample_index"]): r for r in rows(tmp_path, mode)}
               for mode in ("batch", "online")}
    for key, row in by_mode["online"].items():  # verification and training cannot tell the modes apart
        other = by_mode["batch"][key]
        assert (other["content"], other["reasoning"], other["text"], other["status"]) == \
               (row["content"], row["reasoning"], row["text"], row["status"])
    assert all(ledger["state"] == "settled" and ledger["price"]["factor"] == 0.5
               for ledger in ledgers(tmp_path, batch_server.base_url))
    again = run(problems, teacher(batch_server.base_url), tmp_path, out="batch2", probe=False)
    assert again["paid"] == 0 and again["from_cache"] == 12  # the same cache as online answers


def test_batches_are_sized_to_the_limit(batches, problems, tmp_path):
    server = batches()
    config = teacher(server.base_url, batch={"max_requests_per_batch": 5, "max_batches_in_flight": 1})
    summary = run(problems, config, tmp_path, probe=False)
    sizes = sorted(len(ledger["requests"]) for ledger in ledgers(tmp_path, server.base_url))
    assert summary["ok"] == 12 and sizes == [2, 5, 5] and summary["batches"]["submitted"] == 3
    parts = [n for n in os.listdir(tmp_path / "out") if n.startswith("part-")]
    assert len(parts) == 3  # one part file per settled batch: the driver keeps no trace text


def test_failed_requests_go_into_a_later_batch(batches, problems, tmp_path):
    server = batches(request_error_rate=0.4)
    summary = run(problems, teacher(server.base_url, batch={"max_rounds": 8}), tmp_path, probe=False)
    assert summary["ok"] == 12 and summary["errors_by_kind"]["batch_request_error"] > 0
    assert server.duplicates() == {} and server.billed() == 12
    assert len(ledgers(tmp_path, server.base_url)) > 1


def test_expired_batch_requeues_its_unanswered_requests(batches, problems, tmp_path):
    server = batches(complete_after_s=0.4, expire_after_s=0.2)  # half of each batch answered before it expires
    summary = run(problems, teacher(server.base_url, batch={"max_rounds": 8}), tmp_path, probe=False)
    assert summary["ok"] == 12 and summary["batches"]["expired"] >= 2
    assert server.duplicates() == {} and server.billed() == 12


def test_failed_batch_and_permanent_verdicts_keep_their_reasons(server_factory, problems, tmp_path):
    poison = problems[0]["prompt"][:40]
    server = server_factory(teachers=TEACHERS, profile={"content_filter_prompts": [problems[6]["prompt"][:40]],
                                                        "batches": {"validation_error_prompts": [poison]}})
    summary = run(problems, teacher(server.base_url, batch={"max_rounds": 2, "max_requests_per_batch": 6}),
                  tmp_path, probe=False)
    by_id = {r["problem_id"]: r for r in rows(tmp_path)}
    assert by_id[problems[0]["id"]]["failure"] == "batch_failed" and not by_id[problems[0]["id"]]["permanent"]
    assert by_id[problems[6]["id"]]["failure"] == "content_filter" and by_id[problems[6]["id"]]["permanent"]
    # the poisoned batch of 6 goes again in halves: 3 fail, then 2, then problem 0 alone, in each of its 2 rounds
    assert summary["ok"] == 10 and summary["batches"]["failed"] == 5
    assert server.duplicates() == {}


def test_an_empty_answer_is_asked_again_in_a_later_batch(server_factory, problems, tmp_path):
    server = server_factory(teachers=TEACHERS, profile={"empty_content_prompts": [problems[2]["prompt"]],
                                                        "empty_content_times": 1, "batches": {}})
    summary = run(problems, teacher(server.base_url, empty_retries=2), tmp_path, probe=False)
    assert summary["ok"] == 12 and summary["empty_retried"] == 1  # the online rule, as in test_openrouter
    assert server.billed() == 12 + 1  # the empty answer was billed once and asked again once, nothing else twice


def test_an_always_empty_answer_is_permanent_after_the_retries(server_factory, problems, tmp_path):
    server = server_factory(teachers=TEACHERS, profile={"empty_content_prompts": [problems[2]["prompt"]],
                                                        "batches": {}})
    summary = run(problems, teacher(server.base_url, empty_retries=2), tmp_path, probe=False)
    by_id = {r["problem_id"]: r for r in rows(tmp_path)}
    assert by_id[problems[2]["id"]]["failure"] == "empty_content" and by_id[problems[2]["id"]]["permanent"]
    assert summary["empty_retried"] == 2 and summary["ok"] == 11


def test_budget_holds_on_the_worst_case(server_factory, problems, tmp_path):
    priced = {R1: {**TEACHERS[R1], "price_in_per_mtok": 1.0, "price_out_per_mtok": 100.0}}
    server = server_factory(teachers=priced, profile={"batches": {"complete_after_s": 0.2}})
    # answers cut at max_tokens and priced as the config says, so that what is paid comes close to the worst case
    config = teacher(server.base_url, price={"input_per_mtok": 1.0, "output_per_mtok": 100.0},
                     sampling={"max_tokens": 48}, batch={"max_requests_per_batch": 4})
    runner = BatchRunner(teacher_spec("r1", config), "", "", None)
    worst = max(runner.worst_case_usd(p["prompt"], 48) for p in problems)
    config = config.model_copy(update={"max_cost_usd": worst * 5.5})
    summary = run(problems, config, tmp_path, probe=False)
    assert summary["stopped_by_budget"] and summary["failure_reasons"]["budget"] == 12 - summary["paid"]
    assert 4 <= summary["paid"] < 12 and summary["cost_usd"] <= config.max_cost_usd
    plan = run(problems, config, tmp_path, out="plan", dry_run=True)["plan"]
    assert plan["est_cost_usd_batch"] == pytest.approx(plan["est_cost_usd"] / 2, rel=1e-6)


@pytest.mark.parametrize("resume_mode", ["batch", "online"])
def test_a_lost_batch_id_is_found_by_its_tag(batches, problems, tmp_path, monkeypatch, resume_mode):
    """Killed between the POST and recording its id: the resume (in either mode) finds the batch by its tag and sends
    nothing again, by batch or online."""
    server = batches()
    config = teacher(server.base_url)

    def die_after_post(path, ledger):
        if ledger["state"] == "submitted":
            raise KeyboardInterrupt("killed before the id was recorded")
        real_write(path, ledger)

    real_write = batch_mod._write_ledger
    monkeypatch.setattr(batch_mod, "_write_ledger", die_after_post)
    with pytest.raises(KeyboardInterrupt):
        run(problems, config, tmp_path, probe=False)
    monkeypatch.setattr(batch_mod, "_write_ledger", real_write)
    (planned,) = ledgers(tmp_path, server.base_url)
    assert planned["state"] == "planned" and planned["batch_id"] is None
    summary = run(problems, config.model_copy(update={"mode": resume_mode}), tmp_path, probe=False)
    assert summary["batches_settled_at_start"] == 1 and summary["paid"] == 0 and summary["ok"] == 12
    assert server.counters()["faults"]["batch_answered"] == 12 and server.duplicates() == {}
    assert server.billed() == 12  # nothing online either


def test_a_crash_while_collecting_stores_once_and_pays_once(batches, problems, tmp_path, monkeypatch):
    server = batches()
    config = teacher(server.base_url)
    real_write = batch_mod._write_ledger

    def die_when_settling(path, ledger):
        if ledger["state"] == "settled":  # the answers are in the cache, the ledger not yet marked
            raise KeyboardInterrupt("killed while collecting")
        real_write(path, ledger)

    monkeypatch.setattr(batch_mod, "_write_ledger", die_when_settling)
    with pytest.raises(KeyboardInterrupt):
        run(problems, config, tmp_path, probe=False)
    monkeypatch.setattr(batch_mod, "_write_ledger", real_write)
    summary = run(problems, config, tmp_path, probe=False)
    assert summary["ok"] == 12 and summary["batches_settled_at_start"] == 1
    assert server.billed() == 12 and server.duplicates() == {}
    assert open_ledgers(str(tmp_path / "cache"), namespace(server.base_url, R1)) == []


def test_a_batch_the_provider_no_longer_has_frees_its_requests(batches, problems, tmp_path):
    """Past the provider's result retention (or deleted): the ledger settles as gone and its requests go again."""
    server = batches()
    config = teacher(server.base_url)
    runner = BatchRunner(teacher_spec("r1", config), "", "", None)
    entries = [{k: v for k, v in runner._request(p, 0, 2048).items() if k != "problem"} | {"problem_id": p["id"]}
               for p in problems[:3]]
    folder = ledger_dir(str(tmp_path / "cache"), namespace(server.base_url, R1))
    os.makedirs(folder)
    with open(os.path.join(folder, "old.json"), "w") as handle:
        json.dump({"tag": "old", "state": "submitted", "batch_id": "batch_gone", "created": 0, "requests": entries,
                   "worst_case_usd": 0.0, "price": {"input_per_mtok": 0, "output_per_mtok": 0, "factor": 0.5}},
                  handle)
    summary = run(problems, config, tmp_path, probe=False)
    assert summary["batches_settled_at_start"] == 1 and summary["ok"] == 12 and summary["paid"] == 12
    assert [lg["status"] for lg in ledgers(tmp_path, server.base_url) if lg["tag"] == "old"] == ["gone"]


DRIVER = """
import json, sys
from distill_ray.config import TeacherConfig
from distill_ray.builtin_problems import make_problems
from distill_ray.teacher import generate_traces
config = TeacherConfig(**json.loads(sys.argv[1]))
generate_traces(make_problems("math", "train", 12, seed=5), "r1", config, sys.argv[2] + "/out",
                cache_dir=sys.argv[2] + "/cache", use_ray=False, progress_interval_s=0, probe=False)
"""


@pytest.mark.parametrize("point", ["all_submitted", "one_settled_next_submitted"])
def test_sigkill_between_submission_and_completion_then_resume_pays_nothing_twice(batches, problems, tmp_path,
                                                                                 point):
    """A real driver process SIGKILLed (its process group) at a point, then a resume in this process."""
    server = batches(complete_after_s=2.0 if point == "all_submitted" else 0.5)
    in_flight = 8 if point == "all_submitted" else 1
    config = teacher(server.base_url, batch={"max_requests_per_batch": 5, "max_batches_in_flight": in_flight})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, config.model_dump_json(), str(tmp_path)], env=env,
                              start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            states = sorted(lg["state"] for lg in ledgers(tmp_path, server.base_url))
            if (point == "all_submitted" and states == ["submitted"] * 3) or \
                    (point != "all_submitted" and states == ["settled", "submitted"]):
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"the driver never reached {point}")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    billed_before = server.billed()
    assert billed_before == (0 if point == "all_submitted" else 5)
    summary = run(problems, config, tmp_path)
    assert summary["batches_settled_at_start"] == 1 + (point == "all_submitted") * 2 and summary["ok"] == 12
    assert server.billed() == 12 and server.duplicates() == {}  # 0 paid twice


def test_config_refuses_batch_mode_without_an_implemented_endpoint():
    with pytest.raises(ValueError, match="batch endpoint"):
        TeacherConfig(provider="openai-compatible", base_url="http://x/v1", model="m", mode="batch")
    with pytest.raises(ValueError, match="price_factor"):
        TeacherConfig(provider="openrouter", base_url="http://x/v1", model="m", batch={"price_factor": 0})


def test_provider_finds_nothing_for_an_unknown_tag(batches):
    server = batches()
    assert OpenRouterBatches(server.base_url, "k").find("no-such-tag") is None


def test_cli_mode_batch_dry_run_prints_both_estimates(tmp_path, capsys):
    from distill_ray.teacher.cli import generate_main

    path = tmp_path / "P.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n" for i in range(4)))
    args = ["--base-url", "http://127.0.0.1:9/v1", "--model", R1, "--problems", str(path), "--output",
            str(tmp_path / "o"), "--mode", "batch", "--price-out", "10"]
    assert generate_main([*args, "--provider", "openrouter", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["mode"] == "batch" and plan["est_cost_usd_batch"] == pytest.approx(plan["est_cost_usd"] / 2)
    assert generate_main([*args, "--dry-run"]) == 2  # openai-compatible has no batch endpoint here
    assert "batch endpoint" in capsys.readouterr().err
