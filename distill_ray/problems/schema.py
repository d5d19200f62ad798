"""The problem-source schema: where a domain's problems come from, how fields map to roles, which rows to keep.

What it does
  `ProblemSourceConfig` (one per domain in a sweep file) names the kind of source (the built-in families, a Hugging
  Face dataset pinned by name, config, split and revision, or local JSONL/Parquet files), a `FieldMapping` from
  dataset fields to roles (problem text, gold answer or tests and their format, entry point, reference solution, id),
  `SourceFilters` (field conditions and the two verifiability checks), and the sample size and seed.
  `parse_source_config` validates a mapping into one, with errors naming the key; `check_domain_mapping` fails
  before any data is read when a mapping cannot produce the domain's problems. `SEED_MATH_SOURCE` and
  `SEED_CODE_SOURCE` are the seed study's sources.

How to run it
  ProblemSourceConfig(kind="jsonl", path="p.jsonl", n=100, mapping=FieldMapping(problem="question", answer="answer"))

What it does not guarantee
  Validation checks shapes only: that the named fields exist is checked when the data is read (sources.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from distill_ray.verify.code_spec import TEST_FORMATS

DEFAULT_MATH_INSTRUCTION = "Put your final answer in \\boxed{}."
DEFAULT_CODE_INSTRUCTION = "Write your final solution as a Python code block."


class ProblemSourceError(ValueError):
    """A problem source that cannot be read as configured; the message names the source, the field and the reason."""



# ---------------------------------------------------------------------------------------------------------------
# Configuration


class FieldFilter(BaseModel):
    """Keep a row only when `field` satisfies every operator given (equals, in, not_in, min, max)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    field: str = Field(min_length=1, description="field name; dotted for nested values (metadata.level)")
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> FieldFilter:
        given = self.model_fields_set & {"equals", "in_", "not_in", "min", "max"}
        if not given:
            raise ValueError(f"filter on {self.field!r} has no operator (give equals, in, not_in, min or max)")
        return self

    @model_serializer(mode="wrap")
    def _given_operators_only(self, handler: Any) -> dict[str, Any]:
        # "equals: null" is a real condition, so an operator that was not given must not be dumped as null: a dumped
        # and re-loaded filter has to mean the same thing.
        data = handler(self)
        for name in ("equals", "in_", "not_in", "min", "max"):
            if name not in self.model_fields_set:
                data.pop(name, None)
                data.pop(name.rstrip("_"), None)
        return data

    def passes(self, value: Any) -> bool:
        if "equals" in self.model_fields_set and value != self.equals:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.not_in is not None and value in self.not_in:
            return False
        if self.min is not None or self.max is not None:
            number = _as_number(value)
            if number is None:
                return False
            if self.min is not None and number < self.min:
                return False
            if self.max is not None and number > self.max:
                return False
        return True


class SourceFilters(BaseModel):
    """Which rows may become problems: field conditions, and the two verifiability checks."""

    model_config = ConfigDict(extra="forbid")

    fields: list[FieldFilter] = Field(default_factory=list)
    answer_parseable: bool = Field(
        default=True, description="math: drop rows whose gold answer math-verify cannot parse (it could never match)"
    )
    reference_must_pass: bool = Field(
        default=False,
        description="code: run the mapped reference solution against the row's tests in the sandbox; drop on failure",
    )


class FieldMapping(BaseModel):
    """Which dataset field plays which role. Field names may be dotted (a.b) or indexed (a.0.b) for nested values."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field(min_length=1, description="the problem statement")
    id: str | None = Field(default=None, description="a unique id field; None uses the row's position")
    answer: str | None = Field(default=None, description="math: the gold final answer")
    answer_extract: Literal["none", "last_boxed"] = Field(
        default="none", description="last_boxed: take the last \\boxed{...} of the answer field (a full solution)"
    )
    tests: str | None = Field(default=None, description="code: the unit tests")
    test_format: Literal["assert", "pytest", "stdio", "call", "spec"] | None = Field(
        default=None,
        description="assert: a list of assert statements or a block of them; pytest: test code; stdio: cases of "
        "stdin/stdout (list of dicts, or {inputs, outputs}); call: {inputs, outputs} for the entry point; spec: "
        "already a records.py test-spec JSON",
    )
    entry_point: str | None = Field(default=None, description="code: the field holding the function name")
    setup: str | None = Field(default=None, description="code (assert format): setup code run before the asserts")
    reference_solution: str | None = Field(default=None, description="code: a reference solution, for the filter")

    def roles(self) -> dict[str, str]:
        """mapping role -> field name, for every role that names a field."""
        names = ("problem", "id", "answer", "tests", "entry_point", "setup", "reference_solution")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


class ProblemSourceConfig(BaseModel):
    """Where one domain's problems come from and how to read them. See the module docstring."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["builtin", "huggingface", "jsonl", "parquet"]
    name: str | None = Field(default=None, description="a label for reports and error messages")
    dataset: str | None = Field(default=None, description="huggingface: the hub id (owner/name)")
    config: str | None = Field(default=None, description="huggingface: the config (subset) name")
    split: str = "train"
    revision: str | None = Field(default=None, description="huggingface: a commit sha ('main' opts out of pinning)")
    path: str | None = Field(
        default=None,
        description="jsonl/parquet: a file, a glob or a directory; huggingface: a local copy (save_to_disk directory "
        "or a folder of data files) used instead of the hub",
    )
    streaming: bool | None = Field(default=None, description="huggingface: stream rows (default: yes for the hub)")
    mapping: FieldMapping | None = None
    n: int = Field(ge=1, description="problems to sample")
    seed: int = 0
    oversample: float = Field(default=2.0, ge=1.0, description="pool size = ceil(n * oversample), for later drops")
    max_rows: int | None = Field(default=None, ge=1, description="read at most this many rows (quick trials)")
    filters: SourceFilters = Field(default_factory=SourceFilters)
    instruction: str | None = Field(default=None, description="final-format instruction; default by domain")
    signature_hint: bool = Field(default=True, description="code: state the function signature the tests call")
    license: str | None = Field(default=None, description="the dataset's licence, recorded in reports")

    @model_validator(mode="after")
    def _consistent(self) -> ProblemSourceConfig:
        label = self.label()
        if self.kind == "builtin":
            extra = [k for k in ("dataset", "config", "revision", "path", "mapping") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"problem source {label}: {', '.join(extra)} not allowed for kind 'builtin'")
            return self
        if self.mapping is None:
            raise ValueError(f"problem source {label}: mapping is required for kind {self.kind!r}")
        if self.kind in ("jsonl", "parquet") and not self.path:
            raise ValueError(f"problem source {label}: path is required for kind {self.kind!r}")
        if self.kind == "huggingface":
            if not self.dataset and not self.path:
                raise ValueError(f"problem source {label}: dataset (hub id) or path (local copy) is required")
            if self.dataset and not self.path and not self.revision:
                raise ValueError(
                    f"problem source {label}: revision is required for hub dataset {self.dataset!r} "
                    "(pin a commit sha; 'main' opts out)"
                )
        return self

    def label(self) -> str:
        if self.name:
            return repr(self.name)
        where = self.dataset or self.path or self.kind
        return repr(f"{self.kind}:{where}")

    def check(self, domain: str) -> None:
        """Fail before any work starts when the mapping cannot produce `domain` problems (no data read)."""
        check_domain_mapping(self, domain)


