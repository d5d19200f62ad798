"""Batch mode of the generate stage: a teacher's requests through its provider's batch endpoint, at batch prices.

    provider = batch_api.OpenRouterBatches(base_url, api_key)
    runner = BatchRunner(teacher, cache_dir, ns, provider, stream=sys.stderr)
    runner.settle()                     # finish every batch an earlier (killed) run submitted; answers into the cache
    rows, snapshot = runner.run(items)  # the rest: sized batches, polled with backoff; one Trace row per sample
    run_batch_parts(teacher, items, output_dir, ...)   # what generate_traces calls: rows as part files

Nothing is paid twice. Each batch has a ledger, `<cache dir>/batches/<namespace>/<tag>.json`, written atomically
(fsync'ed, directory too) *before* the POST, with the client-side tag that the batch also carries in its `metadata`;
the batch id is written the instant the POST returns. A driver killed anywhere resumes with `settle()`: a ledger with
an id is polled; one without (killed during the POST) is looked up among the provider's batches by its tag, and only
when no batch has that tag are its requests free again. `generate_traces` settles before it reads the cache for work,
so a request in a submitted batch is never sent again, by another batch or online.

Answers are judged by the online rules (`answers.classify_choice`, `parse_message`: reasoning captured, errors inside
results, permanent failures kept with their reason) and stored in the same response cache under the same keys, so
the trace files cannot tell the modes apart (`cost_source` is "provider" or "price_table_batch"). A request that
failed transiently (an `error` result, a non-trace answer, no result in an expired batch) goes into a later batch, up
to `batch.max_rounds` batches; then its row fails with that reason and a re-run retries it. A batch that failed as a
whole (a request that did not validate) is sent again in halves, down to the request that fails alone.

`max_cost_usd`: a batch is submitted only if its worst case (every request's `max_tokens` at the batch price, prompts
counted as one token per character, a bound) fits in what is left after what was paid and the worst case of the
batches still running; the ledger records the prices it was planned with.

Providers: `batch_api.BatchProvider` is what a provider's batch endpoint must offer (submit with a tag, status, find
by tag, results); only OpenRouter's is implemented.

Not guaranteed: a batch submitted by a driver killed before its ledger was written (impossible by construction here, but
an older version or another tool) is not known; two generators on one cache at once may each submit the same request.
After a stop (Ctrl-C or a budget stop), running batches are left running; their answers are collected, and paid for, by
the next run. A provider that loses a batch's metadata defeats the lookup by tag; then the requests of a ledger with no
id are sent again. OpenRouter keeps a finished batch's results for 30 days (API reference, "Get batch results"):
settling later than that finds none, and those requests go into a new batch (paid again). With `output_dir`, each
settled batch's final rows are written as a part file at once and their texts dropped; the rows still open at the end
(transient failures, stops) are returned; without it, `run` returns every row. Wall time is the provider's: minutes
to 24 hours per batch.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any

from distill_ray.files import read_json, write_json
from distill_ray.records import TeacherWorkItem, TraceRow
from distill_ray.teacher.answers import build_row, classify_choice, failure_record, parse_message
from distill_ray.teacher.batch_api import (
    BatchError,
    BatchProvider,
    BatchState,
    make_provider,
)
from distill_ray.teacher.cache import ResponseCache, request_key
from distill_ray.teacher.client import STOP_REASONS, messages_for, request_body, sampling_for
from distill_ray.teacher.spec import TeacherSpec

TERMINAL = ("completed", "failed", "expired", "cancelled")


def ledger_dir(cache_dir: str, ns: str) -> str:
    return os.path.join(cache_dir, "batches", ns)


def _write_ledger(path: str, ledger: dict) -> None:
    write_json(path, ledger)  # atomic: tmp file, fsync, rename, fsync of the folder (files.py)


def open_ledgers(cache_dir: str, ns: str) -> list[tuple[str, dict]]:
    """(path, ledger) of every batch not yet settled in this namespace, oldest first."""
    folder = ledger_dir(cache_dir, ns)
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            path = os.path.join(folder, name)
            ledger = read_json(path)
            if ledger.get("state") in ("planned", "submitted"):
                out.append((path, ledger))
    return sorted(out, key=lambda item: item[1].get("created", 0))


def _worst_prompt_tokens(prompt: str) -> int:
    # a bound, not an estimate: a token is at least one character in the usual tokenizers; prompts are small beside
    # max_tokens, so the bound costs little headroom
    return len(prompt) + 16


class BatchRunner:
    """Sends one teacher's requests in batches and settles them into the response cache (driver side, no Ray)."""

    def __init__(self, teacher: TeacherSpec, cache_dir: str, ns: str, provider: BatchProvider, *,
                 stream: Any = None, stop_event: threading.Event | None = None, progress_interval_s: float = 2.0,
                 output_dir: str | None = None):
        self.teacher, self.cache_dir, self.ns, self.provider = teacher, cache_dir, ns, provider
        # set: each settled batch's final rows go to a part file there at once, and their texts leave memory
        self.output_dir = output_dir
        self.written: set[tuple[str, int]] = set()
        self.written_rows = self.written_from_cache = 0
        self.config = teacher.batch
        self.stream, self.stop_event = stream, stop_event
        self.progress_interval_s = progress_interval_s
        self.factor = float(self.config["price_factor"])
        self.cache_url = teacher.cache_url
        self.totals: Counter = Counter()
        self.errors: Counter = Counter()
        self.counts: Counter = Counter()  # batches: submitted, completed, failed, expired
        self.empty_tries: Counter = Counter()  # per request key: empty answers asked again (online: `empty_retries`)
        self.outcome: dict[str, dict | str] = {}  # request key -> record, or the transient reason of its last try
        self._last_progress = 0.0
        self._delays: dict[str, float] = {}  # batch tag -> seconds until its next poll (doubling while it runs)
        self._next_poll: dict[str, float] = {}

    # -- prices -------------------------------------------------------------------------------------------------
    def worst_case_usd(self, prompt: str, max_tokens: int) -> float:
        price = self.teacher.price
        return (_worst_prompt_tokens(prompt) * price["input_per_mtok"] + max_tokens * price["output_per_mtok"]) \
            / 1e6 * self.factor

    # -- settling -----------------------------------------------------------------------------------------------
    def settle(self) -> int:
        """Poll every batch an earlier run recorded until it ends, and store its answers; returns how many."""
        open_ = open_ledgers(self.cache_dir, self.ns)
        running: list[tuple[str, dict]] = []
        for path, ledger in open_:
            if not ledger.get("batch_id"):
                found = self._retry(lambda ledger=ledger: self.provider.find(ledger["tag"]))
                if found is None:  # the POST never reached the provider: its requests are free again
                    ledger["state"] = "never_sent"
                    _write_ledger(path, ledger)
                    continue
                ledger.update(batch_id=found, state="submitted")
                _write_ledger(path, ledger)
            running.append((path, ledger))
        self._wait(running, stop_on_event=False)
        return len(running)

    def _wait(self, running: list[tuple[str, dict]], stop_on_event: bool,
              until_any: bool = False) -> list[tuple[str, dict]]:
        """Poll until every batch ended (`until_any`: one did; `stop_on_event`: or a stop); returns those running."""
        running = list(running)
        start = len(running)
        # per batch, kept across calls: a batch's backoff does not start over when another batch ends
        delays, next_poll = self._delays, self._next_poll
        for _, ledger in running:
            if ledger["tag"] not in delays:
                delays[ledger["tag"]] = float(self.config["poll_initial_s"])
                next_poll[ledger["tag"]] = time.monotonic() + delays[ledger["tag"]]
        while running:
            if stop_on_event and self.stop_event is not None and self.stop_event.is_set():
                return running
            wake = min(next_poll[ledger["tag"]] for _, ledger in running)
            pause = max(0.0, wake - time.monotonic())
            if self.stop_event is not None and stop_on_event:
                self.stop_event.wait(pause)
            else:
                time.sleep(pause)
            for path, ledger in list(running):
                key = ledger["tag"]
                if time.monotonic() < next_poll[key]:
                    continue
                try:
                    state = self._retry(lambda ledger=ledger: self.provider.status(ledger["batch_id"]))
                except BatchError as exc:
                    if exc.status != 404:
                        raise
                    state = BatchState(ledger["batch_id"], "gone")  # deleted, or past the provider's retention
                ledger["status"] = state.status
                ledger["request_counts"] = {"total": state.total, "completed": state.completed,
                                            "failed": state.failed}
                if state.status in TERMINAL or state.status == "gone":
                    self._collect(path, ledger, state)
                    running.remove((path, ledger))
                    continue
                delays[key] = min(float(self.config["poll_max_s"]), delays[key] * 2)
                next_poll[key] = time.monotonic() + delays[key]
            self._progress(running)
            if until_any and len(running) < start:
                return running
        return running

    def _retry(self, call: Any) -> Any:
        """A provider call, tried again with backoff while it fails transiently (5xx, 429, no answer)."""
        delay = float(self.config["poll_initial_s"])
        for attempt in range(8):
            try:
                return call()
            except BatchError as exc:
                self.errors[f"batch_http_{exc.status or 'conn'}"] += 1
                if not exc.transient or attempt == 7:
                    raise
                time.sleep(delay)
                delay = min(float(self.config["poll_max_s"]), delay * 2)
        raise AssertionError("unreachable")

    def _collect(self, path: str, ledger: dict, state: BatchState) -> None:
        """Judge and store a finished batch's results, then mark its ledger settled (in that order)."""
        self.counts[state.status] += 1
        wanted = {r["custom_id"]: r for r in ledger["requests"]}
        stores: list[tuple[str, dict]] = []
        seen = set()
        results: list = []
        if state.status not in ("failed", "gone"):
            try:
                results = self._retry(lambda: list(self.provider.results(ledger["batch_id"])))
            except BatchError as exc:
                if exc.status != 404:  # results gone: every request is without a result, and asked again
                    raise
        for custom_id, response, error in results:
            request = wanted.get(custom_id)
            if request is None or custom_id in seen:
                continue
            seen.add(custom_id)
            stores.extend(self._judge(request, response, error, ledger))
        for custom_id, request in wanted.items():
            if custom_id not in seen:
                reason = (f"batch_failed: batch {ledger['batch_id']} failed: {state.error}" if state.status == "failed"
                          else f"batch_{state.status}: no result for this request in batch {ledger['batch_id']}")
                self.errors[reason.partition(":")[0]] += 1
                self.outcome[request["key"]] = reason
        self._store(stores)
        ledger.update(state="settled", settled_at=time.time(), status=state.status,
                      cost_usd=sum(float(r.get("cost_usd") or 0.0) for _, r in stores))
        _write_ledger(path, ledger)

    def _judge(self, request: dict, response: dict | None, error: dict | None, ledger: dict) -> list:
        """The cache lines for one result (as the online client would write them); records the outcome."""
        key, index, max_tokens = request["key"], int(request["index"]), int(request["max_tokens"])
        model = self.teacher.model
        if error or not isinstance(response, dict):
            error = error if isinstance(error, dict) else {"message": "a result with neither response nor error"}
            code = int(error.get("code") or 0) if str(error.get("code") or "0").isdigit() else 0
            if code == 400:  # the request is invalid: asking again will not change that
                record = failure_record(model, index, max_tokens, "invalid_request",
                                        f"HTTP 400 in batch: {error.get('message', '')}", None, 1)
                self.outcome[key] = record
                self.errors["invalid_request"] += 1
                return [(key, record)]
            self.errors["batch_request_error"] += 1
            self.outcome[key] = f"batch_request_error: {str(error.get('message', ''))[:200]}"
            return []
        try:
            choice = response["choices"][0]
            choice["message"]
        except (KeyError, IndexError, TypeError):
            self.errors["malformed"] += 1
            self.outcome[key] = "malformed: a batch result without a choice"
            return []
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost, source = usage.get("cost"), "provider"
        if not isinstance(cost, (int, float)) or isinstance(cost, bool):
            price = ledger["price"]
            cost = (prompt_tokens * price["input_per_mtok"] + completion_tokens * price["output_per_mtok"]) / 1e6 \
                * price["factor"]
            source = "price_table_batch"
        cost = float(cost)
        self.totals["cost_usd"] += cost
        self.totals["paid"] += 1
        self.totals["prompt_tokens"] += prompt_tokens
        self.totals["completion_tokens"] += completion_tokens
        verdict = classify_choice(choice, self.teacher)
        if verdict == ("empty_content", True) and self.empty_tries[key] < int(self.teacher.empty_retries):
            # the online rule: a billed empty answer is asked again (in a later batch) before it becomes permanent
            self.empty_tries[key] += 1
            self.errors["empty_retried"] += 1
            self.outcome[key] = "empty_retried: an empty answer (finish_reason stop, no content)"
            return [(f"spend:{uuid.uuid4().hex}", {"spend_only": True, "cost_usd": cost, "created": time.time()})]
        if verdict is not None and not verdict[1]:  # billed but not a trace: spent, asked again in a later batch
            self.errors[verdict[0]] += 1
            self.outcome[key] = f"{verdict[0]}: the answer is not a trace"
            return [(f"spend:{uuid.uuid4().hex}", {"spend_only": True, "cost_usd": cost, "created": time.time()})]
        reasoning, content, encrypted = parse_message(choice["message"])
        record = {
            "model": model, "sample_index": index, "max_tokens": max_tokens, "content": content,
            "reasoning": reasoning, "finish_reason": str(choice.get("finish_reason") or ""),
            "reasoning_encrypted": encrypted, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "cost_usd": cost, "cost_source": source, "response_id": str(response.get("id") or ""),
            "latency_s": 0.0, "attempts": int(request.get("round", 1)), "created": time.time(),
            "batch_id": ledger["batch_id"],
        }
        if verdict is not None:
            self.errors[verdict[0]] += 1
            record.update(failure=verdict[0], failure_detail=f"finish_reason {record['finish_reason']!r}, "
                          f"{len(content)} characters of content, {len(reasoning)} of reasoning")
        self.outcome[key] = record
        return [(key, record)]

    def _store(self, lines: list[tuple[str, dict]]) -> None:
        if not lines:
            return
        writer = ResponseCache(self.cache_dir, self.ns).writer()

        async def put_all() -> None:
            await asyncio.gather(*(writer.put(k, v) for k, v in lines))  # one group commit for the lot

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: no event loop in this thread
            runner: Any = lambda: asyncio.run(put_all())  # noqa: E731
        else:  # called from inside a running loop (a notebook, an async actor): a thread of its own
            def runner() -> None:
                failure: list[BaseException] = []

                def target() -> None:
                    try:
                        asyncio.run(put_all())
                    except BaseException as exc:  # re-raised below: the ledger must not be marked settled
                        failure.append(exc)

                thread = threading.Thread(target=target)
                thread.start()
                thread.join()
                if failure:
                    raise failure[0]
        try:
            runner()
        finally:
            writer.close()

    # -- sending ------------------------------------------------------------------------------------------------
    def _requests(self, items: list[dict]) -> list[dict]:
        """One request per sample still to send (and per truncated answer the retry policy asks again for)."""
        teacher = self.teacher
        max_tokens = int(teacher.sampling["max_tokens"])
        bigger = int(teacher.retry_max_tokens_cap)
        out = []
        for item in items:
            problem = item["problem"]
            for sample in item["samples"]:
                tokens = max_tokens if sample.get("base") is None else bigger
                out.append(self._request(problem, int(sample["index"]), tokens))
        return out

    def _request(self, problem: dict, index: int, max_tokens: int) -> dict:
        messages = messages_for(problem["prompt"])
        key = request_key(self.cache_url, self.teacher.model, messages, sampling_for(self.teacher, max_tokens),
                          index)
        return {"custom_id": f"s{index}-{key[:40]}", "key": key, "problem": problem, "index": index,
                "max_tokens": max_tokens, "round": 1}

    def _body(self, request: dict) -> dict:
        body = request_body(self.teacher, messages_for(request["problem"]["prompt"]), 1, request["max_tokens"])
        body.pop("model", None)  # one model per batch, given at the batch's level
        return {"custom_id": request["custom_id"], "body": body}

    def _submit(self, requests: list[dict], budget_left: float) -> tuple[tuple[str, dict] | None, list[dict]]:
        """Submit the longest prefix of `requests` that fits the provider's limits and the budget; (ledger, rest)."""
        limit = min(int(self.config["max_requests_per_batch"]), int(self.provider.max_requests))
        limit = min(limit, int(requests[0].get("cap") or limit))  # the half of a batch that failed as a whole
        max_bytes = min(int(self.config["max_bytes_per_batch"]), int(self.provider.max_bytes)) - 4096
        chosen, bodies, size, worst = [], [], 0, 0.0
        for request in requests[:limit]:
            body = self._body(request)
            line = len(json.dumps(body).encode()) + 2
            cost = self.worst_case_usd(request["problem"]["prompt"], request["max_tokens"])
            if size + line > max_bytes or worst + cost > budget_left:
                break
            chosen.append(request)
            bodies.append(body)
            size += line
            worst += cost
        if not chosen:
            return None, requests
        tag = f"{self.ns[:8]}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        price = self.teacher.price
        ledger = {
            "tag": tag, "state": "planned", "batch_id": None, "created": time.time(), "model": self.teacher.model,
            "base_url": self.teacher.base_url, "worst_case_usd": worst,
            "price": {"input_per_mtok": price["input_per_mtok"], "output_per_mtok": price["output_per_mtok"],
                      "factor": self.factor},
            "requests": [{"custom_id": r["custom_id"], "key": r["key"], "problem_id": r["problem"]["id"],
                          "index": r["index"], "max_tokens": r["max_tokens"], "round": r["round"]} for r in chosen],
        }
        path = os.path.join(ledger_dir(self.cache_dir, self.ns), f"{tag}.json")
        _write_ledger(path, ledger)  # durable before the POST: a kill during it is found again by the tag
        try:
            state = self.provider.submit(self.teacher.model, bodies, tag)
        except BatchError as exc:
            if not exc.transient:  # refused outright (4xx): nothing was created
                ledger["state"] = "never_sent"
                ledger["error"] = str(exc)
                _write_ledger(path, ledger)
                raise
            # no answer: the batch may exist; the ledger stays planned and is found by its tag on settling
            self.errors["batch_submit_unanswered"] += 1
            found = self._retry(lambda: self.provider.find(tag))
            if found is None:
                ledger["state"] = "never_sent"
                _write_ledger(path, ledger)
                raise
            state = BatchState(found, "validating")
        ledger.update(batch_id=state.id, state="submitted", status=state.status)
        _write_ledger(path, ledger)
        self.counts["submitted"] += 1
        self.totals["requests"] += len(chosen)
        return (path, ledger), requests[len(chosen):]

    def run(self, items: list[TeacherWorkItem]) -> tuple[list[TraceRow], dict]:
        """Send `items` (work items of generate.py) in batches; one Trace row per sample, and a ledger snapshot."""
        teacher = self.teacher
        max_cost = teacher.max_cost_usd
        spent_before = float(teacher.spent_before_usd or 0.0)
        queue = self._requests(items)
        by_key = {r["key"]: r for r in queue}
        samples = {(it["problem"]["id"], int(sample["index"])): (it["problem"], sample)
                   for it in items for sample in it["samples"]}
        running: list[tuple[str, dict]] = []
        stopped = ""
        rounds = int(self.config["max_rounds"])
        retry_policy = teacher.truncation_policy == "retry" and \
            int(teacher.retry_max_tokens_cap) > int(teacher.sampling["max_tokens"])
        while queue or running:
            if self.stop_event is not None and self.stop_event.is_set():
                stopped = "interrupted"
            while queue and not stopped and len(running) < int(self.config["max_batches_in_flight"]):
                committed = sum(float(ledger["worst_case_usd"]) for _, ledger in running)
                left = math.inf if max_cost is None else max_cost - spent_before - self.totals["cost_usd"] - committed
                submitted, queue = self._submit(queue, left)
                if submitted is None:
                    if not running:
                        if max_cost is None:
                            raise ValueError(f"teacher {teacher.name!r}: one request is larger than the "
                                             "batch byte limit (batch.max_bytes_per_batch)")
                        stopped = "budget"
                    break
                running.append(submitted)
            if stopped:  # batches still running are left to run; the next run collects them
                break
            if not running:
                continue
            before = list(running)
            running = self._wait(running, stop_on_event=True, until_any=True)
            ended = [ledger for item, ledger in ((i, i[1]) for i in before) if item not in running]
            asked_again: set[str] = set()
            for ledger in ended:  # requests to ask again: transient failures, truncated answers under `retry`
                if ledger["status"] == "failed" and len(ledger["requests"]) > 1:
                    # a batch fails as a whole when one request does not validate: its halves go again, as batches
                    # of their own, until the bad request is alone (the halving costs no round)
                    cap = math.ceil(len(ledger["requests"]) / 2)
                    queue[:0] = [{**by_key[e["key"]], "round": int(e["round"]), "cap": cap}
                                 for e in ledger["requests"]]
                    asked_again.update(e["key"] for e in ledger["requests"])
                    continue
                for entry in ledger["requests"]:
                    request, outcome = by_key[entry["key"]], self.outcome.get(entry["key"])
                    if isinstance(outcome, str) and int(entry["round"]) < rounds:
                        queue.append({**request, "round": int(entry["round"]) + 1, "cap": None})
                        asked_again.add(entry["key"])
                    elif retry_policy and isinstance(outcome, dict) and outcome["finish_reason"] == "length" \
                            and request["max_tokens"] < int(teacher.retry_max_tokens_cap):
                        bigger = self._request(request["problem"], request["index"],
                                               int(teacher.retry_max_tokens_cap))
                        by_key[bigger["key"]] = bigger
                        queue.append(bigger)
                        asked_again.add(entry["key"])
            if self.output_dir is not None:
                self._write_settled(ended, by_key, asked_again, samples)
        rows = self._rows(items, stopped, running)
        snapshot = {"totals": dict(self.totals), "errors": dict(self.errors), "stopped": stopped,
                    "batches": dict(self.counts)}
        self._progress(running, force=True)
        return rows, snapshot

    def _write_settled(self, ended: list[dict], by_key: dict[str, dict], asked_again: set[str],
                       samples: dict[tuple[str, int], tuple[dict, dict]]) -> None:
        """Rows whose answer (or permanent verdict) just settled, as one part file; their texts then leave memory."""
        rows = []
        for ledger in ended:
            for entry in ledger["requests"]:
                key = entry["key"]
                outcome = self.outcome.get(key)
                if key in asked_again or not isinstance(outcome, dict):
                    continue  # asked again, or a transient failure the end of the run reports
                request = by_key[key]
                problem, sample = samples[(request["problem"]["id"], int(request["index"]))]
                rows.append(build_row(self.teacher, problem, int(request["index"]), outcome))
                self.written.add((problem["id"], int(request["index"])))
                self.outcome[key] = {"written": True}
        if rows:
            from distill_ray.teacher.parts import write_part

            write_part(self.output_dir, rows)
            self.written_rows += len(rows)

    def _rows(self, items: list[dict], stopped: str, running: list[tuple[str, dict]]) -> list[dict]:
        teacher = self.teacher
        in_flight = {entry["key"] for _, ledger in running for entry in ledger["requests"]}
        max_tokens = int(teacher.sampling["max_tokens"])
        bigger = int(teacher.retry_max_tokens_cap)
        rows = []
        for item in items:
            problem = item["problem"]
            for sample in item["samples"]:
                index = int(sample["index"])
                if (problem["id"], index) in self.written:
                    continue
                base_key = self._request(problem, index, max_tokens)["key"]
                record: dict | str | None = sample.get("base") or self.outcome.get(base_key)
                if isinstance(record, dict) and record.get("finish_reason") == "length":
                    retried = self.outcome.get(self._request(problem, index, bigger)["key"])
                    if isinstance(retried, dict):
                        record = retried
                if record is None:
                    keys = {base_key, self._request(problem, index, bigger)["key"]}
                    if keys & in_flight:
                        record = (f"{stopped or 'interrupted'}: in a submitted batch; the next run collects its "
                                  "answer (it is not sent again)")
                    else:
                        record = STOP_REASONS.get(stopped, f"{stopped or 'not_sent'}: not sent")
                rows.append(build_row(teacher, problem, index, record,
                                      from_cache=sample.get("base") is not None and record is sample.get("base")))
        return rows

    def _progress(self, running: list[tuple[str, dict]], force: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (not force and now - self._last_progress < self.progress_interval_s):
            return
        self._last_progress = now
        counts = self.counts
        answered = sum(1 for v in self.outcome.values() if isinstance(v, dict))
        print(f"[generate {self.teacher.name} batch] batches: submitted {counts['submitted']}, running "
              f"{len(running)}, completed {counts['completed']}, failed {counts['failed']}, expired "
              f"{counts['expired']} | answers stored {answered} | ${self.totals['cost_usd']:.4f}",
              file=self.stream, flush=True)


def settle_batches(teacher: TeacherSpec, cache_dir: str, ns: str, stream: Any = None) -> int:
    """Finish the batches earlier runs submitted for this namespace (none: returns 0 at once, sending nothing)."""
    if not open_ledgers(cache_dir, ns):
        return 0
    from distill_ray.teacher.client import resolve_api_key

    runner = BatchRunner(teacher, cache_dir, ns, make_provider(teacher, resolve_api_key(teacher)), stream=stream)
    return runner.settle()


def run_batch_parts(teacher: TeacherSpec, items: list[TeacherWorkItem], output_dir: str, cache_dir: str, ns: str,
                    progress: Any, stop_event: threading.Event | None) -> tuple[int, int, dict]:
    """Batch mode writing `part-*.parquet` into OUTPUT_DIR as batches settle (the driver keeps no trace text);
    returns (rows written, rows of them from the cache, snapshot), as the Ray Data pipeline does."""
    from distill_ray.teacher.client import resolve_api_key
    from distill_ray.teacher.parts import write_part

    runner = BatchRunner(teacher, cache_dir, ns, make_provider(teacher, resolve_api_key(teacher)),
                         stream=progress.stream if progress.interval_s else None, stop_event=stop_event,
                         progress_interval_s=progress.interval_s or 2.0, output_dir=output_dir)
    rest, snapshot = runner.run(items)
    for start in range(0, len(rest), 1000):
        write_part(output_dir, rest[start:start + 1000])
    return runner.written_rows + len(rest), sum(1 for r in rest if r.get("from_cache")), snapshot
