"""Driver memory and time of a generate resume over a large response cache: the SQLite index vs `load()`.

    python benchmarks/teacher_cache_resume.py [--sizes 10000,20000,40000,160000] [--chars 60000] [--load-max 20000]

The cache grows to each size in turn with synthetic answers shaped like the client's records (`--chars` characters of
reasoning plus a short content: the seed's R1 traces, ~60 KB of JSON each), keyed exactly as `generate_traces` keys
one sample of one problem. At each size every side runs in a fresh process over `size + 1` problems (one never
answered: the first new request), doing what a resume's driver does before that request can be sent:
  index_cold: `ResponseCache.index()` with no index file yet (every line is parsed and indexed once, as after the
              run that wrote them), `paid_usd()`, then `_work_items` with its streaming sink (each hit read from its
              segment and built into its row, a chunk at a time; the chunks are dropped here instead of written as
              Parquet parts, which costs the same on both sides' real paths);
  index_warm: the same with the index already built (a resume after a resume);
  load:       what the stage did before the index: `load()` (every record in a dict), `paid_in_cache`, `_work_items`
              holding every complete row. Run only up to `--load-max` records (it needs ~ records x 100 KB of RAM).
Reported per side: peak RSS of the phase (VmHWM, reset after the imports), RSS after the imports, and the seconds
from the start of the phase to the work items being ready (the time to the first new request). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODEL = "sim/long"
BASE_URL = "http://127.0.0.1:9/v1"


def _config():
    from distill_ray.config import TeacherConfig

    return TeacherConfig(base_url=BASE_URL, model=MODEL, sampling={"max_tokens": 32768})


def _problems(n: int) -> list[dict]:
    return [{"id": f"r-{i}", "domain": "math", "prompt": f"resume benchmark problem {i}"} for i in range(n)]


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        handle.write("5")


def grow(folder: str, start: int, stop: int, chars: int) -> None:
    """Append answers start..stop-1 as one new segment (as one more run's writer would)."""
    from distill_ray.teacher.cache import ResponseCache, encode_line, namespace, request_key
    from distill_ray.teacher.client import messages_for, sampling_for
    from distill_ray.teacher.spec import teacher_spec

    spec = teacher_spec("t", _config())
    writer = ResponseCache(folder, namespace(spec.cache_url, MODEL)).writer()
    sampling = sampling_for(spec, int(spec.sampling["max_tokens"]))
    filler = "".join(chr(97 + (i * 7) % 26) for i in range(997))
    batch: list[bytes] = []
    for i in range(start, stop):
        prompt = f"resume benchmark problem {i}"
        reasoning = (f"step {i}: " + filler * (chars // len(filler) + 1))[:chars]
        record = {"model": MODEL, "sample_index": 0, "max_tokens": 32768, "content": f"The answer is \\boxed{{{i}}}.",
                  "reasoning": reasoning, "finish_reason": "stop", "reasoning_encrypted": 0, "prompt_tokens": 20,
                  "completion_tokens": chars // 4, "cost_usd": 0.0001, "cost_source": "provider",
                  "response_id": f"gen-{i}", "latency_s": 1.0, "attempts": 1, "created": time.time()}
        batch.append(encode_line(request_key(spec.cache_url, MODEL, messages_for(prompt), sampling, 0), record))
        if len(batch) >= 500:
            writer._write_all(batch)
            batch = []
    if batch:
        writer._write_all(batch)
    writer.close()


def side(name: str, folder: str, size: int) -> dict:
    from distill_ray.teacher.cache import INDEX_FILE, ResponseCache, namespace
    from distill_ray.teacher.generate import _work_items, paid_in_cache
    from distill_ray.teacher.spec import teacher_spec

    spec = teacher_spec("t", _config())
    cache = ResponseCache(folder, namespace(spec.cache_url, MODEL))
    if name == "index_cold":
        for suffix in ("", "-journal"):
            if os.path.exists(os.path.join(cache.dir, INDEX_FILE + suffix)):
                os.remove(os.path.join(cache.dir, INDEX_FILE + suffix))
    problems = _problems(size + 1)
    after_imports = _status_kb("VmRSS")
    _reset_peak()
    started = time.monotonic()
    streamed = 0
    if name.startswith("index"):
        index = cache.index()
        spent = index.paid_usd()

        def sink(rows: list[dict]) -> None:
            nonlocal streamed
            streamed += len(rows)

        held, items, n_done = _work_items(problems, spec, {}, index, sink)
        index.close()
    else:
        records = cache.load()
        spent = paid_in_cache(records)
        held, items, n_done = _work_items(problems, spec, {}, records)
    ready_s = time.monotonic() - started
    return {"side": name, "records": size, "peak_rss_mb": round(_status_kb("VmHWM") / 1024, 1),
            "rss_after_imports_mb": round(after_imports / 1024, 1), "time_to_first_request_s": round(ready_s, 2),
            "held_rows": len(held), "rows_from_cache": n_done, "streamed_rows": streamed, "to_send": len(items),
            "spent_before_usd": round(spent, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,20000,40000,160000")
    parser.add_argument("--chars", type=int, default=60000)
    parser.add_argument("--load-max", type=int, default=20000)
    parser.add_argument("--dir", default=None, help="where the cache is built (default: a temporary folder)")
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args.side, args.dir, args.size)))
        return
    folder = args.dir or tempfile.mkdtemp(prefix="cache-resume-")
    results, have = [], 0
    try:
        for size in sorted(int(s) for s in args.sizes.split(",")):
            started = time.monotonic()
            grow(folder, have, size, args.chars)
            have = size
            print(f"cache at {size} records ({time.monotonic() - started:.0f} s to write)", file=sys.stderr)
            for name in ("index_cold", "index_warm", "load"):
                if name == "load" and size > args.load_max:
                    continue
                out = subprocess.run([sys.executable, __file__, "--side", name, "--dir", folder, "--size", str(size)],
                                     capture_output=True, text=True, check=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    index_peaks = [r["peak_rss_mb"] for r in results if r["side"] == "index_warm"]
    print(json.dumps({"benchmark": "teacher_cache_resume", "chars_per_record": args.chars, "results": results,
                      "index_warm_peak_rss_mb_min_max": [min(index_peaks), max(index_peaks)] if index_peaks else None,
                      "load_audit": f"load() run up to {args.load_max} records"}))


if __name__ == "__main__":
    main()
