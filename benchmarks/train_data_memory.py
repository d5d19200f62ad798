"""Per-worker memory of the training data: the tokenised dataset as Python tuples in every worker (what workers held
when the examples travelled in `train_loop_config`) against the memory-mapped Arrow file they read now.

    python benchmarks/train_data_memory.py                  # the seed's size: 25,000 traces, max_length 4096
    python benchmarks/train_data_memory.py --examples 2000  # quicker

Synthetic traces with the seed's length mix (benchmarks/train_throughput.py `trace_lengths`: Sonnet-like ~700-token
and R1-like ~3K-token responses behind 100-300-token prompts, 30% R1, cut at max_length), random token ids from a
128K vocabulary (Llama's: ids above 256 are never Python's cached small ints, as in real data).
- "tuples": this process builds the EncodedExample list (input ids and targets as tuples of int) and reports how
  much its resident set grew: the cost per worker of the old path (each worker also held the examples' text, not
  counted here).
- "mmap": a fresh process opens the file with TokenizedDataset and reads every global batch of one epoch (each
  example once, as the training loop does); it reports its resident set (RSS, which counts the file's pages it
  touched: page cache shared by every worker of the node, counted once there), its unique memory (USS, psutil:
  includes file pages no other process maps yet), its anonymous (heap) memory, which no worker can share
  (/proc/self/smaps_rollup), and its peak, each over the process's own baseline after importing numpy and pyarrow.
  Per node: 8 workers' anonymous growth plus the file once.
The last stdout line is JSON. Not guaranteed: RSS figures vary with the allocator and the Python build by some
percent; the examples' text, which the old path also copied into every worker, is not counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _anonymous() -> int:
    """Anonymous (heap) memory of this process: what no other process can share, unlike mapped file pages."""
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    return 0


def _read_epoch(path: str, global_batch: int) -> dict:
    """The child: open the file, touch every global batch of one epoch, report memory."""
    import resource

    import numpy  # noqa: F401  (imported before the baseline: the libraries are not the data's cost)
    import psutil
    import pyarrow  # noqa: F401
    import pyarrow.ipc  # noqa: F401

    from distill_ray.train.data import TokenizedDataset, global_batch_indices

    process = psutil.Process()
    base, base_uss, base_anon = _rss(), process.memory_full_info().uss, _anonymous()
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data = TokenizedDataset(path)
    opened = _rss()
    tokens = 0
    for step in range(len(data) // global_batch):
        batch = [data[i] for i in global_batch_indices(len(data), step, global_batch, seed=0)]
        tokens += sum(len(e.input_ids) for e in batch)
    info = process.memory_full_info()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_after_open_mib": (opened - base) / 2**20, "rss_after_epoch_mib": (info.rss - base) / 2**20,
            "uss_after_epoch_mib": (info.uss - base_uss) / 2**20,
            "anonymous_after_epoch_mib": (_anonymous() - base_anon) / 2**20, "process_baseline_mib": base / 2**20,
            "peak_over_baseline_mib": (peak - max(base, base_peak)) / 2**20, "tokens_read": tokens}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=25_000)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--global-batch", type=int, default=50)
    parser.add_argument("--vocab", type=int, default=128_256)
    parser.add_argument("--workers-per-node", type=int, default=8)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_read_epoch(args.child, args.global_batch)))
        return {}

    import numpy as np

    sys.path.insert(0, HERE)
    from train_throughput import trace_lengths

    from distill_ray.train.data import IGNORE, EncodedExample, write_dataset

    lengths = trace_lengths(args.examples, args.max_length, seed=0, r1_share=0.3)
    rng = np.random.default_rng(0)
    gc.collect()
    before = _rss()
    encoded = []
    for i, (p, r) in enumerate(lengths):
        ids = rng.integers(300, args.vocab, p + r).tolist()
        encoded.append(EncodedExample(str(i), tuple(ids), tuple([IGNORE] * (p - 1) + ids[p:] + [IGNORE]), 0))
    gc.collect()
    tuples_mib = (_rss() - before) / 2**20
    tokens = sum(p + r for p, r in lengths)
    with tempfile.TemporaryDirectory(prefix="distill-ray-data-") as folder:
        path = write_dataset(encoded, os.path.join(folder, "tokens.arrow"))
        del encoded
        gc.collect()
        file_mib = os.path.getsize(path) / 2**20
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path,
                              "--global-batch", str(args.global_batch)], capture_output=True, text=True, check=True)
        child = json.loads(out.stdout.strip().splitlines()[-1])
    summary = {
        "benchmark": "train_data_memory", "examples": args.examples, "tokens": tokens,
        "mean_tokens": tokens / args.examples, "file_mib": file_mib,
        "tuples_per_worker_mib": tuples_mib,
        "mmap": child,
        "per_node_tuples_mib": tuples_mib * args.workers_per_node,
        # every worker's private memory plus the file's pages once (the page cache is shared)
        "per_node_mmap_mib": child["anonymous_after_epoch_mib"] * args.workers_per_node + file_mib,
        "workers_per_node": args.workers_per_node,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
