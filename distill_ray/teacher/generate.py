"""The generate stage: problems in, one teacher `Trace` row per (problem, sample) out, as Parquet.

    summary = generate_traces(problems, "sonnet", teacher_config, "exp/traces/sonnet-math", cache_dir="exp/cache")
    plan = plan_generation(problems, teacher_config)           # what a run would send and cost; sends nothing

What is reused before anything is sent: the output folder's rows with status ok (same problem id, sample index,
model and prompt), then the response cache (`cache.py`, keyed by the full request). Only the rest becomes requests.
Requests go out through `TeacherClient`s (`client.py`): with Ray initialised (the sweep's cluster, or from inside a
Ray task or actor), `teacher.actors` async Ray actors share `teacher.concurrency`, a named `RateLimiter` actor per
(endpoint, model) paces the whole cluster, and a `RunLedger` actor sums spending for `max_cost_usd`; without Ray, one
client runs in-process on an event loop. Every billed response is in the cache (fsync'ed) before its row counts, so
killing the process at any moment and running again pays for nothing twice. Every Parquet file is written atomically
(rows of every attempted sample, failed ones with their reason; re-running retries the transient ones).

Before the bulk: the key is checked (`preflight.key_info` on OpenRouter; elsewhere the probe is the key check) and the
first work item is sent alone as a probe (`preflight.check_probe`), its answer stored like every other; a refused key,
an invalid request or a missing required reasoning stops the run there. No paid request is sent whose answer is not
stored. Money: `max_cost_usd` is per teacher (its cache namespace) across domains and resumes: what the cache
records as paid (answers, verdicts, and billed non-answers) is spent before this run starts. On OpenRouter the key's
`usage` is read at start and end and reported beside the ledger. A stop (402 without Retry-After, a 401/403 refusal,
Ctrl-C) starts no new request but waits for the ones already admitted (each bounded by the request timeout) and stores
their answers; then a 402 ends the run with `CreditsExhausted` and a refusal with `FatalTeacherError`, after the output
is written. The summary counts every failure reason (`failure_reasons`) and says
whether the stage is `complete` (every row ok or a permanent failure).

With `teacher.mode == "batch"` the requests go through the provider's batch endpoint instead (`batch.py`: sized batches,
a durable ledger per batch, results judged by the online rules into the same cache, at the batch price); the driver runs
it, without Ray, writing `OUTPUT/part-*.parquet` as batches settle (it keeps no trace text). Whatever the mode, batches
an earlier run submitted for this teacher are settled (polled until they end, answers stored) before the cache is read
for work.

On Ray there are two pipelines (`pipeline=`): "data" (the default) is a Ray Data stage (`dataflow.py`): the work
items as a dataset, `map_batches` with an async `TeacherUDF` on `teacher.actors` actors sharing the limiter and the
ledger, each batch written by its actor as `OUTPUT/part-*.parquet` as soon as it finishes; the driver keeps no trace
text, and a crash leaves every finished part on disk. "actors" is the hand-fed actor pool, which writes
`OUTPUT/traces.parquet` at the end like the in-process path. Output readers use `parts.read_traces`, which reads
either layout and keeps the newest copy of a (problem id, sample index); the in-process and actor paths, which
rewrite every row, remove old parts after their write.

Not guaranteed: two generators that send the same *new* request at the same moment both pay; run one generator per
(teacher, problem set) (the sweep shares traces between trials for that reason). The in-process and actor paths hold
the whole output in memory until the final write. The driver reads the cache through its SQLite index (`CacheIndex`):
a resume holds no stored record, reads each hit from its segment and, on the Ray Data path, writes the hits the output
lacks as parts 250 rows at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from distill_ray.config import TeacherConfig
from distill_ray.files import write_json
from distill_ray.records import Problem, TeacherWorkItem, TraceRow
from distill_ray.teacher.batch import open_ledgers, run_batch_parts, settle_batches
from distill_ray.teacher.cache import ResponseCache, namespace, request_key
from distill_ray.teacher.client import (
    STOP_REASONS,
    CreditsExhausted,
    FatalTeacherError,
    RunLedger,
    TeacherClient,
    build_row,
    failure_reason,
    messages_for,
    prompt_hash,
    resolve_api_key,
    sampling_for,
)
from distill_ray.teacher.parts import (
    OUTPUT_FILE,
    TRACE_COLUMNS,
    iter_trace_columns,
    remove_parts,
    write_part,
    write_table,
)
from distill_ray.teacher.preflight import check_probe, key_info
from distill_ray.teacher.ratelimit import RateLimiter, limiter_name
from distill_ray.teacher.spec import TeacherSpec, teacher_spec

__all__ = ["OUTPUT_FILE", "TRACE_COLUMNS", "generate_traces", "plan_generation", "paid_in_cache"]

def _estimate_prompt_tokens(prompt: str) -> int:
    # chat wrapping adds a few tokens; ~4 characters per token is the usual rule for English text
    return math.ceil(len(prompt) / 4) + 8


def plan_generation(problems: list[Problem], teacher: TeacherConfig, *, skip: int = 0,
                    expected_completion_tokens: int | None = None) -> dict:
    """What generating would send: rows, requests, estimated tokens and dollars (an upper bound by default).

    `skip` rows are already held (cache or output) and cost nothing. Completion tokens are estimated at max_tokens
    per sample unless `expected_completion_tokens` is given, so the dollar figure is a ceiling.
    """
    samples = teacher.samples_per_problem
    rows = len(problems) * samples
    to_send = max(0, rows - skip)
    fraction = to_send / rows if rows else 0.0
    prompt_tokens = sum(_estimate_prompt_tokens(p["prompt"]) for p in problems)
    per_sample = expected_completion_tokens or teacher.sampling.max_tokens
    requests_full = len(problems) if teacher.n_in_one_request else rows
    prompt_billed = prompt_tokens * (1 if teacher.n_in_one_request else samples)
    est_prompt = round(prompt_billed * fraction)
    est_completion = to_send * per_sample
    cost = (est_prompt * teacher.price.input_per_mtok + est_completion * teacher.price.output_per_mtok) / 1e6
    return {
        "model": teacher.model, "base_url": teacher.base_url, "problems": len(problems),
        "samples_per_problem": samples, "rows": rows, "held": rows - to_send, "to_send": to_send,
        "requests": math.ceil(requests_full * fraction), "est_prompt_tokens": est_prompt,
        "est_completion_tokens": est_completion, "est_cost_usd": round(cost, 6),
        "cost_is_ceiling": expected_completion_tokens is None, "max_cost_usd": teacher.max_cost_usd,
        "price_per_mtok": {"input": teacher.price.input_per_mtok, "output": teacher.price.output_per_mtok},
    }


def _read_output(folder: str, model: str, light: bool = False) -> dict[tuple[str, int], dict]:
    """Rows of an earlier run that can be kept: status ok, same model; keyed by (problem id, sample index).

    `light`: only the key columns (the Ray Data path leaves kept rows where they are and needs no text).
    """
    columns = ["problem_id", "sample_index", "status", "model", "prompt_hash"] if light else None
    kept = {}
    for row in iter_trace_columns(folder, columns):
        if row.get("status") == "ok" and row.get("model") == model:
            kept[(row["problem_id"], int(row["sample_index"]))] = {**row, "_kept": True} if light else row
    return kept


def _write_output(folder: str, rows: list[dict]) -> None:
    write_table(os.path.join(folder, OUTPUT_FILE), rows)
    remove_parts(folder)  # their rows are all in the file now (they were read as kept rows)


_SINK_ROWS = 250  # rows per part file written from cache hits during a streaming resume (~30 MB of 60 KB traces)


def _work_items(problems: list[Problem], teacher: TeacherSpec, kept: dict, cache: Any,
                sink: Callable[[list[TraceRow]], None] | None = None
                ) -> tuple[list[TraceRow], list[TeacherWorkItem], int]:
    """(rows already complete, work items for the clients, how many rows were complete).

    `cache` answers `get(key)` (a `CacheIndex`, which reads one record per hit, or a dict). With `sink`, complete rows
    go to it in chunks as they are found and are not returned, so the caller never holds more than a chunk of texts.
    """
    done_rows: list[TraceRow] = []
    items: list[TeacherWorkItem] = []
    n_done = 0
    max_tokens = int(teacher.sampling["max_tokens"])
    bigger = int(teacher.retry_max_tokens_cap)
    retry = teacher.truncation_policy == "retry" and bigger > max_tokens
    for problem in problems:
        messages = messages_for(problem["prompt"])
        samples = []
        for index in range(int(teacher.samples_per_problem)):
            old = kept.get((problem["id"], index))
            if old is not None and old.get("prompt_hash") == prompt_hash(problem["prompt"]):
                done_rows.append({**old, "teacher": teacher.name, "from_cache": True})
                continue
            base = cache.get(request_key(teacher.cache_url, teacher.model, messages,
                                         sampling_for(teacher, max_tokens), index))
            extra = None
            if base is not None and retry and base["finish_reason"] == "length":
                extra = cache.get(request_key(teacher.cache_url, teacher.model, messages,
                                              sampling_for(teacher, bigger), index))
                if extra is None:
                    samples.append({"index": index, "base": base, "retry": None})
                    continue
            if base is not None:
                done_rows.append(build_row(teacher, problem, index, extra or base, from_cache=True))
            else:
                samples.append({"index": index, "base": None, "retry": None})
        if samples:
            items.append({"problem": {"id": problem["id"], "domain": problem.get("domain", ""),
                                      "prompt": problem["prompt"]}, "samples": samples})
        if sink is not None and len(done_rows) >= _SINK_ROWS:
            n_done += len(done_rows)
            sink(done_rows)
            done_rows = []
    if sink is not None:
        n_done += len(done_rows)
        if done_rows:
            sink(done_rows)
        return [], items, n_done
    return done_rows, items, len(done_rows)


def paid_in_cache(cache: dict[str, dict]) -> float:
    """Dollars the cache records as paid in this namespace: answers, permanent verdicts and billed non-answers."""
    return float(sum(float(r.get("cost_usd") or 0.0) for r in cache.values() if isinstance(r, dict)))


class _Progress:
    """A progress line every `interval_s` on `stream`, and the same figures as records.GenerationProgress in
    `progress_file` (written atomically) when one is given."""

    def __init__(self, name: str, total: int, already: int, interval_s: float, stream: Any,
                 progress_file: str | None = None, budget: dict | None = None):
        self.name, self.total, self.already = name, total, already
        self.interval_s, self.stream = interval_s, stream
        self.progress_file, self.budget = progress_file, budget or {}
        self.started = time.monotonic()
        self.last = 0.0

    def maybe(self, done: int, snapshot: dict, force: bool = False) -> None:
        now = time.monotonic()
        if not self.interval_s or (not force and now - self.last < self.interval_s):
            return
        self.last = now
        totals, errors = snapshot.get("totals", {}), snapshot.get("errors", {})
        elapsed = max(1e-9, now - self.started)
        tokens = int(totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0))
        errs = " ".join(f"{k}x{v}" for k, v in sorted(errors.items())) or "none"
        print(f"[generate {self.name}] {self.already + done}/{self.total} rows | "
              f"{totals.get('requests', 0) / elapsed:.1f} req/s | {tokens} tokens | "
              f"${totals.get('cost_usd', 0.0):.4f} | errors: {errs}", file=self.stream, flush=True)
        if self.progress_file:
            write_json(self.progress_file, {
                "teacher": self.name, "rows_total": self.total, "rows_done": self.already + done,
                "requests": int(totals.get("requests", 0)), "cost_usd": float(totals.get("cost_usd", 0.0)),
                "spent_before_usd": float(self.budget.get("spent_before_usd", 0.0)),
                "max_cost_usd": self.budget.get("max_cost_usd"), "errors": dict(errors),
                "elapsed_s": round(elapsed, 3), "updated": time.time()}, indent=None)


def _chunks(items: deque, units: int) -> list[dict]:
    chunk, count = [], 0
    while items and (not chunk or count + len(items[0]["samples"]) <= units):
        item = items.popleft()
        chunk.append(item)
        count += len(item["samples"])
    return chunk


def _stopped_rows(teacher: TeacherSpec, items: list[TeacherWorkItem], reason: str) -> list[TraceRow]:
    message = STOP_REASONS.get(reason, f"{reason}: not sent")
    return [build_row(teacher, it["problem"], s["index"], message) for it in items for s in it["samples"]]


def _make_limiter(teacher: TeacherSpec, ray_mode: bool) -> Any:
    """The run's pacer: an in-process RateLimiter, or on Ray one named actor per (endpoint, model) for the cluster."""
    if not (teacher.max_rps or teacher.max_tokens_per_minute):
        return None
    if not ray_mode:
        return RateLimiter(teacher.max_rps, teacher.max_tokens_per_minute)
    import ray

    # detached so it outlives the trial that made it
    limiter = ray.remote(num_cpus=0)(RateLimiter).options(
        name=limiter_name(teacher.base_url, teacher.model), namespace="distill-ray", get_if_exists=True,
        lifetime="detached").remote(teacher.max_rps, teacher.max_tokens_per_minute)
    ray.get(limiter.configure.remote(teacher.max_rps, teacher.max_tokens_per_minute))
    return limiter


