"""The `distill-ray` command.

    distill-ray sweep SWEEP.yaml [--resume] [--dry-run [--cluster cluster.yaml]] [key.path=value ...]
    distill-ray generate SWEEP.yaml [key.path=value ...]         # problems + raw traces for the grid
    distill-ray generate --base-url URL --model M --problems P.jsonl --output DIR [...]   # any endpoint, no sweep
    distill-ray verify SWEEP.yaml [--force] [...]                 # verify generated traces (again, with --force)
    distill-ray train SWEEP.yaml --trial NAME [...]               # one trial's training and evaluation, without Tune
    distill-ray evaluate SWEEP.yaml [--student NAME] [...]        # base-model scores on the sweep's benchmarks
    distill-ray score math500|mbppplus --samples S.jsonl [--dataset D] --output O.json
    distill-ray report EXPERIMENT_DIR
    distill-ray rescore EXPERIMENT_DIR [--allow-network-risk]  # re-judge stored responses, rewrite scores + report
    distill-ray teacher-server [--host 127.0.0.1] [--port 8000]

Exit codes: 0 success, 1 a run that failed, 2 bad input (sweep file, arguments, data files) with a message that names
the file, the key or field, and the reason — printed before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from distill_ray.config import ConfigError, SweepConfig, load_sweep
from distill_ray.files import InputError


def _load(args: argparse.Namespace) -> SweepConfig:
    return load_sweep(args.sweep, args.overrides)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from distill_ray.planning import (
        PlacementError,
        host_memory_plan,
        load_cluster,
        memory_table,
        placement,
        placement_table,
        plan_sweep,
    )
    from distill_ray.stages.run import check_secrets
    from distill_ray.sweep import run_sweep

    sweep = _load(args)
    if args.dry_run:
        plan = plan_sweep(sweep)
        cluster = load_cluster(args.cluster) if args.cluster else None
        try:
            plan["placement"] = placement(sweep, cluster)
        except PlacementError as exc:
            print(f"distill-ray: error: {args.sweep}: {exc} (cluster file {args.cluster})", file=sys.stderr)
            return 2
        plan["train_memory"], memory_lines = memory_table(sweep, plan["placement"], cluster)
        print(placement_table(plan["placement"]), file=sys.stderr)
        print("\nestimated training memory per GPU (GiB; train.memory)", *memory_lines, sep="\n", file=sys.stderr)
        if cluster is not None:
            plan["host_memory"], host_lines, problems = host_memory_plan(sweep, plan["placement"], cluster)
            print("\nestimated host memory per node (GiB; train.host_memory)", *host_lines, sep="\n", file=sys.stderr)
            if problems:
                print(f"distill-ray: error: {args.sweep}: {'; '.join(problems)} (cluster file {args.cluster})",
                      file=sys.stderr)
                return 2
        print(json.dumps(plan, indent=2))
        return 0
    if args.cluster:
        raise ConfigError(args.sweep, "--cluster", "only used with --dry-run (a running sweep uses the cluster it "
                                                   "is attached to)")
    check_secrets(sweep, args.sweep)
    summary = run_sweep(sweep, resume=args.resume, num_cpus=args.num_cpus)
    print(json.dumps({k: v for k, v in summary.items() if k != "base"}, indent=2))
    return 1 if summary["failed_trials"] else 0


def _shared_stages(args: argparse.Namespace) -> tuple[SweepConfig, str, object]:
    import ray

    from distill_ray.stages.run import start_builtin_teachers

    sweep = _load(args)
    exp_dir = os.path.abspath(sweep.experiment_dir())
    os.makedirs(exp_dir, exist_ok=True)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False)
    server, sweep = start_builtin_teachers(sweep)
    return sweep, exp_dir, server


def _cmd_generate(args: argparse.Namespace) -> int:
    from distill_ray.stages.generate import generate_stage
    from distill_ray.stages.problems import prepare_benchmarks, prepare_problems
    from distill_ray.stages.verify import verify_stage

    sweep, exp_dir, server = _shared_stages(args)
    try:
        benchmarks = prepare_benchmarks(sweep, exp_dir)
        for domain in sweep.grid.domains:
            problems = prepare_problems(sweep, exp_dir, domain, benchmarks)
            for teacher in sweep.grid.teachers:
                if args.command == "generate":
                    summary = generate_stage(exp_dir, teacher, sweep.teachers[teacher], domain, problems)
                    print(json.dumps({"teacher": teacher, "domain": domain,
                                      **{k: v for k, v in summary.items() if k != "plan"}}, default=str))
                else:
                    result = verify_stage(sweep, exp_dir, teacher, domain, problems, force=args.force)
                    print(json.dumps({"teacher": teacher, "domain": domain, **result.get("statistics", {})},
                                     default=str))
    finally:
        if server is not None:
            server.stop()
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from distill_ray import experiment as ex
    from distill_ray.stages.problems import prepare_benchmarks
    from distill_ray.sweep import grid_trials, run_trial

    sweep = _load(args)
    exp_dir = os.path.abspath(sweep.experiment_dir())
    trials = {t["name"]: t for t in grid_trials(sweep)}
    if args.trial not in trials:
        raise ConfigError(args.sweep, "--trial", f"unknown trial {args.trial!r}; trials: {', '.join(trials)}")
    trial = trials[args.trial]
    if not os.path.isdir(ex.traces_dir(exp_dir, trial["teacher"], trial["domain"])):
        raise ConfigError(args.sweep, "--trial", "its traces do not exist yet: run `distill-ray generate` first")
    prepare_benchmarks(sweep, exp_dir)
    row = run_trial(trials[args.trial], sweep_data=sweep.model_dump(), exp_dir=exp_dir, use_ray_train=not args.no_ray)
    print(json.dumps(row, indent=1))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from distill_ray.stages.evaluate_base import evaluate_base
    from distill_ray.stages.problems import prepare_benchmarks

    sweep = _load(args)
    exp_dir = os.path.abspath(sweep.experiment_dir())
    benchmarks = prepare_benchmarks(sweep, exp_dir)
    students = [args.student] if args.student else sweep.grid.students
    for student in students:
        if student not in sweep.students:
            raise ConfigError(args.sweep, "--student", f"unknown student {student!r}")
        print(json.dumps({"student": student, "scores": evaluate_base(sweep, exp_dir, student, benchmarks)}))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from distill_ray.report import write_report

    print(write_report(args.experiment_dir))
    return 0


def _cmd_rescore(args: argparse.Namespace) -> int:
    from distill_ray.stages.rescore import rescore_experiment

    try:
        summary = rescore_experiment(args.experiment_dir, allow_network_risk=args.allow_network_risk)
    except InputError as exc:
        print(f"distill-ray: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


def _add_sweep_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill-ray", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sweep", help="run a whole study")
    _add_sweep_args(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the placement of every actor, exit")
    p.add_argument("--cluster", help="with --dry-run: a `ray up` cluster file; name the node type that hosts each "
                                     "actor, exit 2 if a student's training or evaluation fits on none")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance (default: all)")
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser("generate", help="problems and teacher traces for the grid, from a sweep file")
    _add_sweep_args(p)
    p.set_defaults(func=_cmd_generate)
    p = sub.add_parser("verify", help="verify generated traces (after `generate`), from a sweep file")
    _add_sweep_args(p)
    p.add_argument("--force", action="store_true", help="verify again even where verification finished")
    p.set_defaults(func=_cmd_generate)
    p = sub.add_parser("train", help="one trial (train + evaluate its checkpoints) without Tune")
    _add_sweep_args(p)
    p.add_argument("--trial", required=True)
    p.add_argument("--no-ray", action="store_true", help="train in this process instead of Ray Train workers")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="base-model scores on the sweep's benchmarks")
    _add_sweep_args(p)
    p.add_argument("--student")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("report", help="write report.md for an experiment directory")
    p.add_argument("experiment_dir")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("rescore", help="re-judge every stored response with today's judges; rewrite scores and report")
    p.add_argument("experiment_dir")
    p.add_argument("--allow-network-risk", action="store_true", help="run code even where the sandbox cannot cut "
                   "the network")
    p.set_defaults(func=_cmd_rescore)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Subcommands with their own argument parsers (owned by their stages) are dispatched before argparse.
    if argv and argv[0] == "score":
        from distill_ray.verify.score_cli import score_main

        return score_main(argv[1:])
    if argv and argv[0] == "teacher-server":
        from distill_ray.teacher.cli import teacher_server_main

        return teacher_server_main(argv[1:])
    if argv and argv[0] == "generate" and any(a == "--base-url" or a.startswith("--base-url=") for a in argv):
        from distill_ray.teacher.cli import generate_main

        return generate_main(argv[1:])
    parser = build_parser()
    # Overrides may come before or after options (`sweep s.yaml --dry-run a.b=1`); argparse alone takes positionals
    # in one run, so the stragglers arrive as unknown arguments and are accepted when they look like key=value.
    args, unknown = parser.parse_known_args(argv)
    stray = [u for u in unknown if u.startswith("-") or "=" not in u or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if unknown:
        args.overrides = [*args.overrides, *unknown]
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"distill-ray: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, InputError) as exc:  # InputError: a data file (files.read_jsonl) names file and line
        print(f"distill-ray: error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"distill-ray: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the teacher stage's stops: a refused key or probe, no credits, rows to retry
        from distill_ray.stages.generate import GenerationIncomplete, TooManyFailures
        from distill_ray.teacher.client import CreditsExhausted, FatalTeacherError

        if not isinstance(exc, FatalTeacherError | GenerationIncomplete | TooManyFailures):
            raise
        print(f"distill-ray: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, CreditsExhausted) else 1


if __name__ == "__main__":
    sys.exit(main())
