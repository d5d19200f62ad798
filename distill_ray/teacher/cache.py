"""Content-addressed, crash-safe store of every billed teacher response.

    cache = ResponseCache(cache_dir, namespace(base_url, model))
    cache.load()                       # {request_key: record} from every segment, torn lines skipped
    index = cache.index()              # the same, without holding records: key -> (segment, offset), SQLite
    writer = cache.writer()            # this process's own append-only segment
    await writer.put(key, record)      # returns once the line is fsync'ed (group commit)

A key is `request_key(base_url, model, messages, sampling, sample_index)`: a SHA-256 of the canonical JSON of what
decides a provider's answer, so re-runs, resumes and other trials that send the same request find it. Each writer owns
one segment file (`seg-<host>-<pid>-<random>.jsonl`) and only ever appends to it, so writers on many processes or
machines never interleave; a restarted process opens a new segment, so a torn line can only be a file's last line.
Every line is `<sha256[:16] of payload> <payload JSON>`; a line whose checksum or JSON does not hold (a torn write)
is ignored on read. `put` writes its line before it yields to the event loop and resolves only after the fsync, so a
response counts as done only once it is durable.

Not guaranteed: a response that was billed but had not reached `put` when the process was killed (its body in a
socket buffer, or being parsed) is lost; one that reached `put` survives a killed process, and survives a crash of
the machine once its fsync (shared by the puts of the moment, milliseconds) is done. Two generators sending the same
new request at the same moment both pay (no cross-process locking; the sweep shares traces between trials instead of
generating them twice). API keys never enter a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sqlite3
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


def decode_line(raw: bytes) -> tuple[str, dict] | None:
    """(key, record) of one line (without or with its newline); None for a torn or corrupted one."""
    line = raw.rstrip(b"\n").decode("utf-8", errors="replace")
    digest, _, payload = line.partition(" ")
    if len(digest) != 16 or hashlib.sha256(payload.encode()).hexdigest()[:16] != digest:
        return None
    try:
        item = json.loads(payload)
        return str(item["k"]), item["v"]
    except (ValueError, KeyError, TypeError):
        return None


def decode_lines(data: bytes) -> Iterator[tuple[str, dict]]:
    """Valid (key, record) pairs of a segment; a torn or corrupted line is skipped, never fatal."""
    for raw in data.split(b"\n")[:-1]:  # the piece after the last newline is an unfinished write
        decoded = decode_line(raw)
        if decoded is not None:
            yield decoded


class ResponseCache:
    """The segments of one namespace under `cache_dir`."""

    def __init__(self, cache_dir: str, ns: str):
        self.dir = os.path.join(cache_dir, ns)

    def segments(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        return sorted(os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.endswith(".jsonl"))

    def load(self) -> dict[str, dict]:
        """Every record in memory (small caches, tests); a resume uses `index()`, which holds none of them."""
        records: dict[str, dict] = {}
        for path in self.segments():
            with open(path, "rb") as handle:
                for key, record in decode_lines(handle.read()):
                    records.setdefault(key, record)  # the first durable answer wins; later ones are duplicates
        return records

    def index(self) -> CacheIndex:
        """The namespace's index, brought up to date with every segment (see `CacheIndex`)."""
        index = CacheIndex(self.dir)
        index.refresh()
        return index

    def writer(self) -> SegmentWriter:
        return SegmentWriter(self.dir)


INDEX_FILE = "index.sqlite3"
_INDEX_CHUNK = 2000  # lines per transaction: a crash mid-refresh keeps the chunks committed before it
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, segment TEXT NOT NULL, offset INTEGER NOT NULL,"
    " length INTEGER NOT NULL, cost_usd REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS segments (name TEXT PRIMARY KEY, indexed_bytes INTEGER NOT NULL)",
)


