"""Content-addressed, crash-safe store of every billed teacher response.

    cache = ResponseCache(cache_dir, namespace(base_url, model))
    cache.load()                       # {request_key: record} from every segment, torn lines skipped
    writer = cache.writer()            # this process's own append-only segment
    await writer.put(key, record)      # returns once the line is fsync'ed (group commit)

A key is `request_key(base_url, model, messages, sampling, sample_index)`: a SHA-256 of the canonical JSON of what
decides a provider's answer, so re-runs, resumes and other trials that send the same request find it. Each writer owns
one segment file (`seg-<host>-<pid>-<random>.jsonl`) and only ever appends to it, so writers on many processes or
machines never interleave; a restarted process opens a new segment, so a torn line can only be a file's last line.
Every line is `<sha256[:16] of payload> <payload JSON>`; a line whose checksum or JSON does not hold (a torn write)
is ignored on read. `put` resolves only after write+fsync, so a response counts as done only once it is durable.

Not guaranteed: a response that was billed but not yet fsync'ed when the process died is lost (the window is one
group commit, milliseconds). Two generators sending the same new request at the same moment both pay (no cross-process
locking; the sweep shares traces between trials instead of generating them twice). API keys never enter a record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any


def request_key(base_url: str, model: str, messages: list, sampling: dict, sample_index: int) -> str:
    """The content address of one sample of one request."""
    blob = json.dumps({"base_url": base_url.rstrip("/"), "model": model, "messages": messages, "sampling": sampling,
                       "sample_index": sample_index}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def namespace(base_url: str, model: str) -> str:
    """Sub-folder per (endpoint, model), so a run reads only its own teacher's segments."""
    return hashlib.sha256(f"{base_url.rstrip('/')}|{model}".encode()).hexdigest()[:16]


def encode_line(key: str, record: dict) -> bytes:
    payload = json.dumps({"k": key, "v": record}, separators=(",", ":"), ensure_ascii=False)
    return f"{hashlib.sha256(payload.encode()).hexdigest()[:16]} {payload}\n".encode()


def decode_lines(data: bytes) -> Iterator[tuple[str, dict]]:
    """Valid (key, record) pairs of a segment; a torn or corrupted line is skipped, never fatal."""
    for raw in data.split(b"\n")[:-1]:  # the piece after the last newline is an unfinished write
        line = raw.decode("utf-8", errors="replace")
        digest, _, payload = line.partition(" ")
        if len(digest) != 16 or hashlib.sha256(payload.encode()).hexdigest()[:16] != digest:
            continue
        try:
            item = json.loads(payload)
            yield item["k"], item["v"]
        except (ValueError, KeyError, TypeError):
            continue


class ResponseCache:
    """The segments of one namespace under `cache_dir`."""

    def __init__(self, cache_dir: str, ns: str):
        self.dir = os.path.join(cache_dir, ns)

    def segments(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        return sorted(os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.endswith(".jsonl"))

    def load(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        for path in self.segments():
            with open(path, "rb") as handle:
                for key, record in decode_lines(handle.read()):
                    records.setdefault(key, record)  # the first durable answer wins; later ones are duplicates
        return records

    def writer(self) -> SegmentWriter:
        return SegmentWriter(self.dir)


class SegmentWriter:
    """One process's append-only segment, with group commit: many puts, one write+fsync."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        name = f"seg-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = os.path.join(directory, name)
        self._fd: int | None = None
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self.written = 0

    def _open(self) -> int:
        if self._fd is None:
            # O_APPEND: every write lands at the end even if something else reopened the file
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def put_sync(self, key: str, record: dict) -> None:
        """Write one record durably (for callers without an event loop)."""
        self._write_all([encode_line(key, record)])

    def _write_all(self, lines: list[bytes]) -> None:
        fd = self._open()
        data = b"".join(lines)
        view = memoryview(data)
        while view:
            done = os.write(fd, view)
            view = view[done:]
        os.fsync(fd)
        self.written += len(lines)

    async def put(self, key: str, record: dict) -> None:
        """Append a record; returns once it is on disk."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((encode_line(key, record), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                # fsync blocks; a thread keeps the event loop serving the other requests meanwhile
                await asyncio.to_thread(self._write_all, [line for line, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def scrub(record: dict[str, Any]) -> dict[str, Any]:
    """A record without any field that could carry a credential (defence in depth: none should be there)."""
    return {k: v for k, v in record.items() if "key" not in k.lower() or k == "request_key"}
