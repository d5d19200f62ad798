"""The response cache: content addressing, durability across processes, and torn or corrupted writes ignored."""

from __future__ import annotations

import asyncio
import os

from distill_ray.teacher.cache import ResponseCache, encode_line, request_key

MESSAGES = [{"role": "user", "content": "2+2?"}]
SAMPLING = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 100}


def test_key_depends_on_everything_that_shapes_the_answer():
    base = request_key("http://x/v1", "m", MESSAGES, SAMPLING, 0)
    assert base == request_key("http://x/v1/", "m", MESSAGES, dict(reversed(SAMPLING.items())), 0)  # canonical
    variants = [
        request_key("http://y/v1", "m", MESSAGES, SAMPLING, 0),
        request_key("http://x/v1", "m2", MESSAGES, SAMPLING, 0),
        request_key("http://x/v1", "m", [{"role": "user", "content": "2+3?"}], SAMPLING, 0),
        request_key("http://x/v1", "m", MESSAGES, {**SAMPLING, "temperature": 0.6}, 0),
        request_key("http://x/v1", "m", MESSAGES, {**SAMPLING, "max_tokens": 200}, 0),
        request_key("http://x/v1", "m", MESSAGES, SAMPLING, 1),
    ]
    assert len({base, *variants}) == 7


def test_put_is_durable_and_segments_merge(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")

    async def write(n: int, offset: int) -> None:
        writer = cache.writer()
        await asyncio.gather(*(writer.put(f"k{offset + i}", {"content": f"v{offset + i}"}) for i in range(n)))
        writer.close()

    asyncio.run(write(50, 0))
    asyncio.run(write(30, 50))  # a second process/run: its own segment
    assert len(cache.segments()) == 2
    records = cache.load()
    assert len(records) == 80 and records["k79"] == {"content": "v79"}


def test_torn_and_corrupted_lines_are_ignored(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")
    os.makedirs(cache.dir)
    good = encode_line("a", {"content": "ok"})
    corrupted = bytearray(encode_line("b", {"content": "flipped"}))
    corrupted[-5] ^= 0x01  # a flipped bit inside the payload: checksum fails
    torn = encode_line("c", {"content": "never finished"})[:-9]  # the process died mid-write
    with open(os.path.join(cache.dir, "seg-test.jsonl"), "wb") as handle:
        handle.write(good + bytes(corrupted) + encode_line("d", {"content": "after"}) + torn)
    records = cache.load()
    assert records == {"a": {"content": "ok"}, "d": {"content": "after"}}
    # a restarted writer appends to a new segment, so the torn tail never swallows a good line
    writer = cache.writer()
    writer.put_sync("c", {"content": "rewritten"})
    writer.close()
    assert cache.load()["c"] == {"content": "rewritten"}


def test_a_key_written_twice_loads_once(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")
    for value in ("first", "second"):
        writer = cache.writer()
        writer.put_sync("k", {"content": value})
        writer.close()
    assert cache.load()["k"]["content"] in ("first", "second")
    assert len(cache.segments()) == 2


def _segment_with(cache: ResponseCache, records: dict[str, dict]) -> str:
    writer = cache.writer()
    for key, record in records.items():
        writer.put_sync(key, record)
    writer.close()
    return writer.path


def test_the_index_answers_like_load_without_holding_records(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")
    _segment_with(cache, {f"k{i}": {"content": "x" * 100, "cost_usd": 0.01} for i in range(40)})
    _segment_with(cache, {"k3": {"content": "a later duplicate", "cost_usd": 0.01}, "spend:1": {"cost_usd": 0.5}})
    index = cache.index()
    loaded = cache.load()
    assert len(index) == len(loaded) == 41 and "k7" in index and "k99" not in index
    assert all(index.get(key) == record for key, record in loaded.items())
    assert index.paid_usd() == sum(r["cost_usd"] for r in loaded.values())
    path, offset, length, cost = index.entry("k7")
    assert os.path.basename(path).startswith("seg-") and length > 100 and cost == 0.01
    _segment_with(cache, {"k100": {"content": "new"}})  # a later run's answers: a refresh adds only those
    assert index.refresh() == 1 and index.get("k100") == {"content": "new"}


def test_the_index_skips_a_torn_line_and_picks_it_up_once_complete(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")
    path = _segment_with(cache, {"k0": {"content": "kept"}})
    line = encode_line("k1", {"content": "in flight"})
    with open(path, "ab") as handle:
        handle.write(line[:20])  # a process killed mid-write
    index = cache.index()
    assert len(index) == 1 and "k1" not in index
    with open(path, "ab") as handle:
        handle.write(line[20:])  # (only a live writer could finish it; this is the offset bookkeeping)
    assert index.refresh() == 1 and index.get("k1") == {"content": "in flight"}


def test_an_index_broken_by_a_crash_is_rebuilt_from_the_segments(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")
    _segment_with(cache, {f"k{i}": {"content": str(i)} for i in range(5)})
    cache.index().close()
    index_path = os.path.join(cache.dir, "index.sqlite3")
    with open(index_path, "r+b") as handle:  # a half-written file: the header and first page overwritten
        handle.write(b"\0garbage" * 512)
    index = cache.index()
    assert len(index) == 5 and index.get("k4") == {"content": "4"}


def test_a_refresh_killed_midway_keeps_its_committed_chunks_and_the_next_one_continues(tmp_path, monkeypatch):
    import distill_ray.teacher.cache as cache_module

    cache = ResponseCache(str(tmp_path), "ns")
    _segment_with(cache, {f"k{i}": {"content": str(i)} for i in range(10)})
    monkeypatch.setattr(cache_module, "_INDEX_CHUNK", 3)
    calls = {"n": 0}
    real_decode = cache_module.decode_line

    def dying_decode(raw: bytes):
        calls["n"] += 1
        if calls["n"] == 5:  # inside the second chunk
            raise KeyboardInterrupt
        return real_decode(raw)

    monkeypatch.setattr(cache_module, "decode_line", dying_decode)
    try:
        cache_module.CacheIndex(cache.dir).refresh()
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(cache_module, "decode_line", real_decode)
    index = cache_module.CacheIndex(cache.dir)
    assert len(index) == 3  # the first chunk, committed with its byte mark; the second rolled back
    assert index.refresh() == 7 and len(index) == 10 and index.get("k9") == {"content": "9"}


def test_a_put_writes_its_line_before_it_first_yields(tmp_path):
    cache = ResponseCache(str(tmp_path), "ns")

    async def main() -> None:
        writer = cache.writer()
        put = asyncio.ensure_future(writer.put("k", {"content": "arrived"}))
        await asyncio.sleep(0)  # the put has run up to its first await (waiting for the shared fsync)
        assert cache.load() == {"k": {"content": "arrived"}}  # a SIGKILL from here on cannot lose it
        await put
        writer.close()

    asyncio.run(main())
