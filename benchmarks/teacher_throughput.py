"""Teacher-stage throughput against the local simulated server, side by side with a plain AsyncOpenAI loop.

    python benchmarks/teacher_throughput.py [--quick] [--only a,b,c,d] [--pipeline data|actors]

Scenarios (the server runs in its own process; rates are measured at the server, from the first request it received
to the last response it sent, so client start-up is excluded for both sides; wall times include it):
  a) latency 2 s, concurrency 64/256/1024: requests/s against the ideal concurrency / latency.
  b) server limit 50 requests/s (token bucket, burst 5) at 300 ms latency, concurrency 256: achieved rate, share of
     requests answered 429, rows lost. distill-ray is given max_rps 50 (what a sweep file would say).
  c) faults 5% 5xx, 1% hangs (held 20 s), 2% dropped connections, 300 ms latency, concurrency 256: rows lost, rows
     billed twice, wall time against the fault-free run. distill-ray uses a 3 s request timeout.
  d) latency 2 s, concurrency 256, 4 waves: the Ray Data pipeline, the hand-fed actors and the plain loop in one
     run, each against the ideal; the 1-minute load average at start and end is reported with them.
The plain loop is `AsyncOpenAI(base_url, api_key)` with default settings and an asyncio.Semaphore(concurrency), in its
own process. distill-ray runs `generate_traces` on a local Ray instance (2 CPUs) with 2 client actors at concurrency
>= 256 (`--actors`; 1 below), through the Ray Data pipeline unless `--pipeline actors`.
The last stdout line is JSON. Numbers depend on the machine and on what else it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODEL = "sim/concise"
ACTORS = {"n": 2}  # client actors at concurrency >= 256 (--actors)
PIPELINE = {"name": "data"}  # distill-ray's Ray pipeline (--pipeline): the Ray Data stage or the hand-fed actors


def _problems(n: int, tag: str) -> list[dict]:
    # not built-in problems: the server answers them briefly, so bytes per request stay small and equal for both
    return [{"id": f"{tag}-{i}", "domain": "", "prompt": f"benchmark {tag} request {i}"} for i in range(n)]


def plain_worker(base_url: str, n: int, concurrency: int, tag: str) -> dict:
    from openai import AsyncOpenAI

    async def main() -> dict:
        client = AsyncOpenAI(base_url=base_url, api_key="not-needed")
        semaphore = asyncio.Semaphore(concurrency)
        lost = 0

        async def one(problem: dict) -> None:
            nonlocal lost
            async with semaphore:
                try:
                    await client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": problem["prompt"]}], max_tokens=512)
                except Exception:
                    lost += 1

        started = time.monotonic()
        await asyncio.gather(*(one(p) for p in _problems(n, tag)))
        wall = time.monotonic() - started
        await client.close()
        return {"wall_s": round(wall, 2), "lost": lost}

    return asyncio.run(main())


def run_plain(base_url: str, n: int, concurrency: int, tag: str) -> dict:
    argv = [sys.executable, __file__, "--plain-worker", json.dumps([base_url, n, concurrency, tag])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": REPO})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_ours(base_url: str, n: int, concurrency: int, tag: str, **teacher: object) -> dict:
    from distill_ray.config import TeacherConfig
    from distill_ray.teacher import generate_traces

    config = TeacherConfig(base_url=base_url, model=MODEL, concurrency=concurrency,
                           actors=ACTORS["n"] if concurrency >= 256 else 1, sampling={"max_tokens": 512}, **teacher)
    with tempfile.TemporaryDirectory() as folder:
        # probe=False: the pre-flight probe is one request sent alone (one latency before the bulk); like client
        # start-up it is left out of the rate, which the server measures from the first request it receives
        summary = generate_traces(_problems(n, tag), "bench", config, f"{folder}/out", cache_dir=f"{folder}/cache",
                                  progress_interval_s=0, probe=False, pipeline=PIPELINE["name"])
    return {"wall_s": summary["wall_s"], "lost": summary["failed"], "errors": summary["errors_by_kind"]}


def measured(server, result: dict, n: int) -> dict:
    counters = server.counters()
    window = max(1e-9, counters["last_response_at"] - counters["first_request_at"])
    status = counters["status"]
    sent = max(1, counters["requests"])
    return {**result, "rps": round(counters["billed_responses"] / window, 1), "requests_sent": counters["requests"],
            "share_429": round(status.get("429", 0) / sent, 4), "n429": status.get("429", 0),
            "billed_twice": sum(v - 1 for v in counters["billed"].values()), "rows": n}


def side_by_side(server, n: int, concurrency: int, tag: str, **teacher: object) -> dict:
    out = {}
    server.reset()
    out["distill_ray"] = measured(server, run_ours(server.base_url, n, concurrency, f"{tag}-o", **teacher), n)
    server.reset()
    out["plain"] = measured(server, run_plain(server.base_url, n, concurrency, f"{tag}-p"), n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests per scenario")
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--actors", type=int, default=2, help="distill-ray client actors at concurrency >= 256")
    parser.add_argument("--pipeline", default="data", choices=("data", "actors"),
                        help="distill-ray's Ray pipeline in scenarios a-c (d runs both)")
    parser.add_argument("--plain-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ACTORS["n"] = args.actors
    PIPELINE["name"] = args.pipeline
    if args.plain_worker:
        print(json.dumps(plain_worker(*json.loads(args.plain_worker))))
        return
    import ray

    from distill_ray.teacher import start_teacher_server

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    results: dict = {"machine": f"{os.cpu_count()} CPUs", "quick": args.quick}
    only = set(args.only.split(","))
    if "a" in only:
        server = start_teacher_server(faults={"latency_s": 2.0}, process=True)
        results["a"] = {}
        for concurrency in (64, 256, 1024):
            waves = 2 if args.quick else 4
            row = side_by_side(server, waves * concurrency, concurrency, f"a{concurrency}", request_timeout_s=30)
            ideal = concurrency / 2.0
            row["ideal_rps"] = ideal
            row["distill_ray_vs_ideal"] = round(row["distill_ray"]["rps"] / ideal, 3)
            row["plain_vs_ideal"] = round(row["plain"]["rps"] / ideal, 3)
            row["distill_ray_vs_plain"] = round(row["distill_ray"]["rps"] / max(1e-9, row["plain"]["rps"]), 2)
            results["a"][str(concurrency)] = row
            print(json.dumps({"a": {concurrency: row}}), flush=True)
        server.stop()
    if "b" in only:
        server = start_teacher_server(faults={"latency_s": 0.3, "rate_limit_rps": 50, "rate_limit_burst": 5},
                                      process=True)
        n = 400 if args.quick else 1000
        row = side_by_side(server, n, 256, "b", max_rps=50, request_timeout_s=30, max_retries=10)
        row["limit_rps"] = 50
        row["distill_ray_vs_limit"] = round(row["distill_ray"]["rps"] / 50, 3)
        results["b"] = row
        print(json.dumps({"b": row}), flush=True)
        server.stop()
    if "c" in only:
        n = 500 if args.quick else 1000
        clean = start_teacher_server(faults={"latency_s": 0.3}, process=True)
        fault_free = side_by_side(clean, n, 256, "c0", request_timeout_s=3)
        clean.stop()
        server = start_teacher_server(faults={"latency_s": 0.3, "error_rate": 0.05, "hang_rate": 0.01, "hang_s": 20,
                                              "drop_rate": 0.02, "seed": 5}, process=True)
        row = side_by_side(server, n, 256, "c", request_timeout_s=3)
        for side in ("distill_ray", "plain"):
            row[side]["fault_free_wall_s"] = fault_free[side]["wall_s"]
            row[side]["slowdown"] = round(row[side]["wall_s"] / max(1e-9, fault_free[side]["wall_s"]), 2)
        results["c"] = row
        print(json.dumps({"c": row}), flush=True)
        server.stop()
    if "d" in only:
        # the two Ray pipelines and the plain client, one after the other on one server, at concurrency 256
        server = start_teacher_server(faults={"latency_s": 2.0}, process=True)
        concurrency, ideal = 256, 256 / 2.0
        n = (2 if args.quick else 4) * concurrency
        row: dict = {"ideal_rps": ideal, "load_avg_1m_start": round(os.getloadavg()[0], 1)}
        for name in ("data", "actors"):
            PIPELINE["name"] = name
            server.reset()
            result = run_ours(server.base_url, n, concurrency, f"d-{name}", request_timeout_s=30)
            row[f"ray_{name}"] = measured(server, result, n)
            row[f"ray_{name}_vs_ideal"] = round(row[f"ray_{name}"]["rps"] / ideal, 3)
        PIPELINE["name"] = args.pipeline
        server.reset()
        row["plain"] = measured(server, run_plain(server.base_url, n, concurrency, "d-p"), n)
        row["plain_vs_ideal"] = round(row["plain"]["rps"] / ideal, 3)
        row["load_avg_1m_end"] = round(os.getloadavg()[0], 1)
        results["d"] = row
        print(json.dumps({"d": row}), flush=True)
        server.stop()
    ray.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
