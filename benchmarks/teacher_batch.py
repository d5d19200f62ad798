"""Batch mode against online mode on the simulated OpenRouter endpoints: dollars and wall time for the same requests.

    python benchmarks/teacher_batch.py [--requests 8000] [--batch-only 160000] [--latency 0.5] [--concurrency 256]

Both sides run `generate_traces` in this process against one simulated server in its own process, on the same
requests (new prompts, answered briefly, so bytes per request stay small), with the same prices (simulated teacher and
price table: $3 / $15 per million tokens in / out, Sonnet's list price). Online: `mode: online` at `--concurrency`
with a fixed `--latency` per request, what a careful user runs today. Batch: `mode: batch`, batches of 5,000
(OpenRouter's documented limit), each finishing `--batch-s` after it was submitted, polled from 0.05 s doubling to
0.5 s. `--batch-only N` adds a batch-mode run of N requests (the seed's 160,000) without its online counterpart.

What the figures mean: the dollars are what the simulator billed (`usage.cost`, half price in batches, as OpenRouter's
guide says is typical); the wall times measure this driver plus the simulator, not a provider: a real batch takes
minutes to 24 hours. Numbers depend on the machine and what else runs on it (the 1-minute load average is reported).
The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODEL = "anthropic/claude-sim"
PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


def _problems(n: int, tag: str) -> list[dict]:
    return [{"id": f"{tag}-{i}", "domain": "", "prompt": f"benchmark {tag} request {i}"} for i in range(n)]


def _run(server_url: str, mode: str, n: int, tag: str, args: argparse.Namespace, folder: str) -> dict:
    from distill_ray.config import TeacherConfig
    from distill_ray.teacher import generate_traces

    config = TeacherConfig(provider="openrouter", base_url=server_url, model=MODEL, mode=mode, price=PRICE,
                           sampling={"temperature": None, "top_p": None, "max_tokens": 1024},
                           concurrency=args.concurrency, request_timeout_s=60.0,
                           batch={"poll_initial_s": 0.05, "poll_max_s": 0.5, "max_batches_in_flight": 64})
    started = time.monotonic()
    summary = generate_traces(_problems(n, tag), mode, config, os.path.join(folder, f"{mode}-{tag}"),
                              cache_dir=os.path.join(folder, f"cache-{mode}-{tag}"), use_ray=False,
                              progress_interval_s=0, probe=False)
    wall = time.monotonic() - started
    return {"mode": mode, "requests": n, "ok": summary["ok"], "paid": summary["paid"],
            "cost_usd": round(summary["cost_usd"], 6), "wall_s": round(wall, 1),
            "batches": summary.get("batches", {})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--batch-only", type=int, default=0, help="also a batch-only run of this many requests")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--batch-s", type=float, default=1.0)
    args = parser.parse_args()

    from distill_ray.teacher import start_teacher_server

    teachers = {MODEL: {"style": "concise", "correct_rate": 0.8, "price_in_per_mtok": PRICE["input_per_mtok"],
                        "price_out_per_mtok": PRICE["output_per_mtok"]}}
    server = start_teacher_server(teachers=teachers, faults={"latency_s": args.latency}, process=True,
                                  profile={"batches": {"complete_after_s": args.batch_s}})
    results = {"load_1min_start": round(os.getloadavg()[0], 1), "latency_s": args.latency,
               "concurrency": args.concurrency, "batch_complete_after_s": args.batch_s}
    try:
        with tempfile.TemporaryDirectory() as folder:
            online = _run(server.base_url, "online", args.requests, "a", args, folder)
            print(json.dumps(online), flush=True)
            batch = _run(server.base_url, "batch", args.requests, "b", args, folder)
            print(json.dumps(batch), flush=True)
            results.update(online=online, batch=batch,
                           batch_cost_share=round(batch["cost_usd"] / online["cost_usd"], 4) if online["cost_usd"]
                           else None)
            if args.batch_only:
                big = _run(server.base_url, "batch", args.batch_only, "c", args, folder)
                print(json.dumps(big), flush=True)
                results["batch_only"] = big
            results["paid_twice"] = len(server.duplicates())
    finally:
        server.stop()
    results["load_1min_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
