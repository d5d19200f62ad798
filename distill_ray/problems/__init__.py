"""Training problems: read from a source, cleaned, decontaminated against the benchmarks, audited.

Entry point: `prepare_problems(source, domain, benchmarks, ...)` (clean.py) reads a source and returns exactly n clean
problems and a summary whose `contamination` part is the audit (`problems/<domain>/contamination.json` in a sweep).
The modules, one responsibility each:
  schema.py         the source configuration (ProblemSourceConfig, FieldMapping, filters, the seed's sources)
  sources.py        reading: JSONL, Parquet and Hugging Face rows, field filters, seeded sampling
  rows.py           one row through the field mapping to a Problem
  verifiable.py     gold answers that parse, reference solutions that pass their tests
  pool_cache.py     the sampled pool and its cache file
  decontaminate.py  the matching rules against benchmark items
  clean.py          the chain: decontamination, duplicates, near duplicates, verifiability, the summary
  audit.py          the audit as report lines (`contamination_section`)
  benchmarks.py     MATH-500 and MBPP+ as Problem rows; builtin.py the built-in synthetic families
The test-spec format of code problems lives with its judge, in distill_ray/verify/code_spec.py.
Importing the package loads nothing else: the entry point is imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["prepare_problems"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one light submodule (schema, rows) does not pull in the cleaning pipeline.
    if name == "prepare_problems":
        from distill_ray.problems.clean import prepare_problems

        return prepare_problems
    raise AttributeError(f"module 'distill_ray.problems' has no attribute {name!r}")
