"""Evaluation as a service of the sweep: per student, a pool of actors with one warm engine each.

    pool = start_pool(sweep, "llama-3.1-8b", benchmarks, exp_dir)       # a dispatcher actor on the driver's node
    ref = pool.evaluate.remote(adapter_path, 100, 5000, eval_dir)        # returns at once; training goes on
    scores = ray.get(ref)                                                # list[BenchmarkScore]

`EvalWorker` is a plain class (usable without Ray) made remote at the call site with the student's
`evaluation: {actors, gpus, cpus, tensor_parallel, accelerator_type, resources}`; it loads its engine on the first
model it has to score and keeps it for every later one (the base model and every checkpoint of every trial of that
student). `EvalPool` is the dispatcher: an async actor pinned to the sweep driver's node (never a spot node) that
hands each request to an idle worker. A worker that dies mid-evaluation is replaced by a new actor and the request
is queued again; an output folder whose `scores.json` exists is answered from disk without touching a worker, so
after a driver restart nothing is evaluated twice, and a folder asked for again while it is being evaluated (a
retried trial) waits for that evaluation instead of starting another. Each evaluation leaves `worker.json`
(records.EvalWorkerRecord) beside its scores: the node, the actor and how many engines that actor had loaded.

Not guaranteed: fairness between trials beyond first come, first served; progress when every replacement dies too
(each death is retried, up to MAX_REPLACEMENTS per pool).
"""

from __future__ import annotations

import os
import time
from typing import Any

from distill_ray.config import EvaluationConfig, StudentConfig
from distill_ray.evaluate import BASE_RECHECK, RESPONSES, SCORES
from distill_ray.files import read_json, read_jsonl, write_json
from distill_ray.records import BenchmarkScore, EvalWorkerRecord, Problem

MAX_REPLACEMENTS = 16
BASE_RECHECK_ITEMS = 50  # base-model items re-scored at the end of a sweep (seeded subset)


class EvalWorker:
    """One student's engine, loaded once, scoring one model (base or adapter) per call."""

    def __init__(self, student: dict, evaluation: dict, benchmarks: dict[str, list[Problem]], *,
                 allow_network_risk: bool = False, threads: int = 1, cache_root: str | None = None):
        if cache_root:
            os.environ["DISTILL_RAY_CACHE"] = cache_root  # the tiny students are built into the sweep's cache
        import torch

        torch.set_num_threads(max(1, threads))
        self.student = StudentConfig.model_validate(student)
        self.evaluation = EvaluationConfig.model_validate(evaluation)
        self.benchmarks = benchmarks
        self.allow_network_risk = allow_network_risk
        self.engine: Any = None
        self.engine_loads = 0

    def _engine(self) -> Any:
        if self.engine is None:
            from distill_ray.evaluate.actors import EvalEngine

            self.engine = EvalEngine(self.student, backend=self.evaluation.backend,
                                     batch_size=self.evaluation.batch_size,
                                     max_batch_tokens=self.evaluation.max_batch_tokens,
                                     tensor_parallel=self.student.evaluation.tensor_parallel,
                                     length_prompts=[p["prompt"] for items in self.benchmarks.values() for p in items],
                                     max_new_tokens=self.evaluation.max_new_tokens)
            self.engine_loads += 1
        return self.engine

    def evaluate(self, adapter_path: str | None, step: int, samples: int, output_dir: str,
                 base_responses: str | None = None) -> list[BenchmarkScore]:
        """Scores of one model; a checkpoint is compared with `base_responses` (the base model's responses.jsonl)
        so that an adapter that changed nothing fails (evaluate.parity)."""
        from distill_ray.evaluate import evaluate_checkpoint

        if os.path.exists(os.path.join(output_dir, SCORES)):
            return read_json(os.path.join(output_dir, SCORES))
        started = time.time()
        scores = evaluate_checkpoint(self.student, adapter_path, self.benchmarks, self.evaluation, step=step,
                                     samples=samples, output_dir=output_dir,
                                     allow_network_risk=self.allow_network_risk, engine=self._engine(),
                                     base_responses=base_responses)
        write_json(os.path.join(output_dir, "worker.json"), self.record(started))
        return scores

    def recheck_base(self, base_dir: str, *, items: int = BASE_RECHECK_ITEMS, seed: int = 0) -> dict[str, Any]:
        """Re-generate the base model's answers to a seeded subset of the items it first answered (base_dir's
        responses.jsonl) on this worker's engine, count the greedy answers equal to the first scoring, and write
        base_recheck.json: a changed engine or non-deterministic kernels show up as a number."""
        import random

        from distill_ray.evaluate import generate_with_info

        first = read_jsonl(os.path.join(base_dir, RESPONSES))
        prompts = {(name, str(p["id"])): p["prompt"] for name, problems in self.benchmarks.items() for p in problems}
        rows = [r for r in first if (r["benchmark"], str(r["problem_id"])) in prompts]
        chosen = sorted(random.Random(seed).sample(range(len(rows)), min(items, len(rows))))
        engine = self._engine()
        again = generate_with_info(engine, [prompts[(rows[i]["benchmark"], str(rows[i]["problem_id"]))]
                                            for i in chosen],
                                   max_new_tokens=self.evaluation.max_new_tokens, adapter_path=None)
        scores_path = os.path.join(base_dir, SCORES)
        first_scores = read_json(scores_path) if os.path.exists(scores_path) else []
        recheck = {"items": len(chosen), "identical": sum(rows[i]["response"] == g.text
                                                          for i, g in zip(chosen, again, strict=True)),
                   "seed": seed,
                   "environment": engine.fingerprint(),
                   "first_environment": first_scores[0].get("environment") if first_scores else None}
        write_json(os.path.join(base_dir, BASE_RECHECK), recheck)
        return recheck

    def record(self, started: float) -> EvalWorkerRecord:
        import ray

        node_id, actor_id = "", ""
        if ray.is_initialized():  # a plain EvalWorker outside Ray records no node
            context = ray.get_runtime_context()
            node_id, actor_id = context.get_node_id(), context.get_actor_id() or ""
        return EvalWorkerRecord(node_id=node_id, actor_id=actor_id, pid=os.getpid(), engine_loads=self.engine_loads,
                                started=started, finished=time.time())


