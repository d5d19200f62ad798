"""Command-line entry points of the teacher stage (wired into `distill-ray` by distill_ray/cli.py).

    distill-ray generate --base-url URL --model M [--api-key-env VAR] --problems P.jsonl --output DIR
                         [--samples N] [--concurrency C] [--max-rps R] [--max-tpm T] [--request-timeout S]
                         [--max-cost-usd X] [--max-tokens K] [--actors A] [--mode online|batch] [--dry-run] ...
    distill-ray teacher-server [--host 127.0.0.1] [--port 8000] [--teachers JSON|FILE] [--faults JSON|FILE]

`generate` reads P.jsonl rows `{"id", "prompt"}` (optionally `"domain"`), writes DIR/traces.parquet (one row per
(problem, sample)) and keeps its response cache in DIR/_cache unless `--cache-dir` says otherwise (the leading
underscore keeps Parquet readers of DIR from seeing it). Re-running the same command resumes and pays only for rows
that DIR and the cache do not hold. With `--actors` > 1 it starts (or joins, via RAY_ADDRESS) a Ray cluster.
Exit codes: 0 the stage is complete (every row ok or a permanent failure: truncated by policy, moderation, content
filter, empty content, invalid request, no reasoning; their reasons are in the summary's `failure_reasons`), 1 rows
failed for transient reasons or the budget stopped the run (re-run to retry them), or the provider refused the key or
the probe, 2 bad input (a file, line and field are named) or a missing API key, 3 the provider reported insufficient
credits (HTTP 402; everything paid is stored, a re-run after topping up pays only for the rest), 130 interrupted.
`--temperature none` / `--top-p none` leave the field out of the request; `--extra-body JSON` is merged at the top
level of the request body; `--reasoning JSON` is OpenRouter's `reasoning` object (with `--provider openrouter`).

`teacher-server` runs the simulated teacher in the foreground and prints `listening URL` once it accepts connections.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from pydantic import ValidationError

from distill_ray.files import InputError, iter_jsonl


def read_problems(path: str) -> list[dict]:
    """P.jsonl rows as problems; InputError names the file, line and field of the first bad row."""
    if not os.path.isfile(path):
        raise InputError(path, "file not found")
    problems, seen = [], {}
    for number, row in iter_jsonl(path):
        if "id" not in row or not isinstance(row["id"], (str, int)) or str(row["id"]) == "":
            raise InputError(path, "missing or not a non-empty string/integer", number, "id")
        if not isinstance(row.get("prompt"), str) or not row["prompt"]:
            raise InputError(path, "missing or not a non-empty string", number, "prompt")
        problem_id = str(row["id"])
        if problem_id in seen:
            raise InputError(path, f"{problem_id!r} already used on line {seen[problem_id]}", number, "id")
        seen[problem_id] = number
        problems.append({"id": problem_id, "domain": str(row.get("domain", "")), "prompt": row["prompt"],
                         "answer": str(row.get("answer", "")), "tests": str(row.get("tests", "")),
                         "source": path, "split": "train"})
    if not problems:
        raise InputError(path, "no problems (the file is empty)")
    return problems


def _generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill-ray generate", description="Teacher traces from any OpenAI-compatible "
                                "endpoint, resumable, never paying twice for a response.")
    p.add_argument("--base-url", required=True, help="e.g. https://openrouter.ai/api/v1 or http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True)
    p.add_argument("--api-key-env", default=None, help="name of the environment variable holding the key")
    p.add_argument("--api-key-file", default=None, help="a file holding the key (e.g. a mounted secret)")
    p.add_argument("--provider", choices=["openai-compatible", "openrouter"], default="openai-compatible",
                   help="openrouter: reasoning/provider routing objects, GET /key pre-flight and usage")
    p.add_argument("--reasoning", type=_json_arg, default=None, help="OpenRouter reasoning object, e.g. "
                   "'{\"max_tokens\": 4000}' or '{\"effort\": \"high\"}'")
    p.add_argument("--require-reasoning", action="store_true", help="a row without reasoning fails (no_reasoning)")
    p.add_argument("--provider-routing", type=_json_arg, default=None, help="OpenRouter provider object, e.g. "
                   "'{\"require_parameters\": true}'")
    p.add_argument("--extra-body", type=_json_arg, default=None, help="JSON object merged at the top level of "
                   "every request body")
    p.add_argument("--problems", required=True, help="JSONL with rows {\"id\", \"prompt\"}")
    p.add_argument("--output", required=True, help="folder for traces.parquet")
    p.add_argument("--cache-dir", default=None, help="response cache (default OUTPUT/_cache)")
    p.add_argument("--teacher-name", default=None, help="name stored in each row (default: the model)")
    p.add_argument("--samples", type=int, default=1, help="samples per problem")
    p.add_argument("--n-in-one-request", action="store_true", help="ask for all samples with n in one request")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--actors", type=int, default=1, help="client processes (Ray actors when > 1)")
    p.add_argument("--max-rps", type=float, default=None)
    p.add_argument("--max-tpm", type=float, default=None, help="tokens per minute")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (keep long for "
                   "reasoning models)")
    p.add_argument("--max-retries", type=int, default=6)
    p.add_argument("--max-cost-usd", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=8192)
    p.add_argument("--temperature", type=_float_or_none, default=0.7, help="a number, or 'none' to leave it out")
    p.add_argument("--top-p", type=_float_or_none, default=1.0, help="a number, or 'none' to leave it out")
    p.add_argument("--truncation", choices=["drop", "keep", "retry"], default="drop")
    p.add_argument("--retry-max-tokens-cap", type=int, default=32768)
    p.add_argument("--price-in", type=float, default=0.0, help="$/Mtok input, when the provider reports no cost")
    p.add_argument("--price-out", type=float, default=0.0, help="$/Mtok output, when the provider reports no cost")
    p.add_argument("--mode", choices=["online", "batch"], default="online", help="batch: the provider's batch "
                   "endpoint (OpenRouter's; about half the price, results within 24 hours; needs --provider "
                   "openrouter)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (requests, tokens, dollars); send nothing")
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    return p


def _float_or_none(value: str) -> float | None:
    if value.strip().lower() in ("none", "null", "omit"):
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor 'none'") from None


def _json_arg(value: str) -> dict:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return parsed


def generate_main(argv: list[str]) -> int:
    """`distill-ray generate --base-url ...`: the teacher stage without a sweep file."""
    from distill_ray.config import TeacherConfig
    from distill_ray.teacher.client import CreditsExhausted, FatalTeacherError
    from distill_ray.teacher.generate import generate_traces

    parser = _generate_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    try:
        problems = read_problems(args.problems)
        teacher = TeacherConfig(
            provider=args.provider, base_url=args.base_url, model=args.model, api_key_env=args.api_key_env,
            api_key_file=args.api_key_file, reasoning=args.reasoning, require_reasoning=args.require_reasoning,
            provider_routing=args.provider_routing, extra_body=args.extra_body or {},
            sampling={"temperature": args.temperature, "top_p": args.top_p, "max_tokens": args.max_tokens},
            samples_per_problem=args.samples, n_in_one_request=args.n_in_one_request, concurrency=args.concurrency,
            actors=args.actors, max_rps=args.max_rps, max_tokens_per_minute=args.max_tpm,
            request_timeout_s=args.request_timeout, max_retries=args.max_retries, max_cost_usd=args.max_cost_usd,
            price={"input_per_mtok": args.price_in, "output_per_mtok": args.price_out},
            truncation_policy=args.truncation, retry_max_tokens_cap=args.retry_max_tokens_cap, mode=args.mode,
        )
    except InputError as exc:
        print(f"distill-ray generate: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        print(f"distill-ray generate: error: argument for {field}: {error['msg']}", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or os.path.join(args.output, "_cache")
    name = args.teacher_name or args.model
    if args.dry_run:
        summary = generate_traces(problems, name, teacher, args.output, cache_dir=cache_dir, dry_run=True)
        print(json.dumps({"teacher": name, **summary["plan"]}, indent=2))
        return 0
    use_ray = args.actors > 1
    if use_ray:
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    stop = _stop_on_signals()
    try:
        summary = generate_traces(problems, name, teacher, args.output, cache_dir=cache_dir, use_ray=use_ray,
                                  progress_interval_s=0.0 if args.quiet else 2.0, stop_event=stop)
    except CreditsExhausted as exc:
        print(f"distill-ray generate: error: {exc}", file=sys.stderr)
        return 3
    except FatalTeacherError as exc:
        print(f"distill-ray generate: error: {exc}", file=sys.stderr)
        return 2 if "is not set" in str(exc) or "api_key_file" in str(exc) else 1
    print(json.dumps(summary))
    if stop.is_set():
        return 130
    # permanent failures (truncated by policy, moderation, ...) are results; transient ones make a re-run worthwhile
    return 0 if summary["complete"] else 1


def _stop_on_signals() -> threading.Event:
    """First SIGINT/SIGTERM: stop sending, store what is in flight, write the output. Second: exit at once."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(130)
        print("distill-ray generate: stopping: no new requests; storing those in flight (again to abort)",
              file=sys.stderr, flush=True)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


