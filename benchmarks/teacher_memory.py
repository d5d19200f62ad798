"""Driver memory of the generate stage at the seed's trace size, side by side with a plain streaming loop.

    python benchmarks/teacher_memory.py [--problems 4000] [--chars 60000] [--concurrency 128] [--sides a,b,c]

The simulated teacher (its own process) answers every request with ~`--chars` characters of reasoning (the seed's R1
traces with reasoning are tens of KB). Two sides, each in a fresh process so peak RSS is its own:
  distill_ray: `generate_traces` in-process (no Ray), output DIR/traces.parquet, cache beside it;
  ray_data:    `generate_traces` on a local Ray instance (2 CPUs, 2 client actors), the Ray Data pipeline: parts
               written by the actors as batches finish; the driver's own peak RSS (Ray's processes are children);
  plain:       `AsyncOpenAI` + semaphore, each answer appended to a JSONL file as it arrives (what a careful user who
               cares about memory would write; it keeps nothing, resumes nothing, retries nothing).
Reported: peak RSS (ru_maxrss) of each side's process, wall time, bytes written. The last stdout line is JSON.
The in-process distill-ray path holds every row until the final Parquet write (and on a resume loads the cache's
records), so its peak grows with problems x trace size; the figure measures that, it does not claim flat memory.
The Ray Data driver holds the work items (prompts) and per-row status fields, not the traces; a resume still loads
the cache's records into the driver (not measured here: every run starts with an empty cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODEL = "sim/long"


def _problems(n: int) -> list[dict]:
    return [{"id": f"m-{i}", "domain": "", "prompt": f"memory benchmark request {i}"} for i in range(n)]


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def ours(base_url: str, n: int, concurrency: int, folder: str) -> dict:
    from distill_ray.config import TeacherConfig
    from distill_ray.teacher import generate_traces

    before = _peak_mb()
    config = TeacherConfig(base_url=base_url, model=MODEL, concurrency=concurrency, request_timeout_s=120,
                           sampling={"max_tokens": 32768})
    summary = generate_traces(_problems(n), "mem", config, f"{folder}/out", cache_dir=f"{folder}/cache",
                              progress_interval_s=0, use_ray=False)
    size = os.path.getsize(f"{folder}/out/traces.parquet")
    return {"peak_rss_mb": _peak_mb(), "rss_after_imports_mb": before, "wall_s": summary["wall_s"],
            "ok": summary["ok"], "output_bytes": size}


def ray_data(base_url: str, n: int, concurrency: int, folder: str) -> dict:
    import ray

    from distill_ray.config import TeacherConfig
    from distill_ray.teacher import generate_traces

    # the Ray processes (GCS, raylet, the client actors) are children; ru_maxrss of SELF is the driver's own peak
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    before = _peak_mb()
    config = TeacherConfig(base_url=base_url, model=MODEL, concurrency=concurrency, actors=2, request_timeout_s=120,
                           sampling={"max_tokens": 32768})
    summary = generate_traces(_problems(n), "mem", config, f"{folder}/out", cache_dir=f"{folder}/cache",
                              progress_interval_s=0, use_ray=True, pipeline="data")
    size = sum(os.path.getsize(os.path.join(f"{folder}/out", f)) for f in os.listdir(f"{folder}/out"))
    ray.shutdown()
    return {"peak_rss_mb": _peak_mb(), "rss_after_imports_mb": before, "wall_s": summary["wall_s"],
            "ok": summary["ok"], "output_bytes": size, "parts": len(os.listdir(f"{folder}/out"))}


def plain(base_url: str, n: int, concurrency: int, folder: str) -> dict:
    from openai import AsyncOpenAI

    before = _peak_mb()

    async def main() -> dict:
        client = AsyncOpenAI(base_url=base_url, api_key="not-needed", timeout=120)
        semaphore = asyncio.Semaphore(concurrency)
        ok = 0
        with open(f"{folder}/plain.jsonl", "w", encoding="utf-8") as out:
            async def one(problem: dict) -> None:
                nonlocal ok
                async with semaphore:
                    response = await client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": problem["prompt"]}], max_tokens=32768)
                    message = response.choices[0].message
                    out.write(json.dumps({"id": problem["id"], "content": message.content,
                                          "reasoning": getattr(message, "reasoning", None)}) + "\n")
                    ok += 1

            started = time.monotonic()
            await asyncio.gather(*(one(p) for p in _problems(n)))
            wall = time.monotonic() - started
        await client.close()
        return {"wall_s": round(wall, 2), "ok": ok}

    result = asyncio.run(main())
    return {**result, "peak_rss_mb": _peak_mb(), "rss_after_imports_mb": before,
            "output_bytes": os.path.getsize(f"{folder}/plain.jsonl")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=4000)
    parser.add_argument("--chars", type=int, default=60000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--sides", default="distill_ray,ray_data,plain")
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side, base_url, folder = json.loads(args.side)
        fn = {"distill_ray": ours, "ray_data": ray_data, "plain": plain}[side]
        print(json.dumps(fn(base_url, args.problems, args.concurrency, folder)))
        return
    from distill_ray.teacher import start_teacher_server

    server = start_teacher_server(teachers={MODEL: {"style": "concise", "correct_rate": 0.5, "pad_chars": args.chars}},
                                  faults={"latency_s": 0.2}, process=True)
    results: dict = {"problems": args.problems, "chars_per_trace": args.chars, "concurrency": args.concurrency,
                     "machine": f"{os.cpu_count()} CPUs", "load_avg_at_start": os.getloadavg()}
    try:
        for side in args.sides.split(","):
            with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
                argv = [sys.executable, __file__, "--problems", str(args.problems), "--concurrency",
                        str(args.concurrency), "--side", json.dumps([side, server.base_url, folder])]
                out = subprocess.run(argv, capture_output=True, text=True, timeout=3600,
                                     env={**os.environ, "PYTHONPATH": REPO})
                if out.returncode != 0:
                    raise RuntimeError(f"{side} failed: {out.stderr[-2000:]}")
                results[side] = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps({side: results[side]}), flush=True)
    finally:
        server.stop()
    results["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
