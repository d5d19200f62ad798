"""The stage's output on disk: `traces.parquet` and/or parts, read as one current row per (problem, sample)."""

from __future__ import annotations

import os
import time

from distill_ray.records import Trace, TraceRow
from distill_ray.teacher import generate_traces
from distill_ray.teacher.parts import (
    OUTPUT_FILE,
    read_traces,
    trace_files,
    trace_schema,
    write_part,
    write_table,
)


def _row(pid: str, index: int, status: str, text: str) -> dict:
    return {"problem_id": pid, "sample_index": index, "status": status, "text": text, "model": "sim/concise"}


def test_the_newest_copy_of_a_row_wins_across_layouts(tmp_path):
    folder = str(tmp_path)
    write_table(os.path.join(folder, OUTPUT_FILE), [_row("a", 0, "ok", "old a"), _row("b", 0, "error", "")])
    time.sleep(0.01)  # modification times order the files
    write_part(folder, [_row("b", 0, "ok", "b retried")])
    time.sleep(0.01)
    write_part(folder, [_row("c", 0, "ok", "c")])
    rows = {(r["problem_id"], r["sample_index"]): r["text"] for r in read_traces(folder)}
    assert rows == {("a", 0): "old a", ("b", 0): "b retried", ("c", 0): "c"}


def test_an_in_process_run_over_parts_keeps_their_rows_and_removes_them(server_factory, problems, teacher_config,
                                                                        tmp_path):
    server = server_factory()
    teacher = teacher_config(server.base_url)
    out, cache = str(tmp_path / "o"), str(tmp_path / "c")
    generate_traces(problems[:10], "c", teacher, out, cache_dir=cache, progress_interval_s=0, use_ray=False)
    first = read_traces(out)
    # the same rows as parts (what a Ray Data run leaves), then an in-process run over all problems
    os.remove(os.path.join(out, OUTPUT_FILE))
    write_part(out, first)
    summary = generate_traces(problems, "c", teacher, out, cache_dir=str(tmp_path / "c2"), progress_interval_s=0,
                              use_ray=False)
    assert summary["paid"] == len(problems) - 10  # the parts' rows were kept (another cache: nothing to reuse there)
    assert [os.path.basename(p) for p in trace_files(out)] == [OUTPUT_FILE]
    assert len(read_traces(out)) == len(problems)


def test_records_trace_names_the_stored_columns_in_order():
    """records.Trace is the one home of the trace row's fields: the Parquet schema follows it, column for column."""
    assert trace_schema().names == list(Trace.__annotations__)
    assert set(TraceRow.__annotations__) - set(Trace.__annotations__) == {"from_cache"}  # counted, never stored
