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
