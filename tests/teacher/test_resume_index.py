"""A resume reads the cache through its index (no record held for the whole run), and a retried Ray Data batch
finds the answers an earlier try stored; against the real simulated teacher and the real SQLite index."""

from __future__ import annotations

import pytest

from distill_ray.records import TeacherWorkItem, WorkProblem, WorkSample
from distill_ray.teacher import generate_traces
from distill_ray.teacher.cache import CacheIndex, ResponseCache, namespace
from distill_ray.teacher.dataflow import fill_from_cache
from distill_ray.teacher.generate import _work_items
from distill_ray.teacher.spec import teacher_spec


def test_a_resume_reads_the_index_and_never_loads_every_record(server_factory, problems, teacher_config, tmp_path,
                                                               monkeypatch):
    server = server_factory()
    teacher = teacher_config(server.base_url)
    cache = str(tmp_path / "c")
    first = generate_traces(problems[:12], "c", teacher, str(tmp_path / "o1"), cache_dir=cache,
                            progress_interval_s=0, use_ray=False)

    def no_load(self):
        raise AssertionError("a resume must not load every record")

    monkeypatch.setattr(ResponseCache, "load", no_load)
    again = generate_traces(problems[:12], "c", teacher, str(tmp_path / "o2"), cache_dir=cache,
                            progress_interval_s=0, use_ray=False)  # a new output: every row from the cache
    assert again["ok"] == 12 and again["requests"] == 0 and again["from_cache"] == 12
    assert again["spent_before_usd"] == pytest.approx(first["cost_usd"])
    assert server.billed() == 12


def test_work_items_stream_cache_hits_to_a_sink_in_chunks(server_factory, problems, teacher_config, tmp_path,
                                                          monkeypatch):
    import distill_ray.teacher.generate as generate_module

    server = server_factory()
    teacher = teacher_config(server.base_url)
    cache = str(tmp_path / "c")
    generate_traces(problems[:10], "c", teacher, str(tmp_path / "o"), cache_dir=cache, progress_interval_s=0,
                    use_ray=False)
    monkeypatch.setattr(generate_module, "_SINK_ROWS", 3)
    spec = teacher_spec("c", teacher)
    chunks: list[int] = []
    index = ResponseCache(cache, namespace(spec.cache_url, spec.model)).index()
    held, items, n_done = _work_items(problems[:12], spec, {}, index, lambda rows: chunks.append(len(rows)))
    assert held == [] and n_done == 10 and max(chunks) <= 3 + 1 and sum(chunks) == 10
    assert [len(i["samples"]) for i in items] == [1, 1]  # the two problems never answered
    # the work items that cross to the teacher actors have their schema in records.py
    assert all(set(i) == set(TeacherWorkItem.__annotations__) and set(i["problem"]) == set(WorkProblem.__annotations__)
               and all(set(s) == set(WorkSample.__annotations__) for s in i["samples"]) for i in items)


def test_a_retried_batch_is_filled_from_what_the_first_try_stored(server_factory, problems, teacher_config,
                                                                  tmp_path):
    server = server_factory()
    teacher = teacher_config(server.base_url)
    cache = str(tmp_path / "c")
    spec = teacher_spec("c", teacher)
    ns = namespace(spec.cache_url, spec.model)
    index = ResponseCache(cache, ns).index()
    _, items, _ = _work_items(problems[:6], spec, {}, index)  # the batch as the driver listed it: nothing stored
    assert all(s["base"] is None for it in items for s in it["samples"])
    # the first try (an actor that died after storing its answers) ran meanwhile
    generate_traces(problems[:4], "c", teacher, str(tmp_path / "o"), cache_dir=cache, progress_interval_s=0,
                    use_ray=False)
    assert fill_from_cache(CacheIndex(index.dir), spec, items) == 4
    assert [s["base"] is not None for it in items for s in it["samples"]] == [True] * 4 + [False] * 2
