"""Clean a problem pool: exact and near-duplicate removal, decontamination against the benchmarks, verifiability.

What it does
  `clean_problems` walks a pool in its given (seeded) order and gives every row one outcome, checked in this order:
    contaminated       the problem is a copy or near copy of a benchmark item (decontaminate.py: numbers masked,
                       word 8-gram coverage, one-token edits of short items, character 5-gram Jaccard); every hit
                       is listed per benchmark item with its rule and score
    duplicate          same normalised text (NFKC, lower case, words only) as an earlier row
    near_duplicate     MinHash estimate of the Jaccard similarity of word 5-gram shingles >= the threshold against
                       an earlier row (LSH bands find the candidates)
    unparseable_answer math gold answer that math-verify cannot parse
    failing_reference  code whose reference solution fails its own tests in the sandbox ("reference_error" when the
                       sandbox itself errs, after retries)
    kept / unused      kept until n are kept; later rows are "unused" whatever they are
  The instruction sentences appended to prompts (the \\boxed{} and code-block instructions, the signature sentence)
  are removed before any comparison, so two problems never match on boilerplate. The summary counts rows read, kept,
  dropped by reason, per source, and lists contamination by benchmark item; `report_path` receives it as JSON, with
  every dropped row and why.

  `prepare_problems` chains source reading (`sources.read_source`) and cleaning, so that exactly n problems survive
  when the pool allows, and merges the reader's counts (rows scanned, filtered out, invalid) into the per-source
  summary.

How to run it
  kept, summary = clean_problems(pool, {"math500": load_math500(path)}, report_path="runs/x/problems_math.json")
  kept, summary = prepare_problems(SEED_MATH_SOURCE, "math", {"math500": bench}, cache_dir=..., report_path=...)

What it does not guarantee
  Decontamination catches copies, one-word edits, reordered clauses and changed numbers (see decontaminate.py and
  benchmarks/decontamination.py for measured recall), not paraphrases or translated problems. Near-duplicate
  detection is probabilistic (MinHash with 64 permutations: similarities within a few points of the threshold may go
  either way, deterministically for a given input). Results are repeatable for the same input and order.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from distill_ray.files import write_text
from distill_ray.problems.decontaminate import (
    DEFAULT_IGNORE_PHRASES,
    REQUIREMENT_RE,
    ContaminationIndex,
    DecontaminationSettings,
    Hit,
)
from distill_ray.problems.schema import ProblemSourceConfig
from distill_ray.problems.sources import read_source
from distill_ray.problems.verifiable import select_verifiable
from distill_ray.records import Problem

DROP_REASONS = (
    "contaminated",
    "duplicate",
    "near_duplicate",
    "unparseable_answer",
    "failing_reference",
    "reference_error",
)
_WORD_RE = re.compile(r"[^\W_]+")


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise (uint64 arithmetic wraps, which is what the mixer wants)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tokens(text: str, ignore_phrases: Sequence[str] = DEFAULT_IGNORE_PHRASES) -> list[str]:
    """Comparison words of a prompt: boilerplate removed, NFKC, lower case, letters and digits only."""
    text = REQUIREMENT_RE.sub(" ", text)
    for phrase in ignore_phrases:
        if phrase:
            text = text.replace(phrase, " ")
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


class MinHashIndex:
    """MinHash signatures of word shingles with LSH banding; deterministic across runs and processes."""

    def __init__(self, threshold: float, num_perm: int = 64, shingle: int = 5, seed: int = 1):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        self.rows = _band_rows(threshold, num_perm)
        # One 64-bit seed per permutation; each "permutation" is splitmix64(shingle hash XOR seed). A linear
        # (a*x + b) mod p family with 32-bit a and x never wraps, so its minimum tracks the smallest x for every
        # seed and the permutations are correlated; the mixer has no such structure.
        self.seeds = np.random.default_rng(seed).integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64)
        self.buckets: dict[tuple[int, bytes], list[int]] = {}
        self.signatures: list[np.ndarray] = []
        self.ids: list[str] = []

    def signature(self, words: Sequence[str]) -> np.ndarray:
        size = min(self.shingle, len(words)) or 1
        shingles = {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}
        x = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64, count=len(shingles))
        return _splitmix64(self.seeds[:, None] ^ x[None, :]).min(axis=1)

    def _bands(self, sig: np.ndarray) -> Iterable[tuple[int, bytes]]:
        for band in range(self.num_perm // self.rows):
            yield band, sig[band * self.rows : (band + 1) * self.rows].tobytes()

    def nearest(self, sig: np.ndarray) -> tuple[str, float] | None:
        """The most similar indexed row at or above the threshold, with its estimated Jaccard similarity."""
        best: tuple[str, float] | None = None
        seen: set[int] = set()
        for key in self._bands(sig):
            for j in self.buckets.get(key, ()):
                if j in seen:
                    continue
                seen.add(j)
                similarity = float(np.mean(self.signatures[j] == sig))
                if similarity >= self.threshold and (best is None or similarity > best[1]):
                    best = (self.ids[j], similarity)
        return best

    def add(self, sig: np.ndarray, row_id: str) -> None:
        j = len(self.signatures)
        self.signatures.append(sig)
        self.ids.append(row_id)
        for key in self._bands(sig):
            self.buckets.setdefault(key, []).append(j)


def _band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the largest divisor r of num_perm whose S-curve midpoint (1/b)^(1/r) sits below the
    threshold, so that pairs at the threshold are candidates with high probability."""
    best = 1
    for r in range(1, num_perm + 1):
        if num_perm % r:
            continue
        bands = num_perm // r
        if (1.0 / bands) ** (1.0 / r) <= threshold - 0.1:
            best = r
    return best