def parse_source_config(data: Mapping[str, Any], *, where: str = "") -> ProblemSourceConfig:
    """Validate a sweep-file mapping into a config; errors become `ProblemSourceError` naming where, key and reason."""
    try:
        return ProblemSourceConfig.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        label = data.get("name") or data.get("dataset") or data.get("path") or data.get("kind") or "?"
        problems = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "(source)"
            reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{loc}: {reason}")
        prefix = f"{where}: " if where else ""
        raise ProblemSourceError(f"{prefix}problem source {label!r}: " + "; ".join(problems)) from None


# ---------------------------------------------------------------------------------------------------------------
# The seed study's defaults (see the README paragraph in the issue note). Sizes are as published on the hub.

SEED_MATH_SOURCE = ProblemSourceConfig(
    kind="huggingface",
    name="numinamath-1.5",
    dataset="AI-MO/NuminaMath-1.5",
    split="train",
    revision="9a5aae8427cb65ac9a8bb3136ffb1d554b70c478",
    mapping=FieldMapping(problem="problem", answer="answer"),
    n=40_000,
    seed=0,
    filters=SourceFilters(
        fields=[
            # Proofs and multiple choice have no answer the math judge can compare; "proof"/"notfound" are the
            # dataset's placeholders for a missing final answer.
            FieldFilter(field="question_type", equals="math-word-problem"),
            FieldFilter(field="answer", not_in=["", "proof", "notfound"]),
            FieldFilter(field="problem_is_valid", equals="Yes"),
            FieldFilter(field="solution_is_valid", equals="Yes"),
            # Synthetic rows are LLM rewrites of MATH/AMC problems: the likeliest route for benchmark leakage.
            FieldFilter(field="synthetic", equals=False),
        ],
        answer_parseable=True,
    ),
    license="apache-2.0",
)

SEED_CODE_SOURCE = ProblemSourceConfig(
    kind="huggingface",
    name="opencoder-educational",
    dataset="OpenCoder-LLM/opc-sft-stage2",
    config="educational_instruct",
    split="train",
    revision="7d28f40d579edd7c24402d17d0c7639f991e6f8d",
    mapping=FieldMapping(
        id="seq_id",
        problem="instruction",
        tests="testcase",
        test_format="assert",
        entry_point="entry_point",
        reference_solution="code",
    ),
    n=40_000,
    seed=0,
    filters=SourceFilters(reference_must_pass=True),
    license="mit",
)



def check_domain_mapping(source: ProblemSourceConfig, domain: str) -> None:
    label = source.label()
    if domain not in ("math", "code"):
        raise ProblemSourceError(f"problem source {label}: unknown domain {domain!r} (expected 'math' or 'code')")
    if source.kind == "builtin":
        return
    mapping = source.mapping
    assert mapping is not None  # the model validator guarantees it for non-builtin kinds
    if domain == "math":
        if not mapping.answer:
            raise ProblemSourceError(f"problem source {label}: mapping.answer is required for math problems")
        if source.filters.reference_must_pass:
            raise ProblemSourceError(f"problem source {label}: filters.reference_must_pass applies to code only")
    else:
        if not mapping.tests:
            raise ProblemSourceError(f"problem source {label}: mapping.tests is required for code problems")
        if not mapping.test_format:
            raise ProblemSourceError(
                f"problem source {label}: mapping.test_format is required for code problems ({', '.join(TEST_FORMATS)})"
            )
        if source.filters.reference_must_pass and not mapping.reference_solution:
            raise ProblemSourceError(
                f"problem source {label}: filters.reference_must_pass needs mapping.reference_solution"
            )



def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None

