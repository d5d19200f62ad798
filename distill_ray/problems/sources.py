"""Reading problem sources: Hugging Face datasets and local JSONL/Parquet files, through a declared field mapping.

What it does
  `read_source(source, domain)` reads the rows a `ProblemSourceConfig` (schema.py) names, applies its field filters,
  maps each row to a `Problem` (rows.py: the prompt ends in the domain's final-format instruction; code tests become
  a verify/code_spec.py spec) and draws a seeded sample. `load_problems` also applies the source's verifiability
  filters (verifiable.py: the gold answer parses with math-verify; the reference solution passes its own tests in
  the sandbox) and returns n problems. Sampled hub pools are cached (pool_cache.py). Deduplication and
  decontamination live in `clean.py`; `clean.prepare_problems` (the package's entry point) runs the whole chain.

How to run it
  load_problems(SEED_MATH_SOURCE, "math", cache_dir="/data/cache")        # the hub, once; the cache afterwards
  load_problems(ProblemSourceConfig(kind="jsonl", path="p.jsonl", n=100,
                                    mapping=FieldMapping(problem="question", answer="answer")), "math")

Sampling
  Every row that passes the field filters and maps to a valid problem gets the key sha256(seed, row id); the sample
  is the rows with the smallest keys. The draw is therefore independent of the order rows arrive in (streamed
  shards, reordered files), repeatable for a given seed, and nested: with one seed, the first 100 of an n=1000 pool
  are the n=100 pool. The pool holds ceil(n * oversample) rows so that later drops (duplicates, contamination,
  failing references) can be replaced without reading the source again.

Caching and offline use
  Hub datasets are streamed by default (one pass, nothing materialised). With `cache_dir`, the sampled pool is
  written to `cache_dir/pools/<hash of the source config>.jsonl` and later calls read that file and never touch the
  network. A local copy also works offline: `path` may be a `save_to_disk` directory or a folder of data files.

What it does not guarantee
  That the dataset's answers or tests are right (only that they parse, and, when asked, that the dataset's own
  reference passes); that an unpinned revision ("main") returns the same rows tomorrow; that a row id is stable
  when the mapping has no `id` field and the dataset's row order changes between revisions.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distill_ray.files import InputError, iter_jsonl
from distill_ray.problems.pool_cache import LoadedSource, pool_cache_file, read_pool_cache, write_pool_cache
from distill_ray.problems.rows import Invalid, get_field, to_problem
from distill_ray.problems.schema import ProblemSourceConfig, ProblemSourceError, check_domain_mapping
from distill_ray.problems.verifiable import select_verifiable
from distill_ray.records import Problem


def read_source(source: ProblemSourceConfig, domain: str, *, cache_dir: str | None = None) -> LoadedSource:
    """Read, filter, map and sample a source into a pool of ceil(n * oversample) problems in seeded order.

    Raises ProblemSourceError when the mapping does not fit the domain or the data (a field the data lacks), when a
    file cannot be read, or when no row maps to a valid problem.
    """
    if source.kind == "builtin":
        problems = _builtin(source, domain)
        stats = {"rows_read": len(problems), "filtered_out": 0, "invalid": {}, "pool": len(problems)}
        return LoadedSource(source.label(), f"builtin:{domain}", problems, {}, stats)
    check_domain_mapping(source, domain)
    cache_file = pool_cache_file(source, domain, cache_dir)
    if cache_file is not None and cache_file.exists():
        return read_pool_cache(cache_file)
    loaded = _read_and_sample(source, domain, cache_dir)
    if cache_file is not None:
        write_pool_cache(cache_file, loaded)
    return loaded


def load_problems(
    source: ProblemSourceConfig,
    domain: str,
    *,
    cache_dir: str | None = None,
    reference_checker: Callable[[str, str], Any] | None = None,
    workers: int = 2,
) -> list[Problem]:
    """`source.n` problems of `domain`, seeded, each passing the source's field and verifiability filters.

    No deduplication or decontamination here: `clean.clean_problems` does that (and `clean.prepare_problems` runs
    both so that exactly n survive). `reference_checker(response, tests_json)` defaults to the sandbox's
    `distill_ray.verify.check_code`; it is only called when `filters.reference_must_pass` is set.
    """
    if source.kind == "builtin":
        return _builtin(source, domain)
    loaded = read_source(source, domain, cache_dir=cache_dir)
    kept, _outcomes = select_verifiable(
        loaded.problems,
        loaded.references if source.filters.reference_must_pass else {},
        n=source.n,
        check_answers=source.filters.answer_parseable,
        reference_checker=reference_checker,
        workers=workers,
    )
    return kept


def _builtin(source: ProblemSourceConfig, domain: str) -> list[Problem]:
    from distill_ray.builtin_problems import make_problems  # the owner's module; imported late so this one stands alone

    return make_problems(domain, source.split, source.n, source.seed)



def _source_string(source: ProblemSourceConfig) -> str:
    if source.kind == "huggingface" and source.dataset:
        name = source.dataset + (f"/{source.config}" if source.config else "")
        rev = f"@{source.revision[:12]}" if source.revision and not source.path else ""
        return f"hf:{name}:{source.split}{rev}"
    return str(source.path)


def _needed_fields(source: ProblemSourceConfig) -> list[tuple[str, str]]:
    """(where in the config, top-level column) for every field the mapping and filters name."""
    assert source.mapping is not None
    needed = [(f"mapping.{role}", name.split(".")[0]) for role, name in source.mapping.roles().items()]
    needed += [(f"filters.fields[{i}].field", f.field.split(".")[0]) for i, f in enumerate(source.filters.fields)]
    return needed


def _check_columns(source: ProblemSourceConfig, columns: list[str], where: str) -> None:
    present = set(columns)
    for config_key, column in _needed_fields(source):
        if column not in present:
            shown = ", ".join(sorted(present)[:30])
            raise ProblemSourceError(
                f"problem source {source.label()}: {config_key} names field {column!r}, which is not in the data "
                f"({where}; fields: {shown})"
            )


def _read_and_sample(source: ProblemSourceConfig, domain: str, cache_dir: str | None) -> LoadedSource:
    label = source.label()
    source_str = _source_string(source)
    pool_size = max(source.n, math.ceil(source.n * source.oversample))
    heap: list[tuple[int, int, Problem, str | None]] = []  # (-key, -index, ...): a max-heap of the smallest keys
    stats: dict[str, Any] = {"rows_read": 0, "filtered_out": 0, "invalid": {}, "invalid_examples": {}}
    seen_ids: set[str] = set()
    checked = False
    for index, (row, columns, where) in enumerate(_iter_rows(source, cache_dir)):
        if source.max_rows is not None and index >= source.max_rows:
            break
        if not checked:
            # Columns known up front (Parquet, HF features) or, for JSONL, the first row's keys.
            _check_columns(source, columns if columns is not None else list(row), where)
            checked = True
        stats["rows_read"] += 1
        if not all(f.passes(get_field(row, f.field)) for f in source.filters.fields):
            stats["filtered_out"] += 1
            continue
        converted = to_problem(row, index, source, domain, source_str)
        if isinstance(converted, Invalid):
            stats["invalid"][converted.reason] = stats["invalid"].get(converted.reason, 0) + 1
            stats["invalid_examples"].setdefault(converted.reason, f"{where}: {converted.detail}")
            continue
        problem, reference = converted
        if problem["id"] in seen_ids:
            # Ids must be unique within a source; a repeated id keeps its row position as a suffix.
            problem["id"] = f"{problem['id']}#{index}"
        seen_ids.add(problem["id"])
        item = (-_sample_key(source.seed, problem["id"]), -index, problem, reference)
        if len(heap) < pool_size:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)
    if not checked:
        raise ProblemSourceError(f"problem source {label}: no rows in {source.path or source.dataset}")
    ordered = sorted(heap, key=lambda item: (-item[0], -item[1]))
    problems = [item[2] for item in ordered]
    if not problems:
        reasons = "; ".join(f"{k}: {v}" for k, v in stats["invalid_examples"].items()) or "every row was filtered out"
        raise ProblemSourceError(f"problem source {label}: no row maps to a valid {domain} problem ({reasons})")
    references = {item[2]["id"]: item[3] for item in ordered if item[3]}
    stats["pool"] = len(problems)
    return LoadedSource(label, source_str, problems, references, stats)


def _sample_key(seed: int, row_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{row_id}".encode()).digest()[:8], "big")


def _iter_rows(source: ProblemSourceConfig, cache_dir: str | None) -> Iterator[tuple[dict, list[str] | None, str]]:
    """(row, column names when known, where the row came from) for every row of the source, in file order."""
    if source.kind == "jsonl":
        yield from _iter_jsonl(source)
    elif source.kind == "parquet":
        yield from _iter_parquet(source)
    else:
        yield from _iter_hf(source, cache_dir)


def _expand_paths(source: ProblemSourceConfig, suffixes: tuple[str, ...]) -> list[Path]:
    raw = os.path.expanduser(str(source.path))
    if os.path.isdir(raw):
        paths = sorted(p for p in Path(raw).rglob("*") if p.is_file() and p.name.endswith(suffixes))
    else:
        paths = sorted(Path(p) for p in glob.glob(raw)) if any(c in raw for c in "*?[") else [Path(raw)]
    if not paths or not all(p.is_file() for p in paths):
        raise ProblemSourceError(f"problem source {source.label()}: path {source.path!r}: no such file")
    return paths


def _iter_jsonl(source: ProblemSourceConfig) -> Iterator[tuple[dict, list[str] | None, str]]:
    for path in _expand_paths(source, (".jsonl", ".jsonl.gz", ".json")):
        try:
            for lineno, row in iter_jsonl(path):
                yield row, None, f"{path}:{lineno}"
        except InputError as exc:
            raise ProblemSourceError(f"problem source {source.label()}: {exc}") from None


def _iter_parquet(source: ProblemSourceConfig) -> Iterator[tuple[dict, list[str] | None, str]]:
    import pyarrow.parquet as pq

    for path in _expand_paths(source, (".parquet",)):
        try:
            handle = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ProblemSourceError(f"problem source {source.label()}: {path}: not a Parquet file ({exc})") from None
        columns = handle.schema_arrow.names
        _check_columns(source, columns, str(path))
        wanted = sorted({column for _, column in _needed_fields(source)})  # read only what the mapping uses
        offset = 0
        for batch in handle.iter_batches(batch_size=2048, columns=wanted):
            for row in batch.to_pylist():
                offset += 1
                yield row, columns, f"{path}:row {offset}"


def _iter_hf(source: ProblemSourceConfig, cache_dir: str | None) -> Iterator[tuple[dict, list[str] | None, str]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a project dependency
        raise ProblemSourceError(
            f"problem source {source.label()}: the 'datasets' package is needed for kind 'huggingface'"
        ) from None
    label = source.label()
    local = Path(os.path.expanduser(source.path)) if source.path else None
    streaming = source.streaming if source.streaming is not None else local is None
    try:
        if local is not None and any((local / marker).exists() for marker in _SAVE_TO_DISK_MARKERS):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if source.split not in ds:
                    raise ProblemSourceError(
                        f"problem source {label}: split {source.split!r} not in {local} (splits: {', '.join(ds)})"
                    )
                ds = ds[source.split]
            if streaming:
                ds = ds.to_iterable_dataset()
        else:
            ds = datasets.load_dataset(
                str(local) if local is not None else source.dataset,
                source.config,
                split=source.split,
                revision=None if local is not None else source.revision,
                streaming=streaming,
                cache_dir=cache_dir,
            )
    except ProblemSourceError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, ValueError, hub errors)
        where = local or f"{source.dataset} (config {source.config}, split {source.split}, revision {source.revision})"
        raise ProblemSourceError(f"problem source {label}: cannot load {where}: {exc}") from None
    columns = list(ds.column_names) if ds.column_names else None
    where = str(local or source.dataset)
    if columns is not None:
        _check_columns(source, columns, where)
        # Decode only the mapped fields: rows of sets like NuminaMath carry long solutions nobody here reads.
        ds = ds.select_columns(sorted({column for _, column in _needed_fields(source)}))
    for index, row in enumerate(ds):
        yield row, columns, f"{where} row {index}"


_SAVE_TO_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


# Names that lived here before sources.py was split into schema, rows, verifiable, pool_cache and verify/code_spec:
# still importable from here, so that callers written against the old layout keep working. New code imports them
# from their homes.
from distill_ray.problems.rows import code_requirement, function_signature, last_boxed  # noqa: E402
from distill_ray.problems.schema import (  # noqa: E402
    DEFAULT_CODE_INSTRUCTION,
    DEFAULT_MATH_INSTRUCTION,
    SEED_CODE_SOURCE,
    SEED_MATH_SOURCE,
    FieldFilter,
    FieldMapping,
    SourceFilters,
    parse_source_config,
)
from distill_ray.problems.verifiable import answer_parses, reference_verdict  # noqa: E402
from distill_ray.verify.code_spec import TEST_FORMATS, build_test_spec, strip_solution_imports  # noqa: E402

__all__ = [
    "DEFAULT_CODE_INSTRUCTION",
    "DEFAULT_MATH_INSTRUCTION",
    "SEED_CODE_SOURCE",
    "SEED_MATH_SOURCE",
    "TEST_FORMATS",
    "FieldFilter",
    "FieldMapping",
    "LoadedSource",
    "ProblemSourceConfig",
    "ProblemSourceError",
    "SourceFilters",
    "answer_parses",
    "build_test_spec",
    "code_requirement",
    "function_signature",
    "last_boxed",
    "load_problems",
    "parse_source_config",
    "read_source",
    "reference_verdict",
    "select_verifiable",
    "strip_solution_imports",
]
