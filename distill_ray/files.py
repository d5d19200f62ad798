"""Reading and writing the project's text files: one JSONL reader, one error for bad input, one atomic writer.

    from distill_ray.files import InputError, read_jsonl, write_json
    rows = read_jsonl("verified.jsonl", required=("problem_id", "verdict"))   # InputError(file, reason, line, field)
    write_json("done.json", summary)            # a reader sees the old file or the new one, never half of one

A ground-floor module: it imports nothing from the package, so every folder (and `experiment`, which re-exports it)
may use it without an arrow pointing back up. A path ending in ".gz" is read through gzip.

What it does not guarantee: atomicity beyond one file on a POSIX filesystem (tmp file, fsync, os.replace, fsync of
the folder); a folder fsync is skipped where the platform cannot open folders. Rows are checked for being JSON
objects with the `required` fields, nothing more: field types are the caller's to check.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

MISSING_FIELD = "missing field"


class InputError(ValueError):
    """A file that cannot be used as input; the message names the file, then the line and the field when known."""

    def __init__(self, file: str, reason: str, line: int | None = None, field: str | None = None) -> None:
        self.file, self.reason, self.line, self.field = str(file), reason, line, field
        where = f"{file}:{line}" if line is not None else str(file)
        if field is None:
            message = f"{where}: {reason}"
        elif reason == MISSING_FIELD:
            message = f"{where}: missing field {field!r}"
        else:
            message = f"{where}: field {field!r}: {reason}"
        super().__init__(message)


def iter_jsonl(path: str | os.PathLike[str], required: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line; InputError for a file that cannot be read, a line that is not
    a JSON object, or a row without one of the `required` fields."""
    name = os.fspath(path)
    opener: Any = gzip.open if name.endswith(".gz") else open
    required = tuple(required)
    try:
        with opener(name, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise InputError(name, f"not valid JSON ({getattr(exc, 'msg', exc)})", number) from None
                if not isinstance(row, dict):
                    raise InputError(name, "a row must be a JSON object", number)
                for field in required:
                    if field not in row:
                        raise InputError(name, MISSING_FIELD, number, field)
                yield number, row
    except OSError as exc:
        raise InputError(name, f"cannot read ({exc.strerror or exc})") from None


def read_jsonl(path: str | os.PathLike[str], required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every row of a JSONL file, in file order (see iter_jsonl for the errors)."""
    return [row for _, row in iter_jsonl(path, required)]


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file's value; InputError naming the file (and the line of a syntax error)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"not valid JSON ({exc.msg})", exc.lineno) from None


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or filesystem that cannot open folders: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(name: str, text: str) -> str:
    """`text` in a synced temporary sibling of `name` (folders made as needed); returns the temporary path."""
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    tmp = f"{name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` so that a reader sees the old file or the new one, never half of one (even after a crash)."""
    write_texts({os.fspath(path): text})


def write_texts(outputs: dict[str, str]) -> None:
    """Write every file to a temporary sibling first and, only when all are written, rename each over its target:
    a failure while writing leaves every old file intact (and no temporary file behind). The renames themselves
    happen one by one; a crash between them leaves some files new and some old."""
    temps: dict[str, str] = {}
    try:
        for path, text in outputs.items():
            temps[path] = _write_temp(os.fspath(path), text)
    except BaseException:
        for tmp in temps.values():
            _remove_quietly(tmp)
        raise
    for path, tmp in temps.items():
        os.replace(tmp, path)
    for folder in sorted({os.path.dirname(os.fspath(p)) or "." for p in temps}):
        _fsync_folder(folder)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1) -> None:
    write_text(path, json.dumps(data, indent=indent, default=str))


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
