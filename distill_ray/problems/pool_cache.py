"""A source's sampled pool (`LoadedSource`) and its cache file, so that a hub dataset is read once.

What it does
  `pool_cache_file(source, domain, cache_dir)` names `cache_dir/pools/<domain>-<hash of the source config>.jsonl`
  for hub sources (local files are not cached: re-reading them picks up edits); `write_pool_cache` writes a pool
  atomically and `read_pool_cache` reads it back, with the reader's statistics.

How to run it
  path = pool_cache_file(source, "math", "/data/cache"); loaded = read_pool_cache(path) if path.exists() else ...

What it does not guarantee
  A cache written by another version of the cache format is a different file (the version is in the hash), never
  reused; nothing here notices a hub revision that changed under a name like "main".
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_ray.files import read_jsonl, write_text
from distill_ray.problems.schema import ProblemSourceConfig
from distill_ray.records import Problem

_POOL_CACHE_VERSION = 1


@dataclass
class LoadedSource:
    """A source's sampled pool, in seeded order, and what happened to the rows that did not make it."""

    label: str
    source: str  # the Problem.source string of every row
    problems: list[Problem]
    references: dict[str, str]  # problem id -> reference solution, where the dataset has one
    stats: dict[str, Any] = field(default_factory=dict)


def pool_cache_file(source: ProblemSourceConfig, domain: str, cache_dir: str | None) -> Path | None:
    # Only hub reads are worth caching: local files are already local, and re-reading them picks up edits.
    if cache_dir is None or source.kind != "huggingface" or source.path:
        return None
    config = source.model_dump(mode="json", by_alias=True)
    key = json.dumps({"v": _POOL_CACHE_VERSION, "domain": domain, "source": config}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(os.path.expanduser(cache_dir)) / "pools" / f"{domain}-{digest}.jsonl"


def write_pool_cache(path: Path, loaded: LoadedSource) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    header = {"label": loaded.label, "source": loaded.source, "stats": loaded.stats}
    buffer.write(json.dumps(header) + "\n")
    for p in loaded.problems:
        buffer.write(json.dumps({"problem": p, "reference": loaded.references.get(p["id"])}) + "\n")
    write_text(path, buffer.getvalue())  # atomic: a crash mid-write never leaves a truncated pool later runs trust


def read_pool_cache(path: Path) -> LoadedSource:
    header, *items = read_jsonl(path)
    problems: list[Problem] = []
    references: dict[str, str] = {}
    for item in items:
        problems.append(Problem(**item["problem"]))
        if item.get("reference"):
            references[item["problem"]["id"]] = item["reference"]
    stats = dict(header["stats"], cached=str(path))
    return LoadedSource(header["label"], header["source"], problems, references, stats)
