"""What a stopped generate run loses: answers billed but never stored, and answers paid twice after a re-run.

    python benchmarks/teacher_stop_loss.py [--problems 600] [--stops 5] [--signal KILL|INT] [--concurrency 32]

The simulated teacher runs in its own process with faults on (429s with Retry-After, 5xx, hung and dropped
connections, malformed bodies, OpenRouter's errors inside 200s, truncations) and a latency, so requests are in flight
all the time. A generator (`generate_traces`, in-process, in a child process group of its own) is started over the
same problems and stopped `--stops` times at seeded random moments, then run once more to the end. With
`--signal KILL` the whole group is SIGKILLed (nothing of ours runs afterwards: what was billed but not yet fsync'ed
is lost, by construction); with `--signal INT` it gets SIGINT, which sets the stage's stop event, as the CLI does on
Ctrl-C (requests already admitted finish and are stored).

Counted from the server's billing ledger (a response is billed once its complete body is handed to the socket, so a
client that is gone is never billed) and the cache's segments (read with `ResponseCache.load()`; small here):
  lost_at_stop[i]:   billed so far minus answers stored so far, after stop i (before the next run starts);
  billed_after_the_stop[i]: of those billed, how many the server billed after the signal was sent (requests that were
                     in flight: the simulator, like a provider, finishes a generation whose client has just gone,
                     until its event loop has seen the closed connection; no client can store those);
  billed_not_stored: the same at the end; paid_twice: billing keys billed more than once, summed over the extra times.
What a careful user would write instead (a loop that appends each answer to a file as it arrives) has the same
SIGKILL window, the time between the body arriving and its write reaching the disk; there is no side-by-side run
here, the figure to compare is the in-flight count at the moment of the kill, which is printed beside each stop.
Last stdout line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODEL = "deepseek/r1-sim"
FAULTS = {"latency_s": 0.25, "latency_dist": "lognormal", "error_rate": 0.05, "drop_rate": 0.02, "hang_rate": 0.01,
          "hang_s": 6.0, "malformed_rate": 0.02, "truncate_rate": 0.02, "rate_limit_rps": 200.0,
          "rate_limit_burst": 40.0, "seed": 7}
PROFILE = {"error_in_200_rate": 0.03, "retry_after_503_rate": 0.02, "retry_after_s": 1.0, "seed": 7}


def _problems(n: int) -> list[dict]:
    from distill_ray.builtin_problems import make_problems

    return make_problems("math", "train", n, seed=11)


def _config(base_url: str, concurrency: int):
    from distill_ray.config import TeacherConfig

    return TeacherConfig(provider="openrouter", base_url=base_url, model=MODEL, concurrency=concurrency,
                         request_timeout_s=3.0, retry_base_delay_s=0.05, retry_max_delay_s=1.0, max_retries=8,
                         sampling={"max_tokens": 4096})


def child(base_url: str, folder: str, n: int, concurrency: int) -> None:
    """One generator run; SIGINT sets the stop event as the CLI does."""
    import threading

    from distill_ray.teacher import generate_traces

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    summary = generate_traces(_problems(n), "r1", _config(base_url, concurrency), f"{folder}/out",
                              cache_dir=f"{folder}/cache", progress_interval_s=0, use_ray=False, stop_event=stop)
    print(json.dumps({"ok": summary["ok"], "paid": summary["paid"], "requests": summary["requests"]}))


def _stored(folder: str, base_url: str, concurrency: int) -> int:
    from distill_ray.teacher.cache import ResponseCache, namespace
    from distill_ray.teacher.spec import teacher_spec

    spec = teacher_spec("r1", _config(base_url, concurrency))
    records = ResponseCache(f"{folder}/cache", namespace(spec.cache_url, MODEL)).load()
    return sum(1 for key in records if not key.startswith("spend:"))  # answers and billed verdicts alike


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=600)
    parser.add_argument("--stops", type=int, default=5)
    parser.add_argument("--signal", choices=("KILL", "INT"), default="KILL")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("BASE_URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.problems, args.concurrency)
        return
    from distill_ray.teacher import start_teacher_server

    rng = random.Random(args.seed)
    server = start_teacher_server(teachers={MODEL: {"style": "verbose", "correct_rate": 0.6}}, faults=FAULTS,
                                  profile=PROFILE, process=True)
    folder = tempfile.mkdtemp(prefix="stop-loss-")
    command = [sys.executable, __file__, "--problems", str(args.problems), "--concurrency", str(args.concurrency),
               "--child", server.base_url, folder]
    stops = []
    started = time.monotonic()
    try:
        for _ in range(args.stops):
            proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONPATH": REPO})
            delay = rng.uniform(2.0, 6.0)
            try:
                proc.wait(delay)
                finished = True
            except subprocess.TimeoutExpired:
                finished = False
                before = server.counters()
                in_flight, billed_before = before.get("in_flight"), before["billed_responses"]
                if args.signal == "KILL":
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    os.kill(proc.pid, signal.SIGINT)
                proc.wait(60)
            time.sleep(0.5)  # responses the server was writing when the client went are counted by now
            billed = server.billed()
            stored = _stored(folder, server.base_url, args.concurrency)
            stops.append({"after_s": round(delay, 2), "finished_before_stop": finished,
                          "server_in_flight_at_stop": None if finished else in_flight, "billed": billed,
                          "stored": stored, "lost_at_stop": billed - stored,
                          "billed_after_the_stop": None if finished else billed - billed_before})
            print(json.dumps(stops[-1]), file=sys.stderr)
        final = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO},
                               timeout=1800)
        summary = json.loads(final.stdout.strip().splitlines()[-1])
        counters = server.counters()
        stored = _stored(folder, server.base_url, args.concurrency)
        paid_twice = sum(v - 1 for v in counters["billed"].values() if v > 1)
        result = {"benchmark": "teacher_stop_loss", "signal": args.signal, "problems": args.problems,
                  "concurrency": args.concurrency, "stops": stops, "final_run": summary,
                  "billed": counters["billed_responses"], "stored_answers": stored,
                  "billed_not_stored": counters["billed_responses"] - stored, "paid_twice": paid_twice,
                  "faults": counters["faults"], "wall_s": round(time.monotonic() - started, 1),
                  "load_average": os.getloadavg()}
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", folder], check=False)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
