"""Judge trace rows (math and code) with retries, locally or as a Ray Data stage (the verify stage's library).

    from distill_ray.verify import verify_rows, verify_dataset
    rows = verify_rows(rows)                      # in-process; starts a grader pool and a sandbox pool lazily
    ds = verify_dataset(ds, concurrency=4)        # Ray Data: one VerifyBatch actor per slot, each with its own pools
    rows = judge_rows(rows, allow_network_risk=False)   # either of the two, by size and whether Ray is attached

Below RAY_DATA_VERIFY_MIN_ROWS rows (or without Ray) `judge_rows` judges in this process (`verify_rows`); above it,
and with Ray initialised, across the cluster as a Ray Data stage (`verify_dataset`, one actor per live node), in the
same order.

Each row needs "domain", "text" (the full response), "answer" (math gold) and "tests" (code test JSON); the result
rows carry "verdict", "reason" and "extracted" (records.VerifiedTrace). An "error" verdict (infrastructure trouble)
is retried up to max_retries times and is never turned into "fail". Rows whose generation failed (status "failed")
get an error verdict with reason "generation_failed" without being retried.

Not guaranteed: ordering of work inside a batch (results are returned in input order), or any speed-up beyond the
pools' sizes; that a Ray Data run is faster for small inputs (starting actors costs seconds, hence the threshold).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from distill_ray.verify.code import check_code
from distill_ray.verify.math_grader import MathGrader, shared_grader
from distill_ray.verify.sandbox import SandboxLimits, SandboxPool, shared_pool
from distill_ray.verify.verdict import Verdict, errored

# Below this many traces, judging in the driver beats starting Ray Data actors.
RAY_DATA_VERIFY_MIN_ROWS = 5000


def _judge_row(row: dict[str, Any], grader: MathGrader | None, pool: SandboxPool | None,
               limits: SandboxLimits | None, strict_boxes: bool = False) -> Verdict:
    if row.get("status") == "failed":
        return errored("generation_failed")
    domain = row.get("domain")
    text = row.get("text")
    if not isinstance(text, str):
        return errored("missing_text")
    if domain == "math":
        return (grader or shared_grader()).grade(text, str(row.get("answer", "")), strict_boxes=strict_boxes)
    if domain == "code":
        return check_code(text, row.get("tests", ""), pool=pool or shared_pool(), limits=limits)
    return errored("unknown_domain")


def verify_rows(
    rows: list[dict[str, Any]],
    *,
    max_retries: int = 2,
    grader: MathGrader | None = None,
    pool: SandboxPool | None = None,
    limits: SandboxLimits | None = None,
    concurrency: int | None = None,
    strict_boxes: bool = False,
) -> list[dict[str, Any]]:
    """Rows with "verdict", "reason", "extracted" added (new dicts, input order). `strict_boxes`: the training-data
    option of the math judge (several different boxes fail; `domains.<d>.verifier_options.strict_boxes`)."""
    width = concurrency or max(getattr(grader, "size", 0), getattr(pool, "size", 0), 2)
    verdicts: list[Verdict | None] = [None] * len(rows)
    todo = list(range(len(rows)))
    for _attempt in range(max_retries + 1):
        with ThreadPoolExecutor(width) as executor:
            results = list(executor.map(lambda i: _judge_row(rows[i], grader, pool, limits, strict_boxes), todo))
        for i, verdict in zip(todo, results):
            verdicts[i] = verdict
        todo = [i for i in todo if verdicts[i].verdict == "error" and verdicts[i].reason != "generation_failed"
                and rows[i].get("domain") in ("math", "code")]
        if not todo:
            break
    out = []
    for row, verdict in zip(rows, verdicts):
        new = dict(row)
        new.update(verdict.as_dict())
        out.append(new)
    return out


class VerifyBatch:
    """Ray Data UDF: holds a math grader pool and a sandbox pool for the actor's lifetime."""

    def __init__(self, *, workers: int | None = None, allow_network_risk: bool = False, max_retries: int = 2,
                 wall_s: float = 10.0, strict_boxes: bool = False) -> None:
        self.strict_boxes = strict_boxes
        self.grader = MathGrader(workers)
        self.pool = SandboxPool(workers, allow_network_risk=allow_network_risk)
        self.limits = SandboxLimits(wall_s=wall_s)
        self.max_retries = max_retries

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        rows = batch.to_dict("records")
        out = verify_rows(rows, max_retries=self.max_retries, grader=self.grader, pool=self.pool, limits=self.limits,
                          strict_boxes=self.strict_boxes)
        return pd.DataFrame(out)


def verify_dataset(
    ds: Any,
    *,
    concurrency: int,
    workers_per_actor: int | None = None,
    allow_network_risk: bool = False,
    max_retries: int = 2,
    batch_size: int = 64,
    strict_boxes: bool = False,
) -> Any:
    """Ray Data stage: `ds.map_batches` with `concurrency` VerifyBatch actors, each with pools of workers_per_actor."""
    from ray.data import ActorPoolStrategy

    workers = workers_per_actor or 2
    return ds.map_batches(
        VerifyBatch,
        fn_constructor_kwargs={"workers": workers, "allow_network_risk": allow_network_risk,
                               "max_retries": max_retries, "strict_boxes": strict_boxes},
        batch_format="pandas",
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=workers,
    )


def judge_rows(rows: list[dict[str, Any]], *, allow_network_risk: bool,
               strict_boxes: bool = False) -> list[dict[str, Any]]:
    """Judge rows here, or across the cluster with Ray Data when there are many and a cluster is attached; each row
    needs "problem_id" and "sample_index" besides verify_rows's fields. Input order either way."""
    import ray

    if ray.is_initialized() and len(rows) >= RAY_DATA_VERIFY_MIN_ROWS:
        nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
        ds = verify_dataset(ray.data.from_items(rows), concurrency=nodes, allow_network_risk=allow_network_risk,
                            strict_boxes=strict_boxes)
        order = {(r["problem_id"], r["sample_index"]): i for i, r in enumerate(rows)}
        return sorted(ds.take_all(), key=lambda r: order[(r["problem_id"], r["sample_index"])])
    return verify_rows(rows, pool=shared_pool(allow_network_risk), strict_boxes=strict_boxes)
