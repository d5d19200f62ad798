"""The teacher stage: trace generation against OpenAI-compatible endpoints, and the built-in simulated teacher.

    from distill_ray.teacher import start_teacher_server, generate_traces, plan_generation, read_traces

See `generate.py` (the stage), `dataflow.py` (its Ray Data pipeline), `parts.py` (the output on disk,
`read_traces`), `client.py` (requests, retries, reasoning normalisation), `cache.py` (never pay twice), `ratelimit.py`
(cluster-wide pacing), `preflight.py` (key check and probe), `stage.py` (when the stage is done and trainable),
`server.py` (the simulated teacher with fault injection), `openrouter_sim.py` (its OpenRouter behaviour profile) and
`cli.py`.
"""

from distill_ray.teacher.client import CreditsExhausted, FatalTeacherError, normalise_message
from distill_ray.teacher.generate import generate_traces, plan_generation
from distill_ray.teacher.parts import read_traces
from distill_ray.teacher.server import Faults, ServerHandle, server_teachers_from_config, start_teacher_server

__all__ = [
    "CreditsExhausted", "FatalTeacherError", "Faults", "ServerHandle", "generate_traces", "normalise_message",
    "plan_generation", "read_traces", "server_teachers_from_config", "start_teacher_server",
]