def worker_options(student: StudentConfig) -> dict[str, Any]:
    """The Ray actor options of one evaluation actor of `student` (what --dry-run prints)."""
    config = student.evaluation
    options: dict[str, Any] = {"num_cpus": config.cpus, "num_gpus": config.gpus}  # gpus >= tensor_parallel
    if config.accelerator_type:
        options["accelerator_type"] = config.accelerator_type
    if config.resources:
        options["resources"] = dict(config.resources)
    return options


class EvalPool:
    """Dispatcher of one student's evaluation actors (run as an async Ray actor: calls wait concurrently)."""

    def __init__(self, student_name: str, student: dict, evaluation: dict, benchmarks: dict[str, list[Problem]], *,
                 allow_network_risk: bool = False, cache_root: str | None = None):
        import asyncio

        import ray

        self.student_name = student_name
        self._student = StudentConfig.model_validate(student)
        options = worker_options(self._student)
        self._worker_class = ray.remote(max_restarts=0, **options)(EvalWorker)
        # one copy of the benchmark items in the object store, shared by every worker (and every replacement)
        self._args = (student, evaluation, ray.put(benchmarks))
        self._kwargs = {"allow_network_risk": allow_network_risk, "threads": max(1, int(options["num_cpus"])),
                        "cache_root": cache_root}
        self._idle: asyncio.Queue = asyncio.Queue()
        self.workers: list[Any] = []
        self.replaced = 0
        self.answered_from_disk = 0
        self.in_flight = 0
        self._running: dict[str, Any] = {}  # output_dir -> the asyncio task evaluating it
        for _ in range(self._student.evaluation.actors):
            self._idle.put_nowait(self._spawn())

    def _spawn(self) -> Any:
        student, evaluation, benchmarks = self._args
        worker = self._worker_class.remote(student, evaluation, benchmarks, **self._kwargs)
        self.workers.append(worker)
        return worker

    async def evaluate(self, adapter_path: str | None, step: int, samples: int,
                       output_dir: str, base_responses: str | None = None) -> list[BenchmarkScore]:
        import asyncio

        if os.path.exists(os.path.join(output_dir, SCORES)):
            self.answered_from_disk += 1
            return read_json(os.path.join(output_dir, SCORES))
        task = self._running.get(output_dir)
        if task is None:  # the same model asked for twice (a retried trial) is evaluated once; both get its scores
            task = asyncio.ensure_future(self._dispatch(adapter_path, step, samples, output_dir, base_responses))
            self._running[output_dir] = task
            task.add_done_callback(lambda _: self._running.pop(output_dir, None))
        return await asyncio.shield(task)

    async def _dispatch(self, adapter_path: str | None, step: int, samples: int,
                        output_dir: str, base_responses: str | None) -> list[BenchmarkScore]:
        import ray

        while True:
            worker = await self._idle.get()
            self.in_flight += 1
            try:
                scores = await worker.evaluate.remote(adapter_path, step, samples, output_dir, base_responses)
            except ray.exceptions.RayActorError:
                # the actor (or its node) died: a new one takes its place and this request waits its turn again
                self.replaced += 1
                if self.replaced > MAX_REPLACEMENTS:
                    raise
                self._idle.put_nowait(self._spawn())
                continue
            except BaseException:
                self._idle.put_nowait(worker)
                raise
            finally:
                self.in_flight -= 1
            self._idle.put_nowait(worker)
            return scores

    async def recheck_base(self, base_dir: str) -> dict[str, Any]:
        """EvalWorker.recheck_base on an idle worker (the end of a sweep: the engines are warm)."""
        worker = await self._idle.get()
        try:
            return await worker.recheck_base.remote(base_dir)
        finally:
            self._idle.put_nowait(worker)

    def actors(self) -> list[str]:
        """Actor ids of every worker this pool started (replacements included)."""
        return [w._actor_id.hex() for w in self.workers]

    def stats(self) -> dict[str, Any]:
        return {"student": self.student_name, "started": len(self.workers), "replaced": self.replaced,
                "answered_from_disk": self.answered_from_disk, "in_flight": self.in_flight, "actors": self.actors()}


