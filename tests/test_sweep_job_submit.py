"""`ray job submit` for real: a token-authenticated head on 127.0.0.1, the smoke sweep submitted through the Ray CLI
with `--working-dir .`, followed to SUCCEEDED, its report checked; then exactly that head is stopped.

The commands are the README's ("Running on a Ray cluster"), plus what keeps this head apart from any other Ray
instance on the machine: its own ports, its own --temp-dir, a token of its own in RAY_AUTH_TOKEN (never ~/.ray), and
--block, so the head's processes share one process group that the test ends (never `ray stop`, which would stop
every Ray instance of this user).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def _run(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_ray_job_submit_runs_the_smoke_sweep_on_a_token_authenticated_head(tmp_path):
    if shutil.which("ray") is None:
        pytest.skip("the ray CLI is not on PATH")
    temp_dir = tempfile.mkdtemp(prefix="rj-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    gcs, dashboard, client, agent, agent_grpc, metrics, runtime_env = _free_ports(7)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        ["ray", "start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
         "--runtime-env-agent-port", str(runtime_env), "--temp-dir", temp_dir, "--block"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    storage = tmp_path / "runs"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # the job API answers once the dashboard is up
            if head.poll() is not None:
                pytest.fail(f"ray start exited: {head.stdout.read()[-3000:]}")
            if _run(["ray", "job", "list", "--address", address], env, timeout=60).returncode == 0:
                break
            time.sleep(2)
        else:
            pytest.fail("the job API never came up")
        no_token = {**{k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}, "RAY_AUTH_MODE": "disabled"}
        assert _run(["ray", "job", "list", "--address", address], no_token, timeout=60).returncode != 0, \
            "the job API answered a client without the token: token authentication is off"

        submitted = _run(["ray", "job", "submit", "--address", address, "--no-wait", "--working-dir", ".", "--",
                          "distill-ray", "sweep", "sweeps/smoke.yaml", f"storage={storage}"], env)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        job_id = re.search(r"raysubmit_\w+", submitted.stdout + submitted.stderr).group(0)
        job = job_id.lower()
        deadline = time.time() + 900
        status = ""
        while time.time() < deadline:  # the CLI says "Job '<id>' succeeded|failed|was stopped" once it has ended
            answer = _run(["ray", "job", "status", "--address", address, job_id], env, timeout=60)
            status = (answer.stdout + answer.stderr).lower()  # job ids are mixed case
            if any(f"'{job}' {word}" in status for word in ("succeeded", "failed", "was stopped")):
                break
            time.sleep(3)
        logs = _run(["ray", "job", "logs", "--address", address, job_id], env, timeout=60).stdout
        assert f"'{job}' succeeded" in status, status + logs[-4000:]
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head's processes, and only them
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        leftovers = _processes_mentioning(temp_dir)
        for pid in leftovers:  # started by this head (its temp dir is on their command line): end them by id
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not leftovers, f"processes of the head outlived its process group: {leftovers}"
    exp = storage / "smoke"
    data = json.load(open(exp / "results.json"))
    assert {r["trial"] for r in data["trials"]} == {"concise__tiny-llama__math", "verbose__tiny-llama__math"}
    assert len(data["trials"]) == 4  # two checkpoints per trial
    assert "| Base | — |" in open(exp / "report.md").read()
