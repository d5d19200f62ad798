"""Sandbox launcher: a pre-started, single-threaded process that forks one isolated child per untrusted program.

Started by `distill_ray.verify.sandbox` as `python -I -S _launcher.py` with an empty environment; it imports only the
standard library so the child it forks carries nothing from the caller (no Ray, no API keys, no site-packages).
Protocol on stdin/stdout: frames of a 4-byte big-endian length followed by a JSON body. The first request is the
configuration; the reply lists the isolation layers this host provides. Each later request is a job; the reply is a
header frame followed by a frame holding the raw bytes the program's harness wrote to its result channel.

Per job (when the host allows it; the probe reports what it does):
  fork -> new session; stdin /dev/null; stdout/stderr/result on pipes drained by this process and capped
       -> unshare(net, mount, pid, ipc, uts) -> fork again so the program is PID 1 of its own PID namespace:
          when it ends, the kernel kills everything it started, daemons included
       -> private tmpfs root: read-only binds of /usr and the Python installation, /dev/{null,zero,random,urandom},
          a fresh /proc, writable /work and /tmp inside the tmpfs (gone with the namespace)
       -> chroot, drop to an unprivileged per-slot uid, no_new_privs, parent-death signal, rlimits
       -> the harness (below) runs the program and the tests in-process and writes plain values to the result fd.
The child never receives expected outputs: the harness reports values, the caller compares them.
A wall-clock deadline kills the whole tree (process group, then PID-namespace teardown).

Not guaranteed: protection against kernel exploits, side channels, or CPU starvation of neighbours (no cgroups).
Without a mount namespace the program can read world-readable host files; without a PID namespace, processes of the
slot's uid are killed by a /proc scan after the run.
"""

from __future__ import annotations

import ast
import builtins
import collections
import ctypes
import fcntl
import io
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import sys
import tempfile
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
RESULT_FD = 3
STATUS_FD = 4

# ------------------------------------------------------------------ value codec (shared with the caller)
# Type-exact: only these exact builtin types are encoded; anything else (a subclass of int, an object with a custom
# __eq__) becomes ["?", type name], which never equals an expected value.


_DICT_LIKE = (collections.Counter, collections.OrderedDict, collections.defaultdict)


def encode(value: object, depth: int = 0) -> list:
    t = type(value)
    if depth > 200:
        return ["?", "too_deep"]
    if value is None:
        return ["n"]
    if t is bool:
        return ["b", value]
    if t is int:
        return ["i", str(value)] if abs(value) > 2**53 else ["i", value]
    if t is float:
        return ["f", repr(value)]
    if t is str:
        return ["s", value]
    if t is list:
        return ["l", [encode(v, depth + 1) for v in value]]
    if t is tuple:
        return ["t", [encode(v, depth + 1) for v in value]]
    if t is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if t is set:
        return ["S", [encode(v, depth + 1) for v in value]]
    if t is frozenset:
        return ["F", [encode(v, depth + 1) for v in value]]
    if t is complex:
        return ["c", [repr(value.real), repr(value.imag)]]
    if t is bytes:
        return ["y", value.hex()]
    if t in _DICT_LIKE:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]]
    if tuple in t.__bases__ and t.__dict__.get("_fields") is not None:
        # a namedtuple travels as its plain contents; whatever __eq__ it defines is never called
        return ["t", [encode(v, depth + 1) for v in tuple.__iter__(value)]]
    return ["?", t.__name__ if isinstance(t.__name__, str) else "object"]


class _NotPlain(Exception):
    pass


class _HashSink:
    def __init__(self):
        import hashlib

        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return len(data)


try:
    import pickle

    class _PlainPickler(pickle.Pickler):
        # the C pickler consults reducer_override only for objects that are not exact builtin containers/scalars,
        # so this rejects subclasses and custom objects at C speed
        def reducer_override(self, obj):
            if type(obj) is complex or obj is complex:
                return NotImplemented
            raise _NotPlain(type(obj).__name__)
except ImportError:  # pragma: no cover
    _PlainPickler = None

