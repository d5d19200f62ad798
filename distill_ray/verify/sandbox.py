"""Code sandbox: a pool of pre-started launchers, each forking one isolated process per untrusted program.

    from distill_ray.verify.sandbox import SandboxPool
    with SandboxPool(workers=2) as pool:
        print(pool.layers)                       # what isolation this host provides
        run = pool.run({"format": "call", "code": "def f(x): return x", "entry_point": "f",
                        "inputs": [encode((1,))]})
        run.values()                             # [1]

The isolation itself lives in `_launcher.py` (its docstring lists the layers). This module starts the launchers with an
empty environment, refuses to start when network isolation is impossible unless `allow_network_risk=True`, restarts a
launcher that dies (the job it held becomes an infrastructure error, never a wrong answer) and reports layers.

Not guaranteed: see `_launcher.py`; the pool gives no isolation between programs beyond what each fork provides.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from distill_ray.verify._launcher import decode, encode, read_frame, write_frame

__all__ = ["SandboxLimits", "SandboxPool", "SandboxRefused", "RunResult", "encode", "decode", "probe_layers"]

_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launcher.py")
REQUIRED_LAYERS = ("empty_env", "rlimits", "process_group")


class SandboxRefused(RuntimeError):
    """The host cannot provide an isolation layer the caller requires."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. `wall_s` kills the whole process tree; `cpu_s` defaults to the wall limit."""

    wall_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 2048
    file_mb: int = 16
    tmpfs_mb: int = 64
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 1 << 20
    result_bytes: int = 64 << 20

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s if self.cpu_s is not None else self.wall_s,
            "memory_mb": self.memory_mb,
            "file_mb": self.file_mb,
            "tmpfs_mb": self.tmpfs_mb,
            "open_files": self.open_files,
            "processes": self.processes,
            "output_bytes": self.output_bytes,
            "result_bytes": self.result_bytes,
        }


@dataclass
class RunResult:
    """What happened to one program. `outcome`: exited, timeout, output_limit, killed, or infra_error."""

    outcome: str
    report: dict[str, Any] | None = None  # the harness's report: {"stage", "results" | "error"}
    exit_code: int | None = None
    signal: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    stdout: str = ""
    stderr: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self) -> list[Any]:
        """Decoded values of a call-format run (exceptions become their names prefixed with '!')."""
        results = (self.report or {}).get("results", [])
        return [decode(r["v"]) if "v" in r else "!" + r["e"] for r in results]