def _json_or_file(value: str | None) -> dict | None:
    if value is None:
        return None
    if os.path.isfile(value):
        import yaml

        with open(value, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    return json.loads(value)


def teacher_server_main(argv: list[str]) -> int:
    """`distill-ray teacher-server`: the simulated teacher, in the foreground, until interrupted."""
    from distill_ray.teacher.server import DEFAULT_TEACHERS, run_forever

    p = argparse.ArgumentParser(prog="distill-ray teacher-server", description="The simulated OpenAI-compatible "
                                "teacher (offline), with optional fault injection.")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--teachers", default=None, help=f"JSON (or a JSON/YAML file): model -> {{style, correct_rate, "
                   f"reasoning_format, price_in_per_mtok, price_out_per_mtok}}; default {json.dumps(DEFAULT_TEACHERS)}")
    p.add_argument("--faults", default=None, help="JSON (or a file) of fault options, e.g. "
                   "'{\"latency_s\": 0.3, \"rate_limit_rps\": 50, \"error_rate\": 0.05}'")
    p.add_argument("--api-key-env", default=None, help="require this variable's value as the bearer key")
    p.add_argument("--openrouter-profile", default=None, help="JSON (or a file) of the openrouter behaviour "
                   "profile's options, e.g. '{\"error_in_200_rate\": 0.1}' ('{}': the profile with defaults)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    try:
        teachers = _json_or_file(args.teachers)
        faults = _json_or_file(args.faults)
        profile = _json_or_file(args.openrouter_profile)
    except ValueError as exc:
        print(f"distill-ray teacher-server: error: --teachers/--faults/--openrouter-profile: {exc}", file=sys.stderr)
        return 2
    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else None
    if args.api_key_env and not api_key:
        print(f"distill-ray teacher-server: error: {args.api_key_env} is not set", file=sys.stderr)
        return 2
    try:
        run_forever(args.host, args.port, teachers, faults, api_key, profile)
    except (ValueError, TypeError, OSError) as exc:
        print(f"distill-ray teacher-server: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # `python -m distill_ray.teacher.cli teacher-server ...` (used by process=True)
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "teacher-server":
        sys.exit(teacher_server_main(rest))
    if command == "generate":
        sys.exit(generate_main(rest))
    print("usage: python -m distill_ray.teacher.cli teacher-server|generate ...", file=sys.stderr)
    sys.exit(2)
