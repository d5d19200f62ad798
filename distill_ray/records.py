"""Named schemas of the rows that cross stage and Ray boundaries.

Ray Data rows are plain dicts; these TypedDicts are their documentation and the single place a field is named.
Nested structures that vary by problem (code tests) travel as JSON strings so Arrow never has to unify their types.
Nothing here validates at run time; the stages that produce a row are responsible for filling every field.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Domain = Literal["math", "code"]
VerdictName = Literal["pass", "fail", "error"]


class Problem(TypedDict):
    """One problem: the user message a teacher or student answers, and what verification needs."""

    id: str  # unique within its source, stable across runs
    domain: Domain
    prompt: str  # the user message, complete (instructions on the answer format included)
    answer: str  # math: the gold final answer (LaTeX or plain); code: ""
    tests: str  # code: JSON of a test spec (see below); math: ""
    source: str  # e.g. "builtin:math", "hf:...", a file path
    split: str  # "train" or the benchmark name ("mini-math", "math500", ...)


# Code test specs (the JSON in Problem.tests), by "format":
#   {"format": "call", "entry_point": "f", "inputs": [[arg, ...], ...], "outputs": [value, ...], "atol": 0}
#       values compared by the parent, type-exact; the program never sees the outputs
#   {"format": "assert", "entry_point": "f", "setup": "", "asserts": ["assert f(1) == 2", ...]}
#   {"format": "pytest", "test_code": "def test_one():\n    assert f(1) == 2\n"}
#   {"format": "stdio", "cases": [{"stdin": "...", "stdout": "..."}]}
#   {"format": "evalplus", "task_id", "prompt", "canonical_solution", "entry_point", "base_input", "plus_input",
#    "atol"}   MBPP+ as released (inputs JSON-serialised as in the release); judged by verify.mbppplus.judge_responses


class Trace(TypedDict):
    """One teacher response to one problem sample, as stored by the generate stage."""

    problem_id: str
    domain: Domain
    teacher: str  # the sweep's name for the teacher
    model: str  # the provider's model id
    sample_index: int
    prompt: str
    prompt_hash: str
    content: str  # the answer text with any inline <think> block removed
    reasoning: str  # normalised reasoning text ("" when the provider gave none)
    text: str  # training format: "<think>{reasoning}</think>\n\n{content}"
    finish_reason: str
    truncated: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    attempts: int
    response_id: str
    status: Literal["ok", "failed"]
    error: str
    failure: str  # a failed row's cause ("" when ok), e.g. "http_429", "empty_answer", "budget"
    permanent: bool  # a failed row that asking again would not fix (refused prompt, bad request)
    reasoning_encrypted: int  # reasoning blocks the provider returned encrypted (their text is not in `reasoning`)
    cost_source: str  # where cost_usd came from ("" when not priced)


class TraceRow(Trace):
    """A trace as the teacher client builds it and a teacher actor or Ray Data UDF hands back (`teacher/parts.py`
    stores the Trace fields, in Trace's order, as the Parquet columns)."""

    from_cache: NotRequired[bool]  # answered from the response cache (counted, never stored)


class WorkProblem(TypedDict):
    """The part of a Problem a teacher needs."""

    id: str
    domain: str
    prompt: str


class WorkSample(TypedDict):
    """One sample of a work item: its index and the cached responses found for it (None: not cached yet)."""

    index: int
    base: dict | None  # the cached response at sampling.max_tokens (teacher.cache's record)
    retry: dict | None  # the cached retry at retry_max_tokens_cap (truncation_policy "retry", base was cut short)


class TeacherWorkItem(TypedDict):
    """A problem and its samples still to answer: what the generate stage sends to teacher actors and to the Ray
    Data pipeline (there one JSON string per item, `teacher/dataflow.py`)."""

    problem: WorkProblem
    samples: list[WorkSample]


class VerifiedTrace(Trace):
    """A trace with the verifier's verdict."""

    verdict: VerdictName
    reason: str  # e.g. "correct", "wrong_answer", "no_box", "timeout", "syntax_error"
    extracted: str  # the extracted final answer or program


class TrainExample(TypedDict):
    """One supervised example: the prompt (masked from the loss) and the response the student learns."""

    id: str
    prompt: str
    response: str  # "<think>…</think>\n\nanswer"


class CheckpointInfo(TypedDict):
    """An adapter checkpoint written by the train stage."""

    step: int
    samples: int  # training examples consumed so far
    path: str  # PEFT adapter directory
    train_loss: float


class EngineFingerprint(TypedDict):
    """What produced a score (evaluate.fingerprint): the engine, library versions and the engine's settings."""

    backend: str  # "vllm" or "transformers"
    engine: str  # e.g. "vllm 0.32.0"
    torch: str | None
    transformers: str | None
    peft: str | None
    dtype: str
    tensor_parallel: int
    max_model_len: int | None  # vLLM only
    max_lora_rank: int | None  # vLLM only
    device: str  # "cpu" or the GPU's name


class BenchmarkScore(TypedDict):
    """One model (base or checkpoint) on one benchmark."""

    benchmark: str
    step: int  # 0 for the base model
    samples: int
    n: int
    correct: int
    accuracy: float
    ci95_low: float
    ci95_high: float
    format_failures: int  # responses with no answer in the expected format (verify.verdict.FORMAT_FAILURE_REASONS)
    errors: int  # items the judge could not run (infrastructure), excluded from n after retries
    base_correct: int  # items whose base tests pass (MBPP's score for MBPP+); equal to `correct` without plus tests
    length_capped: int  # responses that stopped at max_new_tokens (finish_reason "length")
    environment: NotRequired[EngineFingerprint]  # absent in scores written before fingerprints existed


# ------------------------------------------------------------------------------------- experiment-directory shapes


class TracesDone(TypedDict):
    """traces/<teacher>/<domain>/done.json: the verify stage's marker and summary."""

    generation: dict  # the generate stage's summary (generated.json)
    statistics: dict  # verify.stats.trace_statistics of this (teacher, domain): n, passed, pass_rate, ci95, ...
    failed_requests: int  # traces whose request failed (not judged)
    teacher: str
    domain: str


class TrialRow(TypedDict):
    """One line of trials/<trial>/results.jsonl: one checkpoint of one trial, as Tune and the report see it.

    Besides these fields a row has, per benchmark B of the sweep, `B/accuracy`, `B/ci95_low`, `B/ci95_high`, `B/n`,
    `B/format_failure_rate` (floats; n an int) and `B/length_capped` (responses cut at max_new_tokens), and per extra
    grid axis `extra/<key>` (see sweep.trial_row). Trials whose rows differ only in `extra/training.seed` are
    replicates of one configuration (report.replicates groups them).
    """

    trial: str
    teacher: str
    student: str
    domain: str
    step: int
    samples: int
    train_loss: float
    examples: int  # verified training examples of the trial's (teacher, domain)
    truncated_examples: int  # of those, cut at max_length


class GenerationProgress(TypedDict):
    """traces/<teacher>/<domain>/progress.json: rewritten (atomically) every few seconds while the generate stage
    runs, and once at its end; `distill-ray status` reads it."""

    teacher: str
    rows_total: int  # rows of this run (stored ones included)
    rows_done: int  # rows answered or failed so far
    requests: int
    cost_usd: float  # paid in this run
    spent_before_usd: float  # what the teacher's cache recorded as paid before this run
    max_cost_usd: float | None
    errors: dict  # error kind -> count so far
    elapsed_s: float
    updated: float  # unix time


class TrainProgress(TypedDict):
    """trials/<trial>/train/progress.json: rank 0's last finished step, rewritten at most every second."""

    step: int
    steps: int
    loss: float
    started: float  # unix time this training process started
    started_step: int  # the step it resumed from (0 for a fresh run)
    updated: float  # unix time


class SweepDone(TypedDict):
    """done.json at the experiment's root: the sweep's summary (run_sweep's return) and where its time went."""

    trials: int
    failed_trials: int
    wall_s: float
    profile: list  # [{"phase", "seconds", "share"}], in order (distill_ray.profile.PhaseClock)


class TrialDone(TypedDict):
    """trials/<trial>/done.json: written after every checkpoint's row; a trial with it is never run again."""

    rows: int
    train: dict  # train_student's summary without its checkpoint list


class EvalWorkerRecord(TypedDict):
    """<eval dir>/worker.json: which evaluation actor scored a model, where, and when (written beside scores.json)."""

    node_id: str
    actor_id: str
    pid: int
    engine_loads: int  # engines this actor had loaded when it finished (1 when the pool works as designed)
    started: float  # unix time
    finished: float


class EvalItem(TypedDict):
    """One evaluated response: a row of `eval/step-*/responses.jsonl` and `base/<student>/responses.jsonl`."""

    benchmark: str
    problem_id: str
    response: str
    verdict: VerdictName  # MBPP+: "pass" only when base and plus inputs both pass
    reason: str
    extracted: str
    base_status: Literal["pass", "fail"]  # the base tests (MBPP+), else the verdict itself
    plus_status: Literal["pass", "fail"] | None  # the plus inputs; None for benchmarks without plus tests
    finish_reason: Literal["stop", "length"] | None  # None only from an engine that does not report it
    generated_tokens: int | None


EVAL_ITEM_FIELDS = tuple(EvalItem.__annotations__)
