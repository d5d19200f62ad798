"""Sandbox attacks, one per test: each asserts the verdict and that the host is untouched.

The task is f(x) = 2 * x on inputs 3 and 5 (expected 6 and 10, never sent to the program). "Host untouched" means: the
canary secret (in this process's environment, in a host file, behind a 127.0.0.1 listener) never reaches the program,
no file appears or disappears outside the sandbox, and no process of the sandbox's uids is left.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from distill_ray.verify import check_program
from distill_ray.verify.sandbox import SandboxLimits, SandboxPool

CANARY = "canary-7f3a9c-secret"
SPEC = json.dumps({"format": "call", "entry_point": "f", "inputs": [[3], [5]], "outputs": [6, 10], "atol": 0})
FAST = SandboxLimits(wall_s=3.0)


@pytest.fixture(scope="module")
def canary_env():
    os.environ["DISTILL_TEST_API_KEY"] = CANARY
    yield
    os.environ.pop("DISTILL_TEST_API_KEY", None)


@pytest.fixture(scope="module")
def spool(canary_env):
    # created after the canary is in the environment, so a leak through inheritance would show
    with SandboxPool(workers=2) as p:
        yield p


@pytest.fixture()
def host_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(CANARY)
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o644)
    return str(path)


def _judge(spool, code, limits=FAST):
    return check_program(code, SPEC, pool=spool, limits=limits)


def _leftover_processes(spool):
    uids = set(range(spool._uid_base, spool._uid_base + spool.size))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/status" % entry) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids:
                            found.append(int(entry))
                        break
        except OSError:
            continue
    return found


def _assert_clean(spool):
    time.sleep(0.05)
    assert _leftover_processes(spool) == []


def test_layers_reported(spool):
    for layer in ("netns", "mountns", "pidns", "uid_drop", "empty_env", "rlimits"):
        assert spool.layers[layer] is True, spool.layers


def test_honest_solution_passes(spool):
    assert _judge(spool, "def f(x):\n    return 2 * x\n").verdict == "pass"


def test_always_true_eq(spool):
    code = "class Yes:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n" \
           "def f(x):\n    return Yes()\n"
    assert _judge(spool, code).reason == "wrong_answer"
    _assert_clean(spool)


def test_int_subclass(spool):
    code = "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n" \
           "def f(x):\n    return I(0)\n"
    assert _judge(spool, code).reason == "wrong_answer"


def test_str_subclass_in_list(spool):
    spec = json.dumps({"format": "call", "entry_point": "f", "inputs": [[1]], "outputs": [["a"]], "atol": 0})
    code = "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n" \
           "def f(x):\n    return [S('zzz')]\n"
    assert check_program(code, spec, pool=spool, limits=FAST).reason == "wrong_answer"


def test_frame_walking_finds_no_expected_outputs(spool):
    # the expected outputs (6, 10) are nowhere in the program's process: not in any frame, not among live objects
    code = (
        "import sys, gc\n"
        "def f(x):\n"
        "    pool = []\n"
        "    fr = sys._getframe(1)\n"
        "    while fr is not None:\n"
        "        pool.extend(fr.f_locals.values())\n"
        "        fr = fr.f_back\n"
        "    pool.extend(gc.get_objects())\n"
        "    for obj in pool:\n"
        "        if type(obj) in (list, tuple) and list(obj)[-2:] == [6, 10]:\n"
        "            return 2 * x\n"
        "    return -1\n"
    )
    assert _judge(spool, code).reason == "wrong_answer"


def test_forged_result_then_os_exit(spool):
    code = (
        "import os, json\n"
        "os.write(3, json.dumps({'stage': 'done', 'passed': True, 'results': []}).encode())\n"
        "os._exit(0)\n"
    )
    assert _judge(spool, code).verdict == "fail"


def test_forged_plausible_values_then_os_exit(spool):
    code = (
        "import os, json\n"
        "os.write(3, json.dumps({'stage': 'done', 'results': [{'v': ['i', 7]}, {'v': ['i', 11]}]}).encode())\n"
        "os._exit(0)\n"
    )
    assert _judge(spool, code).verdict == "fail"


def test_sys_exit_before_tests(spool):
    result = _judge(spool, "import sys\nsys.exit(0)\ndef f(x):\n    return 2 * x\n")
    assert (result.verdict, result.reason) == ("fail", "exited_early")


def test_exit_inside_function(spool):
    assert _judge(spool, "import os\ndef f(x):\n    os._exit(0)\n").reason == "exited_early"


def test_printing_passed(spool):
    code = "print('All tests passed'); import sys; sys.__stdout__.write('PASSED\\n')\ndef f(x):\n    return 0\n"
    assert _judge(spool, code).reason == "wrong_answer"


def test_monkeypatched_isclose_in_asserts(spool):
    spec = json.dumps({"format": "assert", "entry_point": "f", "setup": "import math",
                       "asserts": ["assert math.isclose(f(1), 2.5)", "assert set(f(2)) == set([1, 2])"]})
    code = "import math, builtins\nmath.isclose = lambda *a, **k: True\nbuiltins.set = lambda *a: frozenset()\n" \
           "def f(x):\n    return 0.0 if x == 1 else [9]\n"
    assert check_program(code, spec, pool=spool, limits=FAST).reason == "wrong_answer"
    honest = "def f(x):\n    return 2.5 if x == 1 else [2, 1]\n"
    assert check_program(honest, spec, pool=spool, limits=FAST).verdict == "pass"


def test_no_api_key_in_environment(spool):
    code = (
        "import os\n"
        "def f(x):\n"
        "    blob = repr(dict(os.environ))\n"
        "    for pid in os.listdir('/proc') if os.path.isdir('/proc') else []:\n"
        "        try:\n"
        "            blob += open('/proc/%s/environ' % pid, 'rb').read().decode('latin1')\n"
        "        except Exception:\n"
        "            pass\n"
        "    return 2 * x if '" + CANARY[:12] + "' in blob else -1\n"
    )
    assert _judge(spool, code).reason == "wrong_answer"


def test_canary_file_is_invisible(spool, host_file):
    code = "def f(x):\n    try:\n        return 2 * x if open(%r).read() else -1\n    except OSError:\n" \
           "        return -1\n" % host_file
    assert _judge(spool, code).reason == "wrong_answer"


def test_dataset_answers_cannot_be_read(spool):
    code = (
        "import os\n"
        "def f(x):\n"
        "    for p in ('/work/shared/benchmarks/MbppPlus-v0.2.0.jsonl.gz', '/work/main', '/root/.cache'):\n"
        "        if os.path.exists(p):\n"
        "            return 2 * x\n"
        "    return -1\n"
    )
    assert _judge(spool, code).reason == "wrong_answer"


def test_tcp_exfiltration_to_localhost(spool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(2.0)
    port = server.getsockname()[1]
    received = []

    def accept():
        try:
            conn, _ = server.accept()
            received.append(conn.recv(100))
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = (
        "import socket\n"
        "def f(x):\n"
        "    try:\n"
        "        s = socket.create_connection(('127.0.0.1', %d), timeout=1)\n"
        "        s.sendall(b'%s')\n"
        "        return 2 * x\n"
        "    except OSError:\n"
        "        return -1\n" % (port, CANARY)
    )
    result = _judge(spool, code)
    thread.join()
    server.close()
    assert result.reason == "wrong_answer"
    assert received == []


def test_daemon_does_not_outlive_the_run(spool, tmp_path):
    code = (
        "import os, time\n"
        "def f(x):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "        os._exit(0)\n"
        "    return 2 * x\n"
    )
    assert _judge(spool, code).verdict == "pass"
    _assert_clean(spool)


def test_fork_bomb_is_contained(spool):
    code = "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n" \
           "            pass\n"
    started = time.monotonic()
    result = _judge(spool, code, SandboxLimits(wall_s=2.0))
    assert result.verdict == "fail"
    assert time.monotonic() - started < 5
    _assert_clean(spool)


def test_signal_the_runner(spool):
    code = (
        "import os, signal\n"
        "def f(x):\n"
        "    for pid in (os.getppid(), 1, -1):\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return -1\n"
    )
    assert _judge(spool, code).verdict == "fail"
    assert _judge(spool, "def f(x):\n    return 2 * x\n").verdict == "pass"  # the launchers survived


def test_delete_file_outside_workdir(spool, host_file):
    code = "import os, shutil\ndef f(x):\n    for p in (%r, '/usr/bin/env'):\n        try:\n" \
           "            os.remove(p)\n        except OSError:\n            pass\n    return -1\n" % host_file
    assert _judge(spool, code).verdict == "fail"
    assert os.path.exists(host_file) and os.path.exists("/usr/bin/env")


def test_writes_outside_workdir_do_not_reach_host(spool):
    marker = "/tmp/distill-sandbox-escape-%d" % os.getpid()
    code = "def f(x):\n    for p in (%r, '/usr/escape', '/escape'):\n        try:\n" \
           "            open(p, 'w').write('x')\n        except OSError:\n            pass\n    return 2 * x\n" % marker
    assert _judge(spool, code).verdict == "pass"
    assert not os.path.exists(marker) and not os.path.exists("/usr/escape") and not os.path.exists("/escape")


def test_nothing_persists_between_runs(spool):
    writer = "import os\nopen('/tmp/state', 'w').write('1')\nopen('state', 'w').write('1')\n" \
             "def f(x):\n    return 2 * x\n"
    reader = "import os\ndef f(x):\n    return 2 * x if not (os.path.exists('/tmp/state') or " \
             "os.path.exists('state')) else -1\n"
    for _ in range(2):
        assert _judge(spool, writer).verdict == "pass"
    for _ in range(3):
        assert _judge(spool, reader).verdict == "pass"


def test_infinite_loop_is_killed_on_time(spool):
    started = time.monotonic()
    result = _judge(spool, "def f(x):\n    while True:\n        pass\n", SandboxLimits(wall_s=1.0))
    assert (result.verdict, result.reason) == ("fail", "timeout")
    assert time.monotonic() - started < 3


def test_memory_hog(spool):
    result = _judge(spool, "def f(x):\n    return len(bytearray(8 * 1024 ** 3))\n")
    assert (result.verdict, result.reason) == ("fail", "memory")


def test_huge_stdout_is_drained_and_capped(spool):
    code = "import os\ndef f(x):\n    for _ in range(200):\n        os.write(1, b'x' * 65536)\n    return 2 * x\n"
    assert _judge(spool, code).verdict == "pass"


def test_huge_file_is_limited(spool):
    code = ("def f(x):\n    with open('big', 'wb') as fh:\n        fh.write(b'x' * (200 * 1024 * 1024))\n"
            "    return 2 * x\n")
    assert _judge(spool, code).verdict == "fail"


def test_cannot_regain_root(spool):
    code = "import os\ndef f(x):\n    try:\n        os.setuid(0)\n        return 2 * x\n    except OSError:\n" \
           "        return -1\n"
    assert _judge(spool, code).reason == "wrong_answer"


def test_network_risk_must_be_accepted():
    with pytest.raises(Exception) as info:
        SandboxPool(1, disable_layers=["netns"])
    assert "netns" in str(info.value)
    with SandboxPool(1, disable_layers=["netns"], allow_network_risk=True) as risky:
        assert risky.layers["netns"] is False
