"""The generate stage's bulk run as a Ray Data pipeline: work items -> async teacher UDF on an actor pool -> parts.

    rows, from_cache, snapshot = run_dataflow(teacher, items, output_dir, cache_dir, ns, progress, stop_event, limiter)

`generate_traces` calls this when Ray is up (`pipeline="data"`). The work items become a dataset (one JSON string
per problem); `map_batches` runs `TeacherUDF` on a fixed pool of `teacher.actors` actors (num_cpus=0: they wait on
the network). Each UDF call answers its batch with one `TeacherClient` per actor (the same client, cache, rate
limiter actor and `RunLedger` actor as the actor path, so budget and credit stops are shared), writes the batch's rows
as one `part-*.parquet` in the output folder itself, and yields only counts; the driver never holds a trace's text.
Several batches (tasks) run at once per actor (`max_tasks_in_flight_per_actor`), each with all its requests in
flight, so an actor holds up to `concurrency / actors` requests at a time (its client's window). A batch that starts
after the ledger stopped the run (budget, credits, interruption) writes its rows as not sent, without a request.

Before a batch sends anything, its actor refreshes the cache's index (`CacheIndex`, shared by every process) and
fills in every sample the cache now holds, so a batch that Ray Data retries after its actor died (its default: the
actor restarts, its tasks are retried; no deprecated `map_batches` remote arguments are passed) pays only for what
the dead actor had not stored. A refused key (401/403) stops the ledger like a 402: batches already running finish
and are stored, later ones write their rows as not sent, and the driver raises once the pipeline has ended.

Not guaranteed: an answer the dead actor was paid for but had not fsync'ed is paid again; an actor death mid-run is
not exercised by the tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from collections.abc import Iterator
from typing import Any

from distill_ray.records import TeacherWorkItem
from distill_ray.teacher.cache import CacheIndex, request_key
from distill_ray.teacher.client import (
    STOP_REASONS,
    FatalTeacherError,
    RunLedger,
    TeacherClient,
    build_row,
    messages_for,
    sampling_for,
)
from distill_ray.teacher.parts import write_part
from distill_ray.teacher.spec import TeacherSpec


class TeacherUDF:
    """Ray Data callable class: one `TeacherClient` per actor; each batch's rows go to a part file."""

    def __init__(self, teacher: TeacherSpec, concurrency: int, cache_dir: str, ns: str, limiter: Any, ledger: Any,
                 limiter_chunk: int, output_dir: str):
        self.teacher, self.ledger, self.output_dir = teacher, ledger, output_dir
        self.client = TeacherClient(teacher, concurrency, cache_dir, ns, limiter, ledger, limiter_chunk)
        self.index = CacheIndex(os.path.join(cache_dir, ns))
        self.index_lock = asyncio.Lock()
        self.ready = False

    async def __call__(self, batch: dict) -> Any:
        if not self.ready:
            await self.client.ready()
            self.ready = True
        items: list[TeacherWorkItem] = [json.loads(s) for s in batch["item"]]
        async with self.index_lock:
            # a batch retried after its actor died (Ray Data restarts actors and retries their tasks) finds what the
            # dead actor stored in the cache: those answers are filled in, never sent again
            await asyncio.to_thread(fill_from_cache, self.index, self.teacher, items)
        stopped = (await self.ledger.snapshot.remote())["stopped"]
        if stopped:
            message = STOP_REASONS.get(stopped, f"{stopped}: not sent")
            rows = [build_row(self.teacher, it["problem"], s["index"], message) for it in items for s in it["samples"]]
        else:
            rows = await self.client.process(items)
        await self.client._flush_stats()  # the ledger is current whenever a part is on disk
        write_part(self.output_dir, rows)
        yield {"rows": [len(rows)], "from_cache": [sum(1 for r in rows if r.get("from_cache"))]}