class CacheIndex:
    """Where each record of a namespace lies (segment, byte offset, length) and what it cost, in SQLite.

        index = ResponseCache(cache_dir, ns).index()   # refreshed: every complete line of every segment indexed
        key in index; index.get(key); index.entry(key); index.paid_usd(); len(index)

    SQLite rather than an in-memory dict of offsets (160,000 keys of 64 hex characters would still be tens of MB in
    every resume, and rebuilt by reading every byte each time) or LMDB (not installed; a map size to choose): the
    standard library has it, one file holds the index, lookups and sums are queries, and a transaction makes "these
    lines are indexed" and "indexing reached this byte" one atomic step. The index is derived data: the segments stay
    the truth. A crash mid-refresh leaves the committed chunks and their byte marks, and the next refresh continues
    from there; an index file that SQLite cannot read is removed and rebuilt from the segments.

    Not guaranteed: SQLite's locking on NFS is only as good as the mount's (run one generator per namespace there, as
    for the cache itself); a segment rewritten in place (never done by `SegmentWriter`) is re-indexed only when it
    shrinks. Like `load()`, the first indexed copy of a key wins, and `paid_usd` counts each key once.
    """

    def __init__(self, directory: str):
        self.dir = directory
        self.path = os.path.join(directory, INDEX_FILE)
        self._db: sqlite3.Connection | None = None

    # -- the database ---------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(self.dir, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError:  # not a database, or a torn one: it is derived, so start it again
                self._remove()
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("SELECT count(*) FROM segments").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _remove(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + suffix)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- keeping it current ---------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Index what the segments gained since the last refresh (by any process); returns the lines indexed."""
        try:
            return self._refresh()
        except sqlite3.DatabaseError:
            self._remove()
            return self._refresh()

    def _refresh(self) -> int:
        db = self._connect()
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".jsonl")) if os.path.isdir(self.dir) else []
        added = 0
        for name in names:
            added += self._index_segment(db, name)
        return added

    def _index_segment(self, db: sqlite3.Connection, name: str) -> int:
        path = os.path.join(self.dir, name)
        added = 0
        while True:
            size = os.path.getsize(path)
            db.execute("BEGIN IMMEDIATE")  # another process refreshing the same segment waits, then sees our mark
            try:
                row = db.execute("SELECT indexed_bytes FROM segments WHERE name = ?", (name,)).fetchone()
                start = int(row[0]) if row else 0
                if start > size:  # the file shrank under us: index it again from its start
                    db.execute("DELETE FROM records WHERE segment = ?", (name,))
                    start = 0
                position, lines, entries, finished = start, 0, [], True
                if start < size:
                    with open(path, "rb") as handle:
                        handle.seek(start)
                        while lines < _INDEX_CHUNK:
                            raw = handle.readline()
                            if not raw.endswith(b"\n"):
                                break  # the end, or an unfinished last write: picked up once it is complete
                            decoded = decode_line(raw)
                            if decoded is not None:
                                cost = decoded[1].get("cost_usd") if isinstance(decoded[1], dict) else 0.0
                                cost = float(cost) if isinstance(cost, (int, float)) else 0.0
                                entries.append((decoded[0], name, position, len(raw), cost))
                            position += len(raw)
                            lines += 1
                        finished = lines < _INDEX_CHUNK
                db.executemany("INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?)", entries)
                db.execute("INSERT OR REPLACE INTO segments VALUES (?, ?)", (name, position))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            added += len(entries)
            if finished:
                return added

    # -- reading --------------------------------------------------------------------------------------------------
    def entry(self, key: str) -> tuple[str, int, int, float] | None:
        """(segment file, byte offset, length, cost) of a key's record, or None; reads no record."""
        row = self._connect().execute("SELECT segment, offset, length, cost_usd FROM records WHERE key = ?",
                                      (key,)).fetchone()
        return None if row is None else (os.path.join(self.dir, row[0]), int(row[1]), int(row[2]), float(row[3]))

    def __contains__(self, key: str) -> bool:
        return self.entry(key) is not None

    def contains(self, key: str) -> bool:
        return self.entry(key) is not None

    def get(self, key: str) -> dict | None:
        """The record of a key, read from its segment (one line), or None."""
        where = self.entry(key)
        if where is None:
            return None
        path, offset, length, _ = where
        with open(path, "rb") as handle:
            handle.seek(offset)
            decoded = decode_line(handle.read(length))
        if decoded is None or decoded[0] != key:
            raise RuntimeError(f"response cache {path}: the index points at byte {offset} for key {key[:16]}…, but "
                               f"the line there is not that record; remove {self.path} to rebuild the index")
        return decoded[1]

    def paid_usd(self) -> float:
        """Dollars recorded as paid: answers, permanent verdicts and billed non-answers, each key once."""
        return float(self._connect().execute("SELECT COALESCE(SUM(cost_usd), 0) FROM records").fetchone()[0])

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM records").fetchone()[0])


class SegmentWriter:
    """One process's append-only segment, with group commit: many puts, one write+fsync."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        name = f"seg-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = os.path.join(directory, name)
        self._fd: int | None = None
        self._pending: list[asyncio.Future] = []  # puts written, waiting for their fsync
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

    def _write_now(self, data: bytes) -> None:
        """Hand bytes to the kernel: from here they survive the death of this process (not of the machine)."""
        fd = self._open()
        view = memoryview(data)
        while view:
            done = os.write(fd, view)
            view = view[done:]

    def _write_all(self, lines: list[bytes]) -> None:
        self._write_now(b"".join(lines))
        os.fsync(self._open())
        self.written += len(lines)

    async def put(self, key: str, record: dict) -> None:
        """Append a record; returns once it is on disk.

        The line is written at once, before anything else can run (a SIGKILL after this call started cannot lose it);
        the fsync that makes it survive a machine crash is shared with the other puts of the moment, in a thread.
        """
        self._write_now(encode_line(key, record))
        self.written += 1
        future = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                # fsync blocks; a thread keeps the event loop serving the other requests meanwhile
                await asyncio.to_thread(os.fsync, self._open())
            except Exception as exc:
                for future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future in batch:
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def scrub(record: dict[str, Any]) -> dict[str, Any]:
    """A record without any field that could carry a credential (defence in depth: none should be there)."""
    return {k: v for k, v in record.items() if "key" not in k.lower() or k == "request_key"}