def _host_layout() -> tuple[list[list[str]], list[str]]:
    """Top-level symlinks to mirror (bin -> usr/bin) and directories to bind read-only in the sandbox root."""
    links, binds = [], ["/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + top
        if os.path.islink(path):
            links.append([top, os.readlink(path)])
        elif os.path.isdir(path):
            binds.append(path)
    prefix = os.path.realpath(sys.base_prefix)
    if not any(prefix == b or prefix.startswith(b + "/") for b in binds):
        binds.append(prefix)
    return links, binds


class _Launcher:
    def __init__(self, uid: int, layers_off: dict[str, bool]) -> None:
        links, binds = _host_layout()
        python = os.path.realpath(sys.executable)
        # empty environment: nothing from the caller (API keys, tokens) reaches the launcher or its children
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-B", _LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            close_fds=True,
        )
        config = {"uid": uid, "root_links": links, "binds": binds, "layers": layers_off}
        write_frame(self.proc.stdin.fileno(), json.dumps(config).encode())
        hello = read_frame(self.proc.stdout.fileno())
        if hello is None:
            raise RuntimeError("sandbox launcher failed to start")
        self.layers: dict[str, bool] = json.loads(hello)["layers"]

    def run(self, job: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        write_frame(self.proc.stdin.fileno(), json.dumps(job).encode())
        header = read_frame(self.proc.stdout.fileno())
        result = read_frame(self.proc.stdout.fileno())
        if header is None or result is None:
            raise RuntimeError("sandbox launcher died")
        return json.loads(header), result

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class SandboxPool:
    """`workers` launchers (default: the node's cores), each with its own unprivileged uid.

    `allow_network_risk`: start even where no network namespace is available (the sweep file must say so).
    `require_layers`: further layers to insist on (e.g. ("mountns", "pidns")).
    `disable_layers`: layers to turn off, for tests of the fallbacks.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        allow_network_risk: bool = False,
        require_layers: Iterable[str] = (),
        disable_layers: Iterable[str] = (),
        uid_base: int = 61000,
        limits: SandboxLimits | None = None,
    ) -> None:
        self.size = workers or max(1, os.cpu_count() or 1)
        self.limits = limits or SandboxLimits()
        self._off = {name: False for name in disable_layers}
        self._uid_base = uid_base + (os.getpid() % 1000) * 64
        self._idle: queue.Queue[tuple[int, _Launcher]] = queue.Queue()
        self._lock = threading.Lock()
        self._launchers: list[_Launcher] = []
        self._closed = False
        first = self._start(0)
        self.layers = dict(first.layers)
        missing = [name for name in (*REQUIRED_LAYERS, *require_layers) if not self.layers.get(name)]
        if not self.layers.get("netns") and not allow_network_risk:
            missing.append("netns")
        if missing:
            self.close()
            raise SandboxRefused(
                "sandbox isolation unavailable on this host: %s (layers: %s); set allow_network_risk only if the "
                "sweep accepts untrusted code with network access" % (", ".join(missing), self.layers)
            )
        self._idle.put((0, first))
        for slot in range(1, self.size):
            self._idle.put((slot, self._start(slot)))

    def _start(self, slot: int) -> _Launcher:
        launcher = _Launcher(self._uid_base + slot, self._off)
        with self._lock:
            self._launchers.append(launcher)
        return launcher

    def run(self, job: dict[str, Any], limits: SandboxLimits | None = None) -> RunResult:
        """Run one job (see `_launcher.run_harness` for the formats); never raises for the program's behaviour."""
        job = dict(job)
        job["limits"] = (limits or self.limits).as_dict()
        slot, launcher = self._idle.get()
        try:
            header, raw = launcher.run(job)
        except (OSError, RuntimeError, ValueError) as exc:
            self._retire(launcher)
            if not self._closed:
                launcher = self._start(slot)
            return RunResult("infra_error", detail=repr(exc)[:300])
        finally:
            if not self._closed:
                self._idle.put((slot, launcher))
        report = None
        if raw:
            try:
                report = json.loads(raw)
            except ValueError:
                report = {"stage": "garbled"}
        return RunResult(
            outcome=header.get("outcome", "infra_error"),
            report=report,
            exit_code=header.get("exit_code"),
            signal=header.get("signal"),
            wall_s=header.get("wall_s", 0.0),
            cpu_s=header.get("cpu_s", 0.0),
            maxrss_kb=header.get("maxrss_kb", 0),
            stdout=header.get("stdout", ""),
            stderr=header.get("stderr", ""),
        )

    def map(self, jobs: Iterable[dict[str, Any]], limits: SandboxLimits | None = None) -> list[RunResult]:
        jobs = list(jobs)
        with ThreadPoolExecutor(self.size) as pool:
            return list(pool.map(lambda job: self.run(job, limits), jobs))

    def _retire(self, launcher: _Launcher) -> None:
        with self._lock:
            if launcher in self._launchers:
                self._launchers.remove(launcher)
        try:
            launcher.proc.kill()
        except OSError:
            pass
        launcher.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            launchers, self._launchers = self._launchers, []
        for launcher in launchers:
            launcher.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_layers() -> dict[str, bool]:
    """The isolation layers this host provides (starts and stops one launcher)."""
    pool = SandboxPool(1, allow_network_risk=True)
    try:
        return dict(pool.layers)
    finally:
        pool.close()


_SHARED: dict[str, SandboxPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(allow_network_risk: bool = False) -> SandboxPool:
    """The process-wide pool, created on first use (a Ray actor holds its own instead)."""
    key = "risk" if allow_network_risk else "strict"
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SandboxPool(allow_network_risk=allow_network_risk)
            atexit.register(_SHARED[key].close)
        return _SHARED[key]
