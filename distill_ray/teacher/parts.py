"""The generate stage's output on disk: one `traces.parquet`, or `part-*.parquet` files written as batches finish.

    write_part(folder, rows)                  # one atomic part file; returns its path
    read_traces(folder)                       # every current row, deduplicated, as a list of dicts
    iter_trace_columns(folder, columns)       # the same rows, only the named columns, one file at a time

The in-process path writes `traces.parquet` (atomically, at the end) and then removes any parts; the Ray Data path
writes parts only, each one atomically, as its batches finish. A folder can therefore hold an older `traces.parquet`
and newer parts, or parts of several runs (a crashed run, then its resume). A row is identified by
(problem_id, sample_index); the newest file that holds a row wins (files ordered by modification time, then name),
so a resumed run's rewrite of a failed row replaces the stale one. Every reader of the stage's output goes through
`read_traces` / `iter_trace_columns`.

Not guaranteed: ordering by modification time assumes one writer per folder at a time (the stage's rule anyway).
`read_traces` returns every row of the folder at once; readers that must stay flat use `iter_trace_columns`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from distill_ray.records import Trace, TraceRow

if TYPE_CHECKING:
    import pyarrow as pa

OUTPUT_FILE = "traces.parquet"
PART_PREFIX = "part-"
TRACE_COLUMNS = list(Trace.__annotations__)  # records.Trace names the columns, in their order
_DEFAULTS = {"failure": "", "permanent": False, "reasoning_encrypted": 0, "cost_source": ""}


def trace_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("problem_id", pa.string()), ("domain", pa.string()), ("teacher", pa.string()), ("model", pa.string()),
        ("sample_index", pa.int64()), ("prompt", pa.string()), ("prompt_hash", pa.string()),
        ("content", pa.string()), ("reasoning", pa.string()), ("text", pa.string()),
        ("finish_reason", pa.string()), ("truncated", pa.bool_()), ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()), ("cost_usd", pa.float64()), ("latency_s", pa.float64()),
        ("attempts", pa.int64()), ("response_id", pa.string()), ("status", pa.string()), ("error", pa.string()),
        ("failure", pa.string()), ("permanent", pa.bool_()), ("reasoning_encrypted", pa.int64()),
        ("cost_source", pa.string()),
    ])


def write_table(path: str, rows: list[TraceRow]) -> None:
    """`rows` as one Parquet file at `path`, atomically: a reader sees the old file or the new one, never half."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    table = pa.Table.from_pylist([{c: r.get(c, _DEFAULTS.get(c)) for c in TRACE_COLUMNS} for r in rows],
                                 schema=trace_schema())
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_part(folder: str, rows: list[TraceRow]) -> str:
    """One part file of finished rows (name unique across processes); returns its path."""
    path = os.path.join(folder, f"{PART_PREFIX}{uuid.uuid4().hex}.parquet")
    write_table(path, rows)
    return path


def trace_files(folder: str) -> list[str]:
    """The folder's output files, oldest first (modification time, then name)."""
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder) if n.endswith(".parquet")
             and (n == OUTPUT_FILE or n.startswith(PART_PREFIX))]
    paths = [os.path.join(folder, n) for n in names]
    return sorted(paths, key=lambda p: (os.stat(p).st_mtime_ns, os.path.basename(p)))


def remove_parts(folder: str) -> None:
    """Delete the part files (after a `traces.parquet` holding all their rows was written)."""
    for path in trace_files(folder):
        if os.path.basename(path).startswith(PART_PREFIX):
            os.remove(path)


def _winners(files: list[str]) -> dict[str, list[int]]:
    """Per file, the row numbers that are the newest copy of their (problem_id, sample_index)."""
    import pyarrow.parquet as pq

    seen: set[tuple[str, int]] = set()
    keep: dict[str, list[int]] = {}
    for path in reversed(files):
        table = pq.read_table(path, columns=["problem_id", "sample_index"])
        rows = []
        for i, key in enumerate(zip(table.column("problem_id").to_pylist(), table.column("sample_index").to_pylist(),
                                    strict=True)):
            if key not in seen:
                seen.add(key)
                rows.append(i)
        keep[path] = rows
    return keep


def iter_trace_columns(folder: str, columns: list[str] | None = None) -> Iterator[dict]:
    """The folder's current rows (deduplicated, newest copy), with only `columns`; one file in memory at a time."""
    import pyarrow.parquet as pq

    files = trace_files(folder)
    keep = _winners(files)
    for path in files:
        if not keep[path]:
            continue
        table = pq.read_table(path, columns=columns).take(keep[path])
        yield from table.to_pylist()


def read_traces(folder: str) -> list[Trace]:
    """Every current row of a generate stage's output folder (`traces.parquet` and/or parts), deduplicated."""
    return list(iter_trace_columns(folder))
