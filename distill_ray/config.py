"""Typed, strict models of a sweep file, and the loader that turns YAML plus `key.path=value` overrides into them.

    from distill_ray.config import load_sweep
    sweep = load_sweep("sweeps/local.yaml", ["training.learning_rate=1e-3"])

Every model forbids unknown keys. Any problem (unknown key, wrong type, value out of range, missing file, unknown
built-in architecture) raises `ConfigError`, whose message names the file, the key path and the reason; the CLI turns
it into exit code 2 before Ray starts.
Validation checks shapes and local files only: it does not contact a provider or a model hub. Relative `path`s
are resolved against the sweep file's folder; a relative `storage` against the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill_ray.benchmarks import BENCHMARKS
from distill_ray.problems.decontaminate import DecontaminationSettings
from distill_ray.problems.schema import ProblemSourceConfig

BUILTIN_STUDENTS = ("builtin:tiny-llama", "builtin:tiny-qwen3-moe")


class ConfigError(ValueError):
    """A sweep file that cannot run; the message names the file, the key path and the reason."""

    def __init__(self, file: str, key: str, reason: str):
        self.file, self.key, self.reason = file, key, reason
        super().__init__(f"{file}: {key}: {reason}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(Strict):
    # None leaves the field out of the request (Anthropic models reject temperature and top_p together, and with
    # extended thinking accept no temperature change at all)
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(8192, ge=1)


class ReasoningConfig(Strict):
    """OpenRouter's `reasoning` request object: one of `max_tokens` (Anthropic-style budget) or `effort`, or `enabled`
    for the model's default; `exclude` keeps the reasoning out of the response (it is still generated and billed)."""

    max_tokens: int | None = Field(None, ge=1)
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    enabled: bool | None = None
    exclude: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> ReasoningConfig:
        if self.max_tokens is not None and self.effort is not None:
            raise ValueError("set one of reasoning.max_tokens and reasoning.effort, not both")
        if self.max_tokens is None and self.effort is None and self.enabled is None:
            raise ValueError("reasoning needs max_tokens, effort or enabled")
        return self

    def request_object(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None and not (k == "exclude" and not v)}


class PriceConfig(Strict):
    """Dollars per million tokens, used to estimate cost where the provider reports none."""

    input_per_mtok: float = Field(0.0, ge=0.0)
    output_per_mtok: float = Field(0.0, ge=0.0)


class BatchConfig(Strict):
    """How a teacher in `mode: batch` uses its provider's batch endpoint (`teacher/batch.py`).

    Defaults follow OpenRouter's Batch API guide: at most 5,000 requests and 200 MB per batch, billed at about 50%
    of the per-token price, results within a 24-hour window.
    """

    price_factor: float = Field(0.5, gt=0.0, le=1.0)  # batch price / online price, for estimates and budget checks
    max_requests_per_batch: int = Field(5000, ge=1, le=100_000)
    max_bytes_per_batch: int = Field(200_000_000, ge=1024)
    max_batches_in_flight: int = Field(8, ge=1, le=1000)
    poll_initial_s: float = Field(10.0, gt=0.0)  # the first status poll after a submission ...
    poll_max_s: float = Field(120.0, gt=0.0)  # ... doubling up to this while nothing changes
    max_rounds: int = Field(3, ge=1, le=20)  # a request that failed transiently goes into at most this many batches