def clean_problems(
    problems: list[Problem],
    benchmarks: Mapping[str, Sequence[Problem]],
    *,
    decontamination: DecontaminationSettings | None = None,
    near_dup_threshold: float = 0.8,
    report_path: str | None = None,
    reference_checker: Callable[[str, str], Any] | None = None,
    references: Mapping[str, str] | None = None,
    check_answers: bool = True,
    n: int | None = None,
    workers: int = 2,
    ignore_phrases: Sequence[str] = DEFAULT_IGNORE_PHRASES,
    num_perm: int = 64,
    shingle: int = 5,
    chunk: int = 512,
) -> tuple[list[Problem], dict[str, Any]]:
    """Drop duplicates, near-duplicates, contaminated problems and unverifiable ones; keep at most `n` (all if None).

    `benchmarks` maps a benchmark name to its items (their prompts are compared). `references` maps problem id to a
    reference solution; those problems are run through `reference_checker(response, tests_json)` (default: the
    sandbox's `distill_ray.verify.check_code`). Returns the kept problems, in input order, and the summary.
    """
    started = time.perf_counter()
    settings = decontamination or DecontaminationSettings()
    contamination = ContaminationIndex(benchmarks, settings, ignore_phrases)
    near = MinHashIndex(near_dup_threshold, num_perm=num_perm, shingle=shingle)
    seen_text: dict[str, str] = {}
    outcomes: list[str] = ["unused"] * len(problems)
    details: list[dict[str, Any]] = [{} for _ in problems]
    refs = dict(references or {})
    kept: list[Problem] = []
    last_kept = -1
    # Chunks of cheap checks, then the expensive ones on the chunk's survivors, until n are kept. A row's outcome
    # depends only on the rows before it, so the chunk size changes the work done, never the result.
    for start in range(0, len(problems), chunk):
        if n is not None and len(kept) >= n:
            break
        candidates: list[int] = []
        for i in range(start, min(len(problems), start + chunk)):
            problem = problems[i]
            hits = contamination.matches(problem)
            if hits:
                outcomes[i] = "contaminated"
                details[i] = {"items": sorted({f"{h.benchmark}:{h.item}" for h in hits}), "hits": _hit_list(hits)}
                continue
            words = tokens(problem["prompt"], ignore_phrases)
            digest = hashlib.sha256(" ".join(words).encode()).hexdigest()
            if digest in seen_text:
                outcomes[i] = "duplicate"
                details[i] = {"of": seen_text[digest]}
                continue
            seen_text[digest] = problem["id"]
            sig = near.signature(words)
            match = near.nearest(sig)
            if match is not None:
                outcomes[i] = "near_duplicate"
                details[i] = {"of": match[0], "similarity": round(match[1], 3)}
                continue
            near.add(sig, problem["id"])
            candidates.append(i)
        chunk_kept, verdicts = select_verifiable(
            [problems[i] for i in candidates],
            refs,
            n=None if n is None else n - len(kept),
            check_answers=check_answers,
            reference_checker=reference_checker,
            workers=workers,
        )
        kept.extend(chunk_kept)
        for i, verdict in zip(candidates, verdicts, strict=True):
            outcomes[i] = verdict
            if verdict == "kept":
                last_kept = i
    if n is not None and len(kept) >= n:
        # Rows after the n-th kept one were never needed: unused, whatever the cheap checks found, so the summary
        # does not depend on how far the last chunk ran.
        for i in range(last_kept + 1, len(problems)):
            outcomes[i] = "unused"
            details[i] = {}
    summary = _summarise(problems, outcomes, details, benchmarks, n)
    summary["contamination"]["settings"] = settings.as_dict()
    summary["settings"] = {
        "decontamination": settings.as_dict(),
        "near_dup_threshold": near_dup_threshold,
        "num_perm": num_perm,
        "shingle": shingle,
        "lsh_rows_per_band": near.rows,
        "check_answers": check_answers,
        "reference_check": bool(references),
    }
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if report_path:
        write_cleaning_report(summary, report_path)
    return kept, summary