def start_pool(student_name: str, student: StudentConfig, evaluation: EvaluationConfig,
               benchmarks: dict[str, list[Problem]], *, allow_network_risk: bool) -> Any:
    """Start `student_name`'s pool: the dispatcher on this (the driver's) node, its workers wherever they fit."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from distill_ray.paths import cache_root

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    pool_class = ray.remote(num_cpus=0, max_concurrency=1000, scheduling_strategy=here)(EvalPool)
    return pool_class.remote(student_name, student.model_dump(), evaluation.model_dump(),
                             benchmarks, allow_network_risk=allow_network_risk, cache_root=cache_root())


class Evaluator:
    """A trial's evaluation: `submit(checkpoint, output_dir)` returns a concurrent.futures.Future of its scores at
    once. With a pool handle the pool does the work; without one (`distill-ray train`, Tune restore), one EvalWorker
    in this process, on a thread of its own, evaluates the submissions in order."""

    def __init__(self, student_name: str, student: StudentConfig, evaluation: EvaluationConfig,
                 benchmarks: dict[str, list[Problem]], *, allow_network_risk: bool,
                 pool: Any | None = None, base_responses: str | None = None):
        self.pool = pool
        self.base_responses = base_responses  # the base model's responses.jsonl: checkpoints must differ from it
        self._local: EvalWorker | None = None
        self._executor = None
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            import torch

            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"eval-{student_name}")
            self._make = lambda: EvalWorker(student.model_dump(), evaluation.model_dump(),
                                            benchmarks, allow_network_risk=allow_network_risk,
                                            threads=torch.get_num_threads())

    def submit(self, ckpt: dict, output_dir: str) -> Any:
        if self.pool is not None:
            return self.pool.evaluate.remote(ckpt["path"], ckpt["step"], ckpt["samples"], output_dir,
                                             self.base_responses).future()
        return self._executor.submit(self._evaluate_here, ckpt, output_dir)

    def _evaluate_here(self, ckpt: dict, output_dir: str) -> list[BenchmarkScore]:
        if self._local is None:
            self._local = self._make()
        return self._local.evaluate(ckpt["path"], ckpt["step"], ckpt["samples"], output_dir, self.base_responses)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