class TeacherConfig(Strict):
    provider: Literal["builtin", "openrouter", "openai-compatible"] = "openai-compatible"
    base_url: str | None = None  # required unless provider == builtin (the sweep starts that server)
    model: str
    api_key_env: str | None = None  # the *name* of the environment variable holding the key, never the key
    sampling: SamplingConfig = SamplingConfig()
    samples_per_problem: int = Field(1, ge=1, le=64)
    n_in_one_request: bool = False  # ask for all samples with `n` in one request (not every provider supports it)
    concurrency: int = Field(32, ge=1, le=4096)
    actors: int = Field(1, ge=1, le=256)
    max_rps: float | None = Field(None, gt=0)
    max_tokens_per_minute: float | None = Field(None, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(6, ge=0, le=50)
    # a billed 200 with finish_reason stop and no content is asked again this many times before it is permanent
    empty_retries: int = Field(2, ge=0, le=10)
    retry_base_delay_s: float = Field(0.5, ge=0.0)  # exponential backoff with full jitter, from this base ...
    retry_max_delay_s: float = Field(30.0, ge=0.0)  # ... up to this cap (a 429's Retry-After overrides both)
    max_cost_usd: float | None = Field(None, ge=0)
    price: PriceConfig = PriceConfig()
    extra_body: dict[str, Any] = {}  # provider-specific request fields, e.g. {"reasoning": {"effort": "high"}}
    truncation_policy: Literal["drop", "keep", "retry"] = "drop"
    retry_max_tokens_cap: int = Field(32768, ge=1)
    correct_rate: float | None = Field(None, ge=0.0, le=1.0)  # builtin only: how often the simulated teacher is right
    style: Literal["concise", "verbose"] | None = None  # builtin only
    # OpenRouter's `reasoning` object (provider openrouter or builtin); other providers: their fields in extra_body
    reasoning: ReasoningConfig | None = None
    require_reasoning: bool = False  # a row without reasoning is a failed row (reason no_reasoning)
    provider_routing: dict[str, Any] | None = None  # OpenRouter's `provider` object, e.g. {"require_parameters": true}
    # a file holding the key (a mounted secret readable on every node), instead of an environment variable
    api_key_file: str | None = None
    # training refuses a (teacher, domain) whose share of permanently failed rows (truncation aside) is above this
    max_failure_share: float = Field(0.05, ge=0.0, le=1.0)
    # online: one HTTP request per answer; batch: the provider's batch endpoint (OpenRouter's; about half the price,
    # results within 24 hours), see `batch`
    mode: Literal["online", "batch"] = "online"
    batch: BatchConfig = BatchConfig()

    @model_validator(mode="after")
    def _teacher_options(self) -> TeacherConfig:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set one of api_key_env and api_key_file, not both")
        if self.mode == "batch" and self.provider == "openai-compatible":
            raise ValueError("mode batch needs a provider whose batch endpoint is implemented: openrouter (or builtin, "
                             "the simulator of it)")
        if self.mode == "batch" and self.n_in_one_request:
            raise ValueError("mode batch sends one request per sample; set n_in_one_request: false")
        if self.provider == "openai-compatible" and self.reasoning is not None:
            raise ValueError("'reasoning' is OpenRouter's request object; for this provider put its own fields in "
                             "extra_body (e.g. {\"reasoning_effort\": \"high\"})")
        if self.provider == "openai-compatible" and self.provider_routing is not None:
            raise ValueError("'provider_routing' is OpenRouter's `provider` object; it applies to provider openrouter")
        clash = {"reasoning", "provider"} & set(self.extra_body)
        if clash and (self.reasoning is not None or self.provider_routing is not None):
            raise ValueError(f"extra_body sets {', '.join(sorted(clash))} as well as reasoning/provider_routing; "
                             "use one place")
        return self

    @model_validator(mode="after")
    def _provider_fields(self) -> TeacherConfig:
        if self.provider == "builtin":
            if self.style is None or self.correct_rate is None:
                raise ValueError("a builtin teacher needs 'style' and 'correct_rate'")
        else:
            if not self.base_url:
                raise ValueError("base_url is required for a remote teacher")
            if self.style is not None or self.correct_rate is not None:
                raise ValueError("'style' and 'correct_rate' apply only to provider: builtin")
        return self


class LoraConfig(Strict):
    r: int = Field(32, ge=1, le=1024)
    alpha: float = Field(64.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    expert_lora: bool = False  # Qwen3-MoE: also adapt the fused expert weights (PEFT target_parameters)


class StudentEvaluationConfig(Strict):
    """The student's pool of evaluation actors: each holds one warm engine and scores one model at a time."""

    actors: int = Field(1, ge=1, le=64)
    gpus: float = Field(0.0, ge=0.0)  # per actor; 0 on a CPU machine (the transformers engine then runs on CPU)
    cpus: float = Field(1.0, gt=0.0)  # per actor, logical (also its torch thread count, at least 1)
    tensor_parallel: int = Field(1, ge=1, le=64)  # vLLM tensor_parallel_size; the actor reserves that many GPUs
    accelerator_type: str | None = None  # e.g. "L40S" (Ray's accelerator_type resource of the node)
    resources: dict[str, float] = {}  # custom Ray resources per actor, e.g. {node_l40s: 2} (see cluster.yaml)

    @model_validator(mode="after")
    def _whole_gpus_for_tensor_parallel(self) -> StudentEvaluationConfig:
        if self.tensor_parallel > 1 and self.gpus < self.tensor_parallel:
            raise ValueError(f"tensor_parallel {self.tensor_parallel} needs gpus >= {self.tensor_parallel} "
                             f"per actor (got {self.gpus})")
        return self


class StudentConfig(Strict):
    model: str  # a Hugging Face model id, a local path, or one of BUILTIN_STUDENTS
    revision: str | None = None
    lora: LoraConfig = LoraConfig()
    deepspeed_stage: Literal[0, 2, 3] = 0  # 0: plain DDP / single process
    num_workers: int = Field(1, ge=1, le=512)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gradient_checkpointing: bool = False
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    worker_resources: dict[str, float] = {}  # custom Ray resources per training worker, e.g. {node_h100: 1}
    # A dress rehearsal on CPU machines: GPUs are reserved in Ray's scheduler only (logical GPUs), training runs on
    # the CPU with gloo and evaluation engines on the CPU; placement is exercised exactly as on GPU nodes.
    simulate_gpus: bool = False
    evaluation: StudentEvaluationConfig = StudentEvaluationConfig()

    @field_validator("model")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value.startswith("builtin:") and value not in BUILTIN_STUDENTS:
            raise ValueError(f"unknown built-in student architecture {value!r}; known: {', '.join(BUILTIN_STUDENTS)}")
        return value


class VerifierOptions(Strict):
    # math, training data only: fail a trace whose answer holds several different \boxed{} (evaluation always grades
    # the last box, the standard rule)
    strict_boxes: bool = False


class DomainConfig(Strict):
    verifier: Literal["math", "code"]
    source: ProblemSourceConfig
    verifier_options: VerifierOptions = VerifierOptions()


class TrainingConfig(Strict):
    samples: int = Field(25_000, ge=1)  # training examples consumed; steps = samples / global_batch
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    global_batch: int = Field(50, ge=1)
    micro_batch: int = Field(8, ge=1)  # examples per forward/backward (an upper bound when packing by tokens)
    micro_batch_tokens: int | None = Field(None, ge=16)  # packing: fill each forward up to this many tokens
    # Ranks get equal token counts (longest-first assignment) or equal example counts (contiguous shares).
    balance: Literal["tokens", "examples"] = "tokens"
    # The loss: hidden states x LM head in chunks of this many target tokens, fp32 logits per chunk, recomputed in
    # the backward ("chunked"), or liger-kernel's fused linear cross-entropy on CUDA ("liger", the `gpu` extra).
    loss_kernel: Literal["chunked", "liger"] = "chunked"
    loss_chunk_tokens: int = Field(4096, ge=16)
    max_length: int = Field(4096, ge=16)
    checkpoint_every: int = Field(100, ge=1)  # steps
    packing: bool = True
    seed: int = 0
    max_failures: int = Field(2, ge=0)

    @property
    def steps(self) -> int:
        return max(1, self.samples // self.global_batch)


class BenchmarkConfig(Strict):
    name: str  # a name in the benchmark registry (distill_ray/benchmarks.py)
    path: str | None = None  # local file; default: the public source (downloaded, pinned, cached)
    subset: int | None = Field(None, ge=1)  # first N items (seeded shuffle), for quick runs
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {value!r}; known: {', '.join(BENCHMARKS)}")
        return value

    @property
    def domain(self) -> str:
        return BENCHMARKS[self.name].domain


class EvaluationConfig(Strict):
    benchmarks: list[BenchmarkConfig]
    backend: Literal["transformers", "vllm"] = "transformers"
    max_new_tokens: int = Field(4096, ge=1)
    batch_size: int = Field(32, ge=1)
    # transformers backend: padded-token budget per batch, rows x (longest prompt + max_new_tokens); None: rows only
    max_batch_tokens: int | None = Field(None, ge=1)
    evaluate_base: bool = True


class GridConfig(Strict):
    teachers: list[str]
    students: list[str]
    domains: list[str]
    extra: dict[str, list[Any]] = {}  # dotted key path -> values, e.g. {"training.learning_rate": [1e-4, 2e-4]}


class TeacherServerConfig(Strict):
    host: Literal["127.0.0.1", "localhost", "::1"] = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0: any free port


_DECONTAMINATION = DecontaminationSettings()  # the rules' defaults live with the rules (problems/decontaminate.py)


class DecontaminationConfig(Strict):
    """How training problems are matched against benchmark items (README, "Problem sources")."""

    ngram: int = Field(_DECONTAMINATION.ngram, ge=1, le=64)  # word n-gram length
    ngram_coverage: float = Field(_DECONTAMINATION.ngram_coverage, gt=0.0, le=1.0)
    similarity: float = Field(_DECONTAMINATION.similarity, gt=0.0, le=1.0)  # character n-gram Jaccard threshold
    char_ngram: int = Field(_DECONTAMINATION.char_ngram, ge=1, le=32)
    edit_min_tokens: int = Field(_DECONTAMINATION.edit_min_tokens, ge=1)
    edit_max_tokens: int = Field(_DECONTAMINATION.edit_max_tokens, ge=1)

    @model_validator(mode="after")
    def _edit_range(self) -> DecontaminationConfig:
        if self.edit_max_tokens < self.edit_min_tokens:
            raise ValueError("edit_max_tokens must be at least edit_min_tokens")
        return self

    def settings(self) -> DecontaminationSettings:
        return DecontaminationSettings(**self.model_dump())


class MlflowTrackingConfig(Strict):
    """Ray Tune's MLflowLoggerCallback. Without `tracking_uri`, a file store in the experiment (tracking/mlflow)."""

    tracking_uri: str | None = None  # e.g. http://mlflow.internal:5000, sqlite:///mlflow.db, file:///shared/mlruns
    experiment_name: str | None = None  # default: the sweep's name


class WandbTrackingConfig(Strict):
    """Ray Tune's WandbLoggerCallback. Offline runs are written under the experiment (tracking/wandb); `wandb sync`
    uploads them later. Online needs WANDB_API_KEY in the environment (never in the sweep file)."""

    project: str = Field(min_length=1)
    mode: Literal["offline", "online", "disabled"] = "offline"
    group: str | None = None  # default: the sweep's name


class TrackingConfig(Strict):
    """Experiment tracking: every checkpoint's row, each trial's configuration, and at the end the report and plots."""

    mlflow: MlflowTrackingConfig | None = None
    wandb: WandbTrackingConfig | None = None


class SweepConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    storage: str  # a path every node sees at the same place (local, or NFS/EFS); the experiment is storage/name
    seed: int = 0
    teacher_server: TeacherServerConfig | None = None
    teachers: dict[str, TeacherConfig]
    students: dict[str, StudentConfig]
    domains: dict[str, DomainConfig]
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig
    grid: GridConfig
    max_concurrent_trials: int | None = Field(None, ge=1)
    # Resources of each trial's driver (the process that launches Ray Train and evaluates); on a cluster, a custom
    # resource that only on-demand nodes advertise keeps drivers off spot workers (see cluster.yaml).
    trial_resources: dict[str, float] = {"CPU": 1.0}
    allow_network_risk: bool = False  # run untrusted code even where the sandbox cannot cut the network
    decontamination: DecontaminationConfig = DecontaminationConfig()
    tracking: TrackingConfig = TrackingConfig()
    # the sweep prints `distill-ray status`'s view every this many seconds (0: never)
    status_interval_s: float = Field(30.0, ge=0.0)

    @field_validator("storage")
    @classmethod
    def _filesystem_path(cls, value: str) -> str:
        # Every stage reads and writes the experiment with plain file calls, and Ray Train's checkpoints are read
        # back from it by path, so a URI would half-work: refuse it before anything runs.
        if "://" in value:
            raise ValueError(f"{value!r} is a URI; storage must be a filesystem path that every node sees at the "
                             "same place (local, or a shared mount such as the EFS of cluster.yaml); cloud URIs "
                             "(s3://, gs://, ...) are not supported")
        return value

    @model_validator(mode="after")
    def _grid_names_exist(self) -> SweepConfig:
        for axis, table in (("teachers", self.teachers), ("students", self.students), ("domains", self.domains)):
            for name in getattr(self.grid, axis):
                if name not in table:
                    raise ValueError(f"grid.{axis} names {name!r}, which is not defined under {axis}")
        if any(t.provider == "builtin" for t in self.teachers.values()) and self.teacher_server is None:
            raise ValueError("a builtin teacher needs a teacher_server section")
        for key in self.grid.extra:
            if not key.startswith(("training.", "students.", "teachers.", "evaluation.")):
                raise ValueError(f"grid.extra key {key!r} must start with training., students., teachers. "
                                 "or evaluation.")
        return self

    def experiment_dir(self) -> str:
        return os.path.join(self.storage, self.name) if "://" not in self.storage else f"{self.storage}/{self.name}"


def _set_dotted(data: dict, dotted: str, value: Any, file: str) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(file, dotted, f"cannot set a key inside {part!r}, which is not a mapping")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str], file: str) -> dict:
    """Apply `key.path=value` strings (values parsed as YAML scalars or lists) to a raw sweep mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(file, item, "an override must look like key.path=value")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), yaml.safe_load(raw), file)
    return data


def _resolve_paths(data: Any, base: Path) -> None:
    """Make relative local paths (keys named 'path') absolute against the sweep file's folder."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "path" and isinstance(value, str) and value and "://" not in value:
                if not os.path.isabs(value):
                    data[key] = str((base / value).resolve())
            else:
                _resolve_paths(value, base)
    elif isinstance(data, list):
        for item in data:
            _resolve_paths(item, base)


def _check_files(sweep: SweepConfig, file: str) -> None:
    for name, domain in sweep.domains.items():
        path = getattr(domain.source, "path", None)
        if path and not os.path.exists(path):
            raise ConfigError(file, f"domains.{name}.source.path", f"file not found: {path}")
    for i, bench in enumerate(sweep.evaluation.benchmarks):
        if bench.path and not os.path.exists(bench.path):
            raise ConfigError(file, f"evaluation.benchmarks.{i}.path", f"file not found: {bench.path}")


def sweep_from_dict(data: dict, file: str = "<sweep>") -> SweepConfig:
    try:
        sweep = SweepConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        reason = error["msg"]
        if error["type"] == "extra_forbidden":
            reason = "unknown key"
        if len(exc.errors()) > 1:
            reason += f" (and {len(exc.errors()) - 1} more problem(s))"
        raise ConfigError(file, key, reason) from None
    _check_files(sweep, file)
    return sweep


def load_sweep(path: str, overrides: list[str] | None = None) -> SweepConfig:
    """Read, override, resolve and validate a sweep file; raises ConfigError on any problem."""
    if not os.path.isfile(path):
        raise ConfigError(path, "(file)", "sweep file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "(file)", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "a sweep file must be a mapping")
    apply_overrides(data, overrides or [], path)
    _resolve_paths(data, Path(path).resolve().parent)
    # Data files live beside the sweep file; the experiment goes where the user runs the command (`storage: runs`
    # means ./runs), as a path on the submitting machine means nothing to a cluster anyway.
    storage = data.get("storage")
    if isinstance(storage, str) and storage and "://" not in storage:
        data["storage"] = os.path.abspath(storage)
    return sweep_from_dict(data, path)


def trial_config(sweep: SweepConfig, extra: dict[str, Any]) -> SweepConfig:
    """The sweep with one trial's extra-axis values applied (validated again, so a bad value fails loudly)."""
    if not extra:
        return sweep
    data = sweep.model_dump()
    for key, value in extra.items():
        _set_dotted(data, key, value, "<grid.extra>")
    return sweep_from_dict(data, "<grid.extra>")