def _run_local(teacher: TeacherSpec, items: list[TeacherWorkItem], cache_dir: str, ns: str, progress: _Progress,
               stop_event: threading.Event | None, limiter: Any = None) -> tuple[list, dict]:
    async def main() -> tuple[list, dict]:
        ledger = RunLedger(teacher.max_cost_usd, teacher.spent_before_usd or 0.0)
        client = TeacherClient(teacher, int(teacher.concurrency), cache_dir, ns, limiter, ledger)
        pending = deque(items)
        rows: list[dict] = []
        capacity = 2 * int(teacher.concurrency)
        chunk_units = max(1, min(64, int(teacher.concurrency) // 4))
        running: dict[asyncio.Task, int] = {}
        try:
            while pending or running:
                if stop_event is not None and stop_event.is_set():
                    ledger.stop("interrupted")
                while pending and sum(running.values()) < capacity and not ledger.stopped:
                    chunk = _chunks(pending, chunk_units)
                    running[asyncio.ensure_future(client.process(chunk))] = sum(len(i["samples"]) for i in chunk)
                if ledger.stopped and pending:
                    rows.extend(_stopped_rows(teacher, list(pending), ledger.stopped))
                    pending.clear()
                if not running:
                    continue
                finished, _ = await asyncio.wait(list(running), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    running.pop(task)
                    rows.extend(task.result())  # a FatalTeacherError propagates from here
                progress.maybe(len(rows), _local_snapshot(ledger, client))
        finally:
            for task in running:
                task.cancel()
            await client.close()
        return rows, ledger.snapshot()

    return _run_coroutine(main())


def _local_snapshot(ledger: RunLedger, client: TeacherClient) -> dict:
    snapshot = ledger.snapshot()
    # include what the client has not flushed yet, so progress is live
    totals = Counter(snapshot["totals"])
    totals.update(client._delta_totals)
    errors = Counter(snapshot["errors"])
    errors.update(client._delta_errors)
    return {**snapshot, "totals": dict(totals), "errors": dict(errors)}


def _run_coroutine(coroutine: Any) -> Any:
    """asyncio.run, also from a thread whose loop is already running (a notebook, an async actor)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="distill-ray-generate")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _run_ray(teacher: TeacherSpec, items: list[TeacherWorkItem], cache_dir: str, ns: str, progress: _Progress,
             stop_event: threading.Event | None, limiter: Any = None) -> tuple[list, dict]:
    import ray

    n_actors = max(1, min(int(teacher.actors), len(items)))
    per_actor = max(1, math.ceil(int(teacher.concurrency) / n_actors))
    ledger = ray.remote(num_cpus=0)(RunLedger).remote(teacher.max_cost_usd,
                                                      teacher.spent_before_usd or 0.0)
    env_vars = {}
    if teacher.api_key_env and not teacher.api_key_file:
        # actors on other nodes do not inherit the driver's environment; the key travels only in the runtime env
        env_vars[teacher.api_key_env] = resolve_api_key(teacher)
    rate = teacher.max_rps or 0
    chunk_slots = max(1, math.ceil(rate * 0.1 / n_actors)) if rate else 1
    # num_cpus=0: clients wait on the network; reserving CPUs would starve (or deadlock) the sweep's trials
    remote_client = ray.remote(num_cpus=0, max_concurrency=max(64, per_actor * 2))(TeacherClient)
    options: dict[str, Any] = {"runtime_env": {"env_vars": env_vars}} if env_vars else {}
    actors = [remote_client.options(**options).remote(teacher, per_actor, cache_dir, ns, limiter, ledger, chunk_slots)
              for _ in range(n_actors)]
    ray.get([actor.ready.remote() for actor in actors])
    pending = deque(items)
    rows: list[dict] = []
    running: dict[Any, tuple[int, list[dict]]] = {}
    load = [0] * n_actors
    chunk_units = max(1, min(64, per_actor // 4))
    snapshot: dict = {}
    stopped = ""
    try:
        while pending or running:
            if stop_event is not None and stop_event.is_set() and not stopped:
                ledger.stop.remote("interrupted")
                stopped = "interrupted"
            for a in range(n_actors):
                while pending and load[a] < 2 * per_actor and not stopped:
                    chunk = _chunks(pending, chunk_units)
                    units = sum(len(i["samples"]) for i in chunk)
                    running[actors[a].process.remote(chunk)] = (a, chunk)
                    load[a] += units
            if stopped and pending:
                rows.extend(_stopped_rows(teacher, list(pending), stopped))
                pending.clear()
            if running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    a, chunk = running.pop(ref)
                    load[a] -= sum(len(i["samples"]) for i in chunk)
                    try:
                        rows.extend(ray.get(ref))
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, FatalTeacherError):
                            raise FatalTeacherError(str(cause)) from None
                        raise
                    except ray.exceptions.RayActorError as exc:
                        # the answers that actor got are in the cache; a re-run picks them up for free
                        reason = f"client actor died: {str(exc).splitlines()[0][:200]}"
                        rows.extend(build_row(teacher, it["problem"], s["index"], reason)
                                    for it in chunk for s in it["samples"])
            # the ledger carries every actor's stops (budget, credits)
            snapshot = ray.get(ledger.snapshot.remote())
            stopped = stopped or snapshot["stopped"]
            progress.maybe(len(rows), snapshot)
        ray.get([actor.close.remote() for actor in actors])
        snapshot = ray.get(ledger.snapshot.remote())
    finally:
        for actor in actors:
            ray.kill(actor)
        ray.kill(ledger)
    return rows, snapshot


def generate_traces(problems: list[Problem], teacher_name: str, teacher: TeacherConfig, output_dir: str, *,
                    cache_dir: str, dry_run: bool = False, use_ray: bool | None = None,
                    progress_interval_s: float = 2.0, progress_stream: Any = None,
                    on_plan: Callable[[dict], None] | None = None, stop_event: threading.Event | None = None,
                    probe: bool = True, pipeline: str = "data", progress_file: str | None = None) -> dict:
    """Generate (or resume) one teacher's traces for `problems` into OUTPUT_DIR; returns a summary.

    `use_ray`: None uses Ray when Ray is initialised, else one in-process client (output `traces.parquet`). On Ray,
    `pipeline="data"` runs the Ray Data pipeline (`dataflow.py`; output `part-*.parquet` written as batches finish,
    the driver holds no trace text), `pipeline="actors"` the hand-fed actors (output `traces.parquet`).
    Read the output with `parts.read_traces(OUTPUT_DIR)` (either layout). `progress_file` receives the progress
    figures (records.GenerationProgress) at every progress line and at the end. Setting `stop_event` stops new requests;
    those in flight finish and are stored, the rest are rows failed as "interrupted" (the CLI sets it on
    SIGINT/SIGTERM). Raises FatalTeacherError (a missing key, a 401/403 key refusal, a failed probe) before
    spending anything more, and CreditsExhausted (after writing the output) on a 402 without Retry-After; every other
    failure is a row's `error`, with its reason in `failure` and `permanent` saying whether a re-run retries it.
    """
    started = time.monotonic()
    spec = teacher_spec(teacher_name, teacher)
    if pipeline not in ("data", "actors"):
        raise ValueError(f"pipeline must be 'data' or 'actors', not {pipeline!r}")
    ray_mode = bool(use_ray)
    if use_ray is None:
        try:
            import ray

            ray_mode = ray.is_initialized()
        except ImportError:
            ray_mode = False
    # batch mode writes parts as its batches settle, like the Ray Data pipeline (the driver keeps no trace text)
    streaming = not dry_run and (teacher.mode == "batch" or (ray_mode and pipeline == "data"))
    out_path = os.path.join(output_dir, OUTPUT_FILE)
    ns = namespace(spec.cache_url, spec.model)
    kept = _read_output(output_dir, spec.model, light=streaming)
    # batches an earlier run submitted are settled first: their requests are never sent again (batch.py)
    settled = 0 if dry_run else settle_batches(spec, cache_dir, ns, progress_stream or sys.stderr)
    cache = ResponseCache(cache_dir, ns).index()  # no record is held: each hit is read from its segment when used
    spent_before = cache.paid_usd()
    spec = dataclasses.replace(spec, spent_before_usd=spent_before)

    def to_parts(rows: list[dict]) -> None:  # streaming: cache hits the output lacks become parts now, a chunk a time
        fresh = [r for r in rows if not r.get("_kept")]
        if fresh:
            write_part(output_dir, fresh)

    try:
        done_rows, items, n_done = _work_items(problems, spec, kept, cache, to_parts if streaming else None)
    finally:
        cache.close()
    plan = plan_generation(problems, teacher, skip=n_done)
    plan["spent_before_usd"] = round(spent_before, 6)
    plan["mode"] = teacher.mode
    plan["est_cost_usd_batch"] = round(plan["est_cost_usd"] * teacher.batch.price_factor, 6)
    plan["open_batches"] = len(open_ledgers(cache_dir, ns))
    if teacher.max_cost_usd is not None:
        plan["budget_left_usd"] = round(max(0.0, teacher.max_cost_usd - spent_before), 6)
    if on_plan is not None:
        on_plan(plan)
    base_summary = {
        "teacher": teacher_name, "requests": 0, "paid": 0, "from_cache": n_done, "failed": 0,
        "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "stopped_by_budget": False,
        "errors_by_kind": {}, "wall_s": 0.0, "rows": plan["rows"], "ok": 0, "truncated": 0,
        "output": output_dir if streaming else out_path,
        "failure_reasons": {}, "permanent_failures": 0, "transient_failures": 0, "complete": False,
        "spent_before_usd": round(spent_before, 8), "ledger_total_usd": round(spent_before, 8),
        "key_usage_start_usd": None, "key_usage_end_usd": None, "probe": None,
        "mode": teacher.mode, "batches_settled_at_start": settled,
    }
    if dry_run:
        info = None
        try:
            info = key_info(spec)
        except FatalTeacherError:
            raise
        except Exception:  # a dry run without a key still plans
            info = None
        if info is not None:
            plan["key_limit_remaining_usd"] = info.get("limit_remaining")
            plan["key_usage_usd"] = info.get("usage")
            if info.get("limit_remaining") is not None:
                plan["estimate_fits_key_limit"] = plan["est_cost_usd"] <= float(info["limit_remaining"])
        return {**base_summary, "dry_run": True, "plan": plan, "wall_s": round(time.monotonic() - started, 3)}
    stream = progress_stream if progress_stream is not None else sys.stderr
    limiter = _make_limiter(spec, ray_mode) if items else None  # the probe and the bulk share one pace
    key_start = None
    probe_rows: list[dict] = []
    snapshots: list[dict] = []
    if items:
        resolve_api_key(spec)  # a missing key stops here, before any request
        # where there is no key endpoint, the probe below (or the bulk's first request) is the key check: its answer
        # is stored like any other, so checking the key costs nothing that is not kept
        key_start = key_info(spec)
        if probe and len(items) > 1:
            # one real request first: an invalid request or a missing reasoning stops here, not after 40K rows
            silent = _Progress(teacher_name, 0, 0, 0.0, stream)
            probe_rows, probe_snapshot = _run_local(spec, items[:1], cache_dir, ns, silent, stop_event, limiter)
            snapshots.append(probe_snapshot)
            if probe_snapshot.get("stopped") == "fatal":
                raise FatalTeacherError(probe_snapshot["fatal_message"])
            base_summary["probe"] = check_probe(spec, probe_rows)
            items = items[1:]
            if probe_snapshot.get("stopped") == "credits":
                items, probe_rows = [], probe_rows + _stopped_rows(spec, items, "credits")
            spec = dataclasses.replace(
                spec, spent_before_usd=spent_before + float(probe_snapshot["totals"].get("cost_usd", 0.0)))
    n_pending = sum(len(it["samples"]) for it in items)
    progress = _Progress(teacher_name, n_done + len(probe_rows) + n_pending, n_done + len(probe_rows),
                         progress_interval_s, stream, progress_file,
                         {"spent_before_usd": spent_before, "max_cost_usd": teacher.max_cost_usd})
    new_rows: list[dict] = []
    n_new = from_cache = 0
    if streaming:
        from distill_ray.teacher.dataflow import run_dataflow

        # the probe's rows go to a part first (cache hits went while the work was listed); kept rows stay put
        to_parts(probe_rows)
        from_cache = n_done + sum(1 for r in probe_rows if r.get("from_cache"))
        del done_rows, probe_rows
        if items and teacher.mode == "batch":
            n_new, new_cached, snapshot = run_batch_parts(spec, items, output_dir, cache_dir, ns, progress, stop_event)
            from_cache += new_cached
            snapshots.append(snapshot)
        elif items:
            n_new, new_cached, snapshot = run_dataflow(spec, items, output_dir, cache_dir, ns, progress, stop_event,
                                                       limiter)
            from_cache += new_cached
            snapshots.append(snapshot)
    elif items:
        runner = _run_ray if ray_mode else _run_local
        new_rows, snapshot = runner(spec, items, cache_dir, ns, progress, stop_event, limiter)
        snapshots.append(snapshot)
    snapshot = _merge_snapshots(snapshots)
    progress.maybe(n_new or len(new_rows), snapshot, force=True)
    if streaming:
        rows: Any = _current_rows(output_dir, problems, int(spec.samples_per_problem))
    else:
        order = {p["id"]: i for i, p in enumerate(problems)}
        rows = sorted(done_rows + probe_rows + new_rows,
                      key=lambda r: (order.get(r["problem_id"], len(order)), r["sample_index"]))
        _write_output(output_dir, rows)
        from_cache = sum(1 for r in rows if r.get("from_cache"))
    totals, errors = snapshot.get("totals", {}), snapshot.get("errors", {})
    failed = [r for r in rows if r["status"] != "ok"]
    cost = float(totals.get("cost_usd", 0.0))
    summary = {
        **base_summary,
        "requests": int(totals.get("requests", 0)), "paid": int(totals.get("paid", 0)),
        "from_cache": from_cache,
        "failed": len(failed), "ok": len(rows) - len(failed),
        "truncated": sum(1 for r in rows if r["truncated"]),
        "prompt_tokens": int(totals.get("prompt_tokens", 0)),
        "completion_tokens": int(totals.get("completion_tokens", 0)),
        "cost_usd": round(cost, 8), "ledger_total_usd": round(spent_before + cost, 8),
        "stopped_by_budget": snapshot.get("stopped") == "budget" or any(
            r["error"].startswith("budget") for r in rows),
        "errors_by_kind": dict(errors), "wall_s": round(time.monotonic() - started, 3),
        "empty_retried": int(errors.get("empty_retried", 0)),
        "failure_reasons": dict(Counter(r.get("failure") or failure_reason(r["error"]) for r in failed)),
        "permanent_failures": sum(1 for r in failed if r.get("permanent")),
        "transient_failures": sum(1 for r in failed if not r.get("permanent")),
        "reasoning_encrypted_items": sum(int(r.get("reasoning_encrypted") or 0) for r in rows),
    }
    summary["complete"] = summary["transient_failures"] == 0
    if teacher.mode == "batch":  # batches submitted, completed, failed, expired in this run
        summary["batches"] = next((snap["batches"] for snap in snapshots if "batches" in snap), {})
    if key_start is not None:
        summary["key_usage_start_usd"] = key_start.get("usage")
        try:
            end = key_info(spec)
        except FatalTeacherError:
            end = None
        summary["key_usage_end_usd"] = end.get("usage") if end else None
        if end is not None and key_start.get("usage") is not None and end.get("usage") is not None:
            summary["key_usage_delta_usd"] = round(float(end["usage"]) - float(key_start["usage"]), 8)
    if snapshot.get("stopped") == "fatal":
        raise FatalTeacherError(f"{snapshot['fatal_message']} ({summary['ok']} of {summary['rows']} rows are stored, "
                                "every answer that arrived after the refusal among them)")
    if snapshot.get("stopped") == "credits":
        raise CreditsExhausted(
            f"teacher {teacher_name!r}: the provider reported insufficient credits (HTTP 402 without Retry-After); "
            f"{summary['ok']} of {summary['rows']} rows are stored ({cost:.4f} USD paid in this run, all kept); "
            "add credits and run again: only the rest will be paid for")
    return summary


def _current_rows(folder: str, problems: list[Problem], samples: int) -> list[dict]:
    """The output's rows for these problems without their texts (what the summary counts), streamed over the parts."""
    wanted = {(p["id"], i) for p in problems for i in range(samples)}
    columns = ["problem_id", "sample_index", "status", "error", "failure", "permanent", "truncated",
               "reasoning_encrypted"]
    return [r for r in iter_trace_columns(folder, columns) if (r["problem_id"], int(r["sample_index"])) in wanted]


def _merge_snapshots(snapshots: list[dict]) -> dict:
    totals: Counter = Counter()
    errors: Counter = Counter()
    stopped = fatal_message = ""
    for snap in snapshots:
        totals.update(snap.get("totals", {}))
        errors.update(snap.get("errors", {}))
        stopped = stopped or snap.get("stopped", "")
        fatal_message = fatal_message or snap.get("fatal_message", "")
    return {"totals": dict(totals), "errors": dict(errors), "stopped": stopped, "fatal_message": fatal_message}
