"""Pinned public files: fetched once by URL into the cache and trusted only when their sha256 matches the pin.

The ground floor for every module that needs a public benchmark file (problems/, verify/'s score command): it
imports nothing from the package but `paths`, so any folder may use it without pulling another folder in.

What it does not guarantee
  Only the bytes are checked, not what they mean: a pin that names the wrong file is trusted. A download is written
  to a temporary name in the cache folder and renamed only after its sha256 matches; no file lock is taken, so two
  processes fetching at once both download (the second rename wins, with the same bytes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distill_ray.paths import cache_root


@dataclass(frozen=True)
class PinnedFile:
    """A public file identified by its bytes: where to fetch it, its sha256, the cache file name."""

    url: str
    sha256: str
    filename: str


MATH500_FILE = PinnedFile(
    url="https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/ff5b20257d8185524591543f8ff5993951537bb8/test.jsonl",
    sha256="35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
    filename="MATH-500-test.jsonl",
)
MBPPPLUS_FILE = PinnedFile(
    url="https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz",
    sha256="af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63",
    filename="MbppPlus-v0.2.0.jsonl.gz",
)


def default_cache_dir() -> Path:
    return Path(cache_root()) / "benchmarks"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _urlopen_download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def fetch_pinned(
    pinned: PinnedFile,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    download: Callable[[str, Path], None] = _urlopen_download,
) -> Path:
    """The cached copy of a pinned file, downloading it first when absent; ValueError when the bytes differ."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / pinned.filename
    if target.exists():
        actual = file_sha256(target)
        if actual == pinned.sha256:
            return target
        raise ValueError(
            f"{target}: sha256 {actual} does not match the pin {pinned.sha256}; delete it to download again"
        )
    directory.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{pinned.filename}.")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        download(pinned.url, tmp)
        actual = file_sha256(tmp)
        if actual != pinned.sha256:
            raise ValueError(f"{pinned.url}: downloaded sha256 {actual} does not match the pin {pinned.sha256}")
        tmp.replace(target)  # only verified bytes ever sit at the cached name
    finally:
        tmp.unlink(missing_ok=True)
    return target