def fill_from_cache(index: CacheIndex, teacher: TeacherSpec, items: list[TeacherWorkItem]) -> int:
    """Give every unsent sample of `items` its stored answer where the cache now has one; returns how many."""
    index.refresh()
    max_tokens = int(teacher.sampling["max_tokens"])
    bigger = int(teacher.retry_max_tokens_cap)
    retry = teacher.truncation_policy == "retry" and bigger > max_tokens
    filled = 0
    for item in items:
        messages = messages_for(item["problem"]["prompt"])
        for sample in item["samples"]:
            if sample.get("base") is None:
                sample["base"] = index.get(request_key(teacher.cache_url, teacher.model, messages,
                                                       sampling_for(teacher, max_tokens), sample["index"]))
                filled += sample["base"] is not None
            base = sample.get("base")
            if retry and base is not None and base["finish_reason"] == "length" and sample.get("retry") is None:
                sample["retry"] = index.get(request_key(teacher.cache_url, teacher.model, messages,
                                                        sampling_for(teacher, bigger), sample["index"]))
    return filled


def _fatal_cause(exc: BaseException) -> FatalTeacherError | None:
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FatalTeacherError):
            return current
        stack.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
    return None


def run_dataflow(teacher: TeacherSpec, items: list[TeacherWorkItem], output_dir: str, cache_dir: str, ns: str,
                 progress: Any, stop_event: threading.Event | None, limiter: Any = None) -> tuple[int, int, dict]:
    """Run the work items through the pipeline; returns (rows written, rows from cache, ledger snapshot)."""
    import ray

    n_actors = max(1, min(int(teacher.actors), len(items)))
    per_actor = max(1, math.ceil(int(teacher.concurrency) / n_actors))
    ledger = ray.remote(num_cpus=0)(RunLedger).remote(teacher.max_cost_usd,
                                                      teacher.spent_before_usd or 0.0)
    env_vars = {}
    if teacher.api_key_env and not teacher.api_key_file:
        from distill_ray.teacher.client import resolve_api_key

        env_vars[teacher.api_key_env] = resolve_api_key(teacher)  # other nodes do not inherit the driver's env
    rate = teacher.max_rps or 0
    chunk_slots = max(1, math.ceil(rate * 0.1 / n_actors)) if rate else 1
    # One batch per block, and enough tasks queued on each actor to hold twice its window: Ray Data hands a block to
    # the least-loaded ready actor, so an actor that starts late (a loaded node) still gets its share, and each
    # actor's requests stay in flight while the next batches are fed. (Measured: 4-batch blocks with Ray Data's
    # defaults left one actor with most of the work, about half the ideal rate at concurrency 256.)
    batch_items = max(1, min(32, per_actor // 4))
    blocks = max(1, math.ceil(len(items) / batch_items))
    tasks_per_actor = max(2, math.ceil(2 * per_actor / batch_items))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Ray Data's defaults restart a dead actor and retry its tasks; a retried batch is safe because the UDF fills
    # from the cache (refreshed first) every answer the dead actor had stored
    ds = ray.data.from_items([{"item": json.dumps(it)} for it in items], override_num_blocks=blocks)
    ds = ds.map_batches(
        TeacherUDF, batch_size=batch_items, num_cpus=0, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=tasks_per_actor,
                                           max_concurrent_calls_per_actor=max(64, 2 * tasks_per_actor + 8)),
        fn_constructor_kwargs={"teacher": teacher, "concurrency": per_actor, "cache_dir": cache_dir, "ns": ns,
                               "limiter": limiter, "ledger": ledger, "limiter_chunk": chunk_slots,
                               "output_dir": output_dir},
        runtime_env={"env_vars": env_vars} if env_vars else None)
    rows = from_cache = 0
    stopped = ""
    try:
        for out in _batches(ds):
            rows += int(sum(out["rows"]))
            from_cache += int(sum(out["from_cache"]))
            if stop_event is not None and stop_event.is_set() and not stopped:
                ledger.stop.remote("interrupted")
                stopped = "interrupted"
            progress.maybe(rows, ray.get(ledger.snapshot.remote()))
        snapshot = ray.get(ledger.snapshot.remote())
    finally:
        ray.kill(ledger)
    return rows, from_cache, snapshot


def _batches(ds: Any) -> Iterator[dict]:
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except Exception as exc:
        fatal = _fatal_cause(exc)
        if fatal is not None:
            raise FatalTeacherError(str(fatal)) from None
        raise