def _hit_list(hits: list[Hit]) -> list[dict[str, Any]]:
    return [{"benchmark": h.benchmark, "item": h.item, "segment": h.segment, "rule": h.rule, "score": h.score}
            for h in hits]


def _empty_counts() -> dict[str, int]:
    return {reason: 0 for reason in DROP_REASONS}


def _summarise(
    problems: Sequence[Problem],
    outcomes: Sequence[str],
    details: Sequence[dict[str, Any]],
    benchmarks: Mapping[str, Sequence[Problem]],
    n: int | None,
) -> dict[str, Any]:
    by_source: dict[str, dict[str, Any]] = {}
    total = {"rows_read": len(problems), "kept": 0, "unused": 0, "dropped": _empty_counts()}
    listing: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in benchmarks}
    rows_dropped = {name: 0 for name in benchmarks}
    drops: list[dict[str, Any]] = []
    for problem, outcome, detail in zip(problems, outcomes, details, strict=True):
        entry = by_source.setdefault(
            problem["source"], {"rows_read": 0, "kept": 0, "unused": 0, "dropped": _empty_counts()}
        )
        entry["rows_read"] += 1
        if outcome in ("kept", "unused"):
            entry[outcome] += 1
            total[outcome] += 1
            continue
        entry["dropped"][outcome] += 1
        total["dropped"][outcome] += 1
        drops.append({"id": problem["id"], "source": problem["source"], "reason": outcome, **detail})
        if outcome == "contaminated":
            for bench in sorted({h["benchmark"] for h in detail["hits"]}):
                rows_dropped[bench] += 1
            for hit in detail["hits"]:
                matched = listing[hit["benchmark"]].setdefault(hit["item"], [])
                matched.append({"row": problem["id"], "segment": hit["segment"], "rule": hit["rule"],
                                "score": hit["score"]})
    summary: dict[str, Any] = dict(total)
    if n is not None:
        summary["requested"] = n
        summary["short_by"] = max(0, n - total["kept"])
    summary["by_source"] = by_source
    summary["contamination"] = {
        "benchmarks": {name: len(items) for name, items in benchmarks.items()},
        "contaminated_rows": total["dropped"]["contaminated"],
        "rows_dropped": rows_dropped,
        "items_hit": {name: len(hits) for name, hits in listing.items()},
        "by_item": listing,
    }
    summary["drops"] = drops
    return summary


def write_cleaning_report(summary: Mapping[str, Any], path: str) -> None:
    """Write the cleaning summary as JSON, atomically (a reader never sees half a report)."""
    write_text(path, json.dumps(summary, indent=1, sort_keys=False) + "\n")


def prepare_problems(
    source: ProblemSourceConfig,
    domain: str,
    benchmarks: Mapping[str, Sequence[Problem]],
    *,
    cache_dir: str | None = None,
    report_path: str | None = None,
    reference_checker: Callable[[str, str], Any] | None = None,
    decontamination: DecontaminationSettings | None = None,
    near_dup_threshold: float = 0.8,
    workers: int = 2,
) -> tuple[list[Problem], dict[str, Any]]:
    """Read a source, clean its pool and keep `source.n` problems: the whole chain, one summary.

    The summary's `sources[label]` joins the reader's counts (rows scanned, filtered out by field filters, invalid
    rows by reason, pool size) to the cleaning counts. `short_by` > 0 means the pool ran out: raise `oversample`.
    """
    loaded = read_source(source, domain, cache_dir=cache_dir)
    references = loaded.references if source.filters.reference_must_pass else {}
    instruction = source.instruction
    phrases = tuple(DEFAULT_IGNORE_PHRASES) + ((instruction,) if instruction else ())
    kept, summary = clean_problems(
        loaded.problems,
        benchmarks,
        decontamination=decontamination,
        near_dup_threshold=near_dup_threshold,
        reference_checker=reference_checker,
        references=references,
        check_answers=source.filters.answer_parseable and domain == "math",
        n=source.n,
        workers=workers,
        ignore_phrases=phrases,
    )
    stats = loaded.stats
    summary["sources"] = {
        loaded.label: {
            "source": loaded.source,
            "license": source.license,
            "rows_scanned": stats.get("rows_read", 0),
            "filtered_out": stats.get("filtered_out", 0),
            "invalid": stats.get("invalid", {}),
            "invalid_examples": stats.get("invalid_examples", {}),
            "pool": stats.get("pool", len(loaded.problems)),
            "from_cache": stats.get("cached"),
            "kept": summary["kept"],
            "dropped": summary["dropped"],
            "unused": summary["unused"],
        }
    }
    if report_path:
        write_cleaning_report(summary, report_path)
    return kept, summary