SMALL_RESULT_BYTES = 256 << 10


def encode_result(value: object) -> list:
    """Small values travel as tagged JSON; large ones as a digest of their memo-free pickle (equal values of the
    same shape give equal digests), so a huge output costs a hash rather than a huge message."""
    sink = _HashSink()
    try:
        pickler = _PlainPickler(sink, protocol=4)
        pickler.fast = True  # no memo: identical bytes for equal structures, whatever object sharing they have
        pickler.dump(value)
    except (_NotPlain, RecursionError, ValueError):
        return encode(value)  # the tagged encoder knows the few stdlib containers allowed, and rejects the rest
    if sink.size <= SMALL_RESULT_BYTES:
        return encode(value)
    return ["h", sink.digest.hexdigest()]


class Digest:
    """A large value known only by its digest; equal to another Digest of the same bytes."""

    __slots__ = ("hexdigest",)

    def __init__(self, hexdigest: str) -> None:
        self.hexdigest = str(hexdigest)

    def __eq__(self, other):
        return type(other) is Digest and other.hexdigest == self.hexdigest

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.hexdigest)

    def __repr__(self):
        return "<digest %s>" % self.hexdigest[:12]


class Opaque:
    """A decoded value the child could not express as plain data; equal to nothing, itself included."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = str(type_name)

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __repr__(self):
        return "<unsupported %s>" % self.type_name


def contains_opaque(value: object) -> bool:
    """Whether a decoded value holds an Opaque anywhere (such values are never equal to anything)."""
    if isinstance(value, Opaque):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(contains_opaque(v) for v in value)
    if isinstance(value, dict):
        return any(contains_opaque(k) or contains_opaque(v) for k, v in value.items())
    return False


def decode(item: list) -> object:
    tag = item[0]
    if tag == "n":
        return None
    if tag == "b":
        return bool(item[1])
    if tag == "i":
        return int(item[1])
    if tag == "f":
        return float(item[1])
    if tag == "s":
        return str(item[1])
    if tag == "l":
        return [decode(v) for v in item[1]]
    if tag == "t":
        return tuple(decode(v) for v in item[1])
    if tag == "d":
        return {decode(k): decode(v) for k, v in item[1]}
    if tag == "S":
        return {decode(v) for v in item[1]}
    if tag == "F":
        return frozenset(decode(v) for v in item[1])
    if tag == "c":
        return complex(float(item[1][0]), float(item[1][1]))
    if tag == "y":
        return bytes.fromhex(item[1])
    if tag == "h":
        return Digest(item[1])
    return Opaque(item[1])


# ------------------------------------------------------------------ framing


def write_frame(fd: int, body: bytes) -> None:
    data = struct.pack(">I", len(body)) + body
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    head = read_exact(fd, 4)
    if head is None:
        return None
    return read_exact(fd, struct.unpack(">I", head)[0])


# ------------------------------------------------------------------ isolation

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), "mount %s" % target)


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def _try_in_child(fn):
    """Run fn in a forked child; True when it returned without raising."""
    pid = os.fork()
    if pid == 0:
        try:
            ok = fn()
            os._exit(0 if ok is not False else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def probe_layers(mountpoint: str) -> dict[str, bool]:
    layers = {"empty_env": True, "rlimits": True, "process_group": True, "fresh_process": True}
    layers["uid_drop"] = os.geteuid() == 0
    for name, flag in (("netns", CLONE_NEWNET), ("ipcns", CLONE_NEWIPC), ("utsns", CLONE_NEWUTS)):
        layers[name] = _try_in_child(lambda flag=flag: unshare(flag))

    def loopback_blocked():
        unshare(CLONE_NEWNET)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", 9))
        except ConnectionRefusedError:
            return False  # loopback still reachable in the new namespace: not isolated
        except OSError:
            return True
        return False

    layers["netns"] = layers["netns"] and _try_in_child(loopback_blocked)

    def mount_works():
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", mountpoint, "tmpfs", MS_NOSUID, "size=1m")
        return True

    layers["mountns"] = _try_in_child(mount_works)

    def pidns_works():
        unshare(CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if os.getpid() == 1 else 1)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    layers["pidns"] = _try_in_child(pidns_works)
    return layers


def _bind_readonly(src, dst):
    mount(src, dst, None, MS_BIND | MS_REC)
    mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def build_root(mountpoint: str, config: dict, limits: dict, with_proc: bool) -> str:
    """A private root in a tmpfs: read-only system and Python paths, writable /work and /tmp, nothing else."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", mountpoint, "tmpfs", MS_NOSUID, "size=%dm,mode=755" % limits["tmpfs_mb"])
    for name in ("work", "tmp", "dev", "proc"):
        os.mkdir(os.path.join(mountpoint, name))
    for top in config["root_links"]:
        os.symlink(top[1], os.path.join(mountpoint, top[0]))
    for path in config["binds"]:
        target = mountpoint + path
        os.makedirs(target, exist_ok=True)
        _bind_readonly(path, target)
    for dev in ("null", "zero", "random", "urandom"):
        target = os.path.join(mountpoint, "dev", dev)
        open(target, "w").close()
        mount("/dev/" + dev, target, None, MS_BIND)
    if with_proc:
        mount("proc", os.path.join(mountpoint, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chmod(os.path.join(mountpoint, "tmp"), 0o1777)
    os.chmod(os.path.join(mountpoint, "work"), 0o700)
    return os.path.join(mountpoint, "work")


def apply_rlimits(limits: dict) -> None:
    cpu = int(math.ceil(limits["cpu_s"]))
    settings = (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits["memory_mb"] << 20,) * 2),
        (resource.RLIMIT_FSIZE, (limits["file_mb"] << 20,) * 2),
        (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
        (resource.RLIMIT_NPROC, (limits["processes"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_STACK, (min(limits["memory_mb"], 64) << 20,) * 2),
    )
    for which, value in settings:
        resource.setrlimit(which, value)


def reap_uid(uid: int) -> None:
    """Kill every process owned by uid (the fallback when there is no PID namespace to tear down)."""
    me = os.getpid()
    for _ in range(300):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open("/proc/%s/status" % entry) as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                os.kill(int(entry), signal.SIGKILL)
                                found = True
                            break
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.01)


# ------------------------------------------------------------------ the job


class Launcher:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.uid = int(config["uid"])
        self.mountpoint = tempfile.mkdtemp(prefix="distill-sandbox-")
        self.layers = probe_layers(self.mountpoint)
        wanted = config.get("layers") or {}
        for name, on in wanted.items():
            if on is False and name in self.layers:
                self.layers[name] = False

    def close(self) -> None:
        try:
            os.rmdir(self.mountpoint)
        except OSError:
            pass

    def run(self, job: dict) -> tuple[dict, bytes]:
        limits = job["limits"]
        layers = self.layers
        pipes = {name: os.pipe() for name in ("out", "err", "res", "status")}
        hostdir = None
        if not layers["mountns"]:
            hostdir = tempfile.mkdtemp(prefix="distill-work-")
            if layers["uid_drop"]:
                os.chown(hostdir, self.uid, self.uid)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                self._child(job, pipes, hostdir)
            finally:
                os._exit(120)
        for name in pipes:
            os.close(pipes[name][1])
        header, result = self._supervise(pid, pipes, limits, started)
        if not layers["pidns"] and layers["uid_drop"]:
            reap_uid(self.uid)
        if hostdir is not None:
            _remove_tree(hostdir)
        return header, result

    def _child(self, job, pipes, hostdir):
        """First child: new session, private namespaces, then fork the program as PID 1 of the new PID namespace."""
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # move every source above the target range first, so no dup2 below clobbers a pipe not yet moved
        sources = [os.open("/dev/null", os.O_RDONLY)] + [pipes[n][1] for n in ("out", "err", "res", "status")]
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in sources]
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        os.closerange(STATUS_FD + 1, 65536)
        layers = self.layers
        flags = 0
        for name, flag in (("netns", CLONE_NEWNET), ("mountns", CLONE_NEWNS), ("pidns", CLONE_NEWPID),
                           ("ipcns", CLONE_NEWIPC), ("utsns", CLONE_NEWUTS)):
            if layers[name]:
                flags |= flag
        if flags:
            unshare(flags)
        program = os.fork()
        if program == 0:
            os.close(STATUS_FD)
            try:
                self._program(job, hostdir)
            except BaseException as exc:
                _report({"stage": "setup", "error": "sandbox_setup", "detail": repr(exc)[:500]})
            finally:
                os._exit(121)
        os.close(RESULT_FD)
        os.close(1)
        os.close(2)
        _, status, usage = os.wait4(program, 0)
        report = {
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kb": usage.ru_maxrss,
        }
        os.write(STATUS_FD, json.dumps(report).encode())
        os._exit(0)

    def _program(self, job, hostdir):
        limits = job["limits"]
        layers = self.layers
        if layers["mountns"]:
            workdir = build_root(self.mountpoint, self.config, limits, with_proc=layers["pidns"])
            if layers["uid_drop"]:
                os.chown(workdir, self.uid, self.uid)
            os.chroot(self.mountpoint)
            workdir = "/work"
        else:
            workdir = hostdir
        os.chdir(workdir)
        if layers["uid_drop"]:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the uid change above, so set it again
        if layers["uid_drop"] or layers["mountns"]:
            prctl(PR_SET_DUMPABLE, 0)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": "/tmp" if layers["mountns"] else workdir,
                           "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"})
        os.umask(0o077)
        apply_rlimits(limits)
        run_harness(job)

    def _supervise(self, pid, pipes, limits, started):
        deadline = started + limits["wall_s"]
        fds = {pipes["out"][0]: "stdout", pipes["err"][0]: "stderr", pipes["res"][0]: "result",
               pipes["status"][0]: "status"}
        caps = {"stdout": limits["output_bytes"], "stderr": limits["output_bytes"], "result": limits["result_bytes"],
                "status": 65536}
        data = {name: [] for name in fds.values()}
        sizes = dict.fromkeys(fds.values(), 0)
        outcome = "exited"
        finished = False
        open_fds = set(fds)
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = "exited" if finished else "timeout"
                break
            readable, _, _ = select.select(list(open_fds), [], [], remaining)
            for fd in readable:
                chunk = os.read(fd, 1 << 16)
                name = fds[fd]
                if not chunk:
                    open_fds.discard(fd)
                    if name == "status":
                        finished = True
                        # the program has ended; anything still holding a pipe open is a leftover, not output
                        deadline = min(deadline, time.monotonic() + 0.2)
                    continue
                if sizes[name] < caps[name]:
                    data[name].append(chunk[: caps[name] - sizes[name]])
                sizes[name] += len(chunk)
                if name == "result" and sizes[name] > caps[name]:
                    outcome = "output_limit"
                    open_fds.clear()
                    break
        if outcome != "exited" or open_fds:
            _kill_tree(pid)
            if self.layers["uid_drop"]:
                # the PID namespace dies asynchronously after a kill; wait until none of the slot's processes remain
                reap_uid(self.uid)
        _, status = os.waitpid(pid, 0)
        for fd in fds:
            os.close(fd)
        try:
            status_report = json.loads(b"".join(data["status"]) or b"{}")
        except ValueError:
            status_report = {}
        header = {
            "outcome": outcome,
            "wall_s": time.monotonic() - started,
            "stdout": b"".join(data["stdout"])[-4096:].decode("utf-8", "replace"),
            "stderr": b"".join(data["stderr"])[-4096:].decode("utf-8", "replace"),
            "stdout_bytes": sizes["stdout"],
            "stderr_bytes": sizes["stderr"],
            "launcher_status": status,
        }
        header.update(status_report)
        if outcome == "exited" and not status_report:
            header["outcome"] = "killed"
        return header, b"".join(data["result"])


