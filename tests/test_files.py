"""The package's one JSONL reader, one input error and one atomic writer (distill_ray/files.py)."""

from __future__ import annotations

import gzip
import os

import pytest

from distill_ray import files
from distill_ray.files import InputError, iter_jsonl, read_json, read_jsonl, write_json, write_text, write_texts


def test_input_error_names_file_line_and_field() -> None:
    assert str(InputError("p.jsonl", "no problems")) == "p.jsonl: no problems"
    assert str(InputError("p.jsonl", "a row must be a JSON object", 3)) == "p.jsonl:3: a row must be a JSON object"
    assert str(InputError("p.jsonl", "missing field", 2, "id")) == "p.jsonl:2: missing field 'id'"
    error = InputError("p.jsonl", "must be a string", 4, "answer")
    assert str(error) == "p.jsonl:4: field 'answer': must be a string"
    assert (error.file, error.line, error.field, error.reason) == ("p.jsonl", 4, "answer", "must be a string")


@pytest.mark.parametrize("text, message", [
    ('{"id": 1}\n\nnot json\n', ":3: not valid JSON"),
    ('{"id": 1}\n[1, 2]\n', ":2: a row must be a JSON object"),
    ('{"id": 1}\n{"other": 2}\n', ":2: missing field 'id'"),
])
def test_reader_errors_name_the_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_jsonl(path, ("id",))


def test_reader_gives_line_numbers_skips_blank_lines_and_reads_gzip(tmp_path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    with pytest.raises(InputError, match="absent.jsonl: cannot read"):
        read_jsonl(tmp_path / "absent.jsonl")


def test_writer_replaces_whole_files_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "deep" / "scores.json"
    write_json(target, {"a": 1})
    assert read_json(target) == {"a": 1}
    write_text(target, "[]")
    assert read_json(target) == [] and os.listdir(target.parent) == ["scores.json"]


def test_a_failed_group_write_keeps_every_old_file(tmp_path, monkeypatch) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_texts({str(first): "old a", str(second): "old b"})
    real = files._write_temp

    def fail_on_second(name: str, text: str) -> str:
        if name.endswith("b.json"):
            raise OSError("injected: disk full")
        return real(name, text)

    monkeypatch.setattr(files, "_write_temp", fail_on_second)
    with pytest.raises(OSError, match="injected"):
        write_texts({str(first): "new a", str(second): "new b"})
    assert (first.read_text(), second.read_text()) == ("old a", "old b")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json"]