def _kill_tree(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ the harness (runs inside the sandbox)


class _Deadline(BaseException):
    """Raised by the per-input alarm; a BaseException so `except Exception` in the program cannot swallow it."""


def _report(payload):
    try:
        data = json.dumps(payload).encode()
        view = memoryview(data)
        while view:
            n = os.write(RESULT_FD, view)
            view = view[n:]
    except Exception:
        pass


def _on_alarm(signum, frame):
    raise _Deadline()


class _CappedText(io.TextIOBase):
    def __init__(self, cap):
        self.parts, self.size, self.cap = [], 0, cap

    def writable(self):
        return True

    def write(self, s):
        self.size += len(s)
        if self.size > self.cap:
            raise _OutputLimit()
        self.parts.append(s)
        return len(s)

    def getvalue(self):
        return "".join(self.parts)


class _OutputLimit(BaseException):
    pass


def _exc_name(exc):
    if isinstance(exc, _Deadline):
        return "Timeout"
    if isinstance(exc, _OutputLimit):
        return "OutputLimit"
    name = type(exc).__name__
    return name if type(name) is str else "Exception"


def _load(code, name):
    """Compile and run the program; (namespace, None) or (None, error dict)."""
    try:
        compiled = compile(code, "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        return None, {"stage": "compile", "error": "SyntaxError", "detail": str(exc)[:300]}
    namespace = {"__name__": name, "__builtins__": builtins}
    devnull = _CappedText(1 << 20)
    saved = sys.stdout, sys.stderr
    try:
        sys.stdout = sys.stderr = devnull
        exec(compiled, namespace)
    except BaseException as exc:
        detail = str(exc)[:300] if isinstance(exc, Exception) else ""
        return None, {"stage": "load", "error": _exc_name(exc), "detail": detail}
    finally:
        sys.stdout, sys.stderr = saved
    return namespace, None


def _timed_call(fn, limit_s):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(limit_s, 0.001))
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_harness(job: dict) -> None:
    fmt = job["format"]
    if fmt == "call":
        _harness_call(job)
    elif fmt == "stdio":
        _harness_stdio(job)
    elif fmt == "pytest":
        _harness_pytest(job)
    else:
        _report({"stage": "setup", "error": "unknown_format"})


def _harness_call(job):
    """Call the entry point on each input; report each result as a plain value, or the exception's name."""
    inputs = job["inputs"]
    expressions = job.get("expressions")  # assert-style: expressions evaluated in the program's namespace
    count = len(expressions) if expressions is not None else len(inputs)
    limits = job.get("time_limits") or [job["limits"]["wall_s"]] * count
    # test expressions see the builtins as they were before the program ran, not as it may have patched them
    pristine = dict(builtins.__dict__)
    namespace, error = _load(job["code"], "__solution__")
    if error:
        _report(error)
        return
    entry = job.get("entry_point")
    fn = namespace.get(entry) if entry else None
    if expressions is None and not callable(fn):
        _report({"stage": "load", "error": "missing_entry_point"})
        return
    if job.get("setup"):
        try:
            exec(compile(job["setup"], "setup.py", "exec"), namespace)
        except BaseException as exc:
            _report({"stage": "load", "error": _exc_name(exc)})
            return
    results = []
    sink = _CappedText(1 << 20)
    saved = sys.stdout, sys.stderr
    test_globals = dict(namespace)
    test_globals["__builtins__"] = pristine
    timings = job.get("record_time")
    for i in range(count):
        try:
            sys.stdout = sys.stderr = sink
            sink.parts, sink.size = [], 0
            if expressions is not None:
                code = compile(expressions[i], "test.py", "eval")
                value = _timed_call(lambda code=code: eval(code, test_globals), limits[i])
            else:
                args = decode(inputs[i])
                started = time.perf_counter()
                value = _timed_call(lambda args=args: fn(*args), limits[i])
                elapsed = time.perf_counter() - started
            sys.stdout, sys.stderr = saved
            if job.get("output_not_none") and type(value) is not bool:
                value = value is not None  # the task's oracle: any non-None result counts as True
            encoded = encode_result(value)
            results.append({"v": encoded, "t": elapsed} if timings else {"v": encoded})
        except BaseException as exc:
            sys.stdout, sys.stderr = saved
            results.append({"e": _exc_name(exc)})
            if isinstance(exc, _Deadline) or job.get("stop_on_error"):
                break
    _report({"stage": "done", "results": results})


def _harness_stdio(job):
    """Run the program once per case with the case's stdin; report what it printed."""
    try:
        compiled = compile(job["code"], "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        _report({"stage": "compile", "error": "SyntaxError", "detail": str(exc)[:300]})
        return
    results = []
    saved = sys.stdin, sys.stdout, sys.stderr
    for case in job["inputs"]:
        out = _CappedText(job["limits"]["output_bytes"])
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(case), out, _CappedText(1 << 20)
        error = None
        try:
            namespace = {"__name__": "__main__", "__builtins__": builtins}
            _timed_call(lambda ns=namespace: exec(compiled, ns), job["limits"]["wall_s"])
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = "SystemExit"
        except BaseException as exc:
            error = _exc_name(exc)
        sys.stdin, sys.stdout, sys.stderr = saved
        results.append({"e": error} if error else {"v": ["s", out.getvalue()]})
        if error == "Timeout":
            break
    _report({"stage": "done", "results": results})


class _EqualityRecorder(ast.NodeTransformer):
    """Turn `assert A == B` into a call that reports both values, so the caller judges the equality."""

    def visit_Assert(self, node):
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            call = ast.Call(func=ast.Name("__distill_check_eq__", ast.Load()),
                            args=[test.left, test.comparators[0]], keywords=[])
            return ast.copy_location(ast.Expr(call), node)
        return node


def _harness_pytest(job):
    """Run each `test_*` function; equality asserts are reported as value pairs for the caller to compare."""
    namespace, error = _load(job["code"], "__solution__")
    if error:
        _report(error)
        return
    try:
        tree = _EqualityRecorder().visit(ast.parse(job["test_code"]))
        ast.fix_missing_locations(tree)
        test_code = compile(tree, "test_solution.py", "exec")
    except (SyntaxError, ValueError):
        _report({"stage": "setup", "error": "bad_tests"})
        return
    checks = []
    first_mismatch = []

    def check_eq(left, right):
        a, b = encode(left), encode(right)
        checks.append([a, b])
        if a != b:
            first_mismatch.append(len(checks) - 1)
            raise AssertionError()

    namespace["__distill_check_eq__"] = check_eq
    try:
        exec(test_code, namespace)
    except BaseException as exc:
        _report({"stage": "load", "error": _exc_name(exc)})
        return
    results = []
    sink = _CappedText(1 << 20)
    saved = sys.stdout, sys.stderr
    for name in job["tests"]:
        fn = namespace.get(name)
        start = len(checks)
        try:
            sys.stdout = sys.stderr = sink
            sink.parts, sink.size = [], 0
            _timed_call(fn, job["limits"]["wall_s"])
            sys.stdout, sys.stderr = saved
            results.append({"name": name, "ok": True, "checks": checks[start:]})
        except BaseException as exc:
            sys.stdout, sys.stderr = saved
            results.append({"name": name, "ok": False, "e": _exc_name(exc), "checks": checks[start:]})
            if isinstance(exc, _Deadline):
                break
    _report({"stage": "done", "results": results})


# ------------------------------------------------------------------ main loop


def main() -> None:
    inp, out = 0, 1
    # nothing else may write to the protocol stream
    os.dup2(os.open("/dev/null", os.O_WRONLY), 2)
    config = json.loads(read_frame(inp))
    launcher = Launcher(config)
    write_frame(out, json.dumps({"ready": True, "layers": launcher.layers, "pid": os.getpid()}).encode())
    try:
        while True:
            frame = read_frame(inp)
            if frame is None:
                break
            job = json.loads(frame)
            del frame
            header, result = launcher.run(job)
            del job
            write_frame(out, json.dumps(header).encode())
            write_frame(out, result)
    finally:
        launcher.close()


if __name__ == "__main__":
    main()
