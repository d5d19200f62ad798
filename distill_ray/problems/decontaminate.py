"""Decontamination: which pool rows are copies or near copies of benchmark items, by which rule and score.

What it does
  Every text (pool row and benchmark item) is normalised first: the instruction and signature sentences the project
  appends are removed; NFKC, lower case; LaTeX spellings unified (\\dfrac, \\tfrac, \\cfrac -> \\frac; \\dbinom,
  \\tbinom -> \\binom; \\le -> \\leq ...), spacing commands and \\left/\\right dropped; identifiers split at "_";
  every run of numbers becomes one token "#" and every one-letter word the token "v", so that a template with new
  constants or renamed single-letter variables normalises to the same token list.
  A benchmark item is one segment (math) or two (code: the task sentence, and the visible assert, which carries the
  function signature). A pool row is contaminated by a segment when any rule fires:
    ngram       at least `ngram_coverage` of the segment's word n-grams (n = `ngram`, 8 by default) occur in the
                row, or that share of the row's n-grams occur in the segment (a copied part of an item); a
                segment shorter than n tokens must be whole sentences of the row
    edit        the row has the segment's length (`edit_min_tokens` to `edit_max_tokens` tokens) and differs from it
                in one token: a one-word edit of a short item, too short for n-grams and characters to notice
    similarity  the Jaccard similarity of the character `char_ngram`-gram sets of the two normalised texts is at
                least `similarity`; computed exactly against every benchmark item (an inverted index of shingles
                and one bincount per row), so that reordered clauses and scattered edits still match
  Benchmark items from a declared template family (the built-in problems, whose training and benchmark splits are
  one template split by parameters) are matched against rows of the same family only exactly, numbers kept: their
  members share the template by construction, and only the same parameters would be the same problem.

How to run it
  index = ContaminationIndex({"math500": load_math500(path)}, DecontaminationSettings())
  hits = index.matches(problem)       # [Hit(benchmark, item, segment, rule, score), ...]

What it does not guarantee
  Paraphrases that change most of the wording, translations into another language, and problems that keep the
  wording but change the task are not caught; a fresh problem that is, after number masking, the same text as a
  benchmark item is dropped (it is the same template). Scores are exact and deterministic for a given input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from distill_ray.problems.schema import DEFAULT_CODE_INSTRUCTION, DEFAULT_MATH_INSTRUCTION
from distill_ray.records import Problem

DEFAULT_IGNORE_PHRASES = (DEFAULT_MATH_INSTRUCTION, DEFAULT_CODE_INSTRUCTION)
# Sentences rows.code_requirement writes; removed like the instructions so that two problems never match through
# them.
REQUIREMENT_RE = re.compile(
    r"Your code must define (?:the function `[^`]*`|a function named `[^`]*`|.*?), which the tests (?:call|use)\."
    r"|Your program must read its input from standard input and print the answer to standard output\.",
)
# Sources whose training and benchmark splits are one template family split by parameters (builtin_problems.py).
TEMPLATE_FAMILIES = ("builtin:math", "builtin:code")

_LATEX_SPELLINGS = [
    (re.compile(r"\\[dtc]frac(?![a-z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![a-z])"), r"\\binom"),
    (re.compile(r"\\(?:le|leqslant)(?![a-z])"), r"\\leq"),
    (re.compile(r"\\(?:ge|geqslant)(?![a-z])"), r"\\geq"),
    (re.compile(r"\\(?:ne)(?![a-z])"), r"\\neq"),
    (re.compile(r"\\(?:textbf|textit|mathrm|mathbf|text|mbox|operatorname)(?![a-z])"), " "),
    (re.compile(r"\\(?:left|right|bigl|bigr|big|displaystyle|quad|qquad)(?![a-z])"), " "),
    (re.compile(r"\\[,;:! ]|~"), " "),
]
_TOKEN_RE = re.compile(r"\\[a-z]+|[^\W\d_]+|\d+(?:[.,]\d+)*|[.?!](?=\s|$)|[+\-*/=<>^|]")
_NUMBER = "#"
_LETTER = "v"
_END = "."  # a sentence end: lets a short item match only whole sentences of a row


def normalise_tokens(
    text: str, ignore_phrases: Sequence[str] = DEFAULT_IGNORE_PHRASES, *, mask: bool = True
) -> list[str]:
    """The comparison tokens of a text: boilerplate removed, NFKC, lower case, LaTeX unified, numbers masked."""
    text = REQUIREMENT_RE.sub(" ", text)
    for phrase in ignore_phrases:
        if phrase:
            text = text.replace(phrase, " ")
    text = unicodedata.normalize("NFKC", text).lower()
    for pattern, replacement in _LATEX_SPELLINGS:
        text = pattern.sub(replacement, text)
    out: list[str] = []
    for token in _TOKEN_RE.findall(text):
        if token in (".", "?", "!"):
            token = _END
            if not out or out[-1] == _END:
                continue
        elif mask:
            if token[0].isdigit():
                token = _NUMBER
                if out and out[-1] == _NUMBER:
                    continue  # a list of numbers is one slot of the template
            elif len(token) == 1 and token.isalpha():
                token = _LETTER
        out.append(token)
    if out and out[-1] == _END:
        out.pop()
    return out


def item_segments(item: Problem, ignore_phrases: Sequence[str] = DEFAULT_IGNORE_PHRASES) -> list[tuple[str, str]]:
    """(segment name, text) of a benchmark item: the whole text for math; task sentence and visible assert for code."""
    if item["domain"] != "code":
        return [("problem", item["prompt"])]
    lines = item["prompt"].splitlines()
    asserts = [line for line in lines if line.lstrip().startswith("assert ")]
    task = [line for line in lines if not line.lstrip().startswith("assert ")]
    segments = [("task", "\n".join(task))]
    if asserts:
        segments.append(("assert", "\n".join(asserts)))
    return segments


@dataclass(frozen=True)
class DecontaminationSettings:
    """The rules' parameters (the sweep file's `decontamination:` section; see config.DecontaminationConfig)."""

    ngram: int = 8  # word n-gram length of the ngram rule
    ngram_coverage: float = 0.6  # share of a segment's n-grams a row must contain
    similarity: float = 0.65  # character n-gram Jaccard threshold
    char_ngram: int = 5
    edit_min_tokens: int = 3  # the edit rule applies to segments of this many tokens ...
    edit_max_tokens: int = 16  # ... up to this many

    def __post_init__(self) -> None:
        if min(self.ngram, self.char_ngram, self.edit_min_tokens) < 1:
            raise ValueError("ngram, char_ngram and edit_min_tokens must be at least 1")
        if self.edit_max_tokens < self.edit_min_tokens:
            raise ValueError("edit_max_tokens must be at least edit_min_tokens")
        if not (0.0 < self.ngram_coverage <= 1.0 and 0.0 < self.similarity <= 1.0):
            raise ValueError("ngram_coverage and similarity must be in (0, 1]")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """One rule firing: pool row vs one segment of one benchmark item."""

    benchmark: str
    item: str
    segment: str
    rule: str  # "ngram", "similarity" or "exact" (template family members)
    score: float


@dataclass
class _Segment:
    benchmark: str
    item: str
    name: str
    family: str  # the item's template family, or ""
    tokens: list[str]
    n_grams: int  # distinct n-grams of the segment (0: short segment, matched whole)
    n_shingles: int


def _grams(words: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _shingles(words: Sequence[str], n: int) -> set[str]:
    text = " ".join(words)
    if len(text) <= n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


class ContaminationIndex:
    """Every benchmark segment, indexed for each rule; `matches(problem)` lists the hits of one pool row."""

    def __init__(
        self,
        benchmarks: Mapping[str, Sequence[Problem]],
        settings: DecontaminationSettings | None = None,
        ignore_phrases: Sequence[str] = DEFAULT_IGNORE_PHRASES,
        template_families: Sequence[str] = TEMPLATE_FAMILIES,
    ):
        self.settings = settings or DecontaminationSettings()
        self.ignore_phrases = tuple(ignore_phrases)
        self.template_families = tuple(template_families)
        self.segments: list[_Segment] = []
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.whole: dict[int, dict[tuple[str, ...], list[int]]] = {}  # length -> short segment -> segment ids
        self.edits: dict[tuple[str, ...], list[int]] = {}  # segment with one token wildcarded -> segment ids
        self.exact: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (family, unmasked text) -> items
        vocab: dict[str, int] = {}
        postings: list[list[int]] = []
        n, c = self.settings.ngram, self.settings.char_ngram
        for bench, items in benchmarks.items():
            for item in items:
                family = item.get("source", "") if item.get("source") in self.template_families else ""
                if family:
                    text = " ".join(normalise_tokens(item["prompt"], self.ignore_phrases, mask=False))
                    self.exact.setdefault((family, text), []).append((bench, item["id"]))
                for name, text in item_segments(item, self.ignore_phrases):
                    words = normalise_tokens(text, self.ignore_phrases)
                    if not words:
                        continue
                    sid = len(self.segments)
                    grams = set(_grams(words, n))
                    for gram in grams:
                        self.grams.setdefault(gram, []).append(sid)
                    if not grams:
                        self.whole.setdefault(len(words), {}).setdefault(tuple(words), []).append(sid)
                    if self.settings.edit_min_tokens <= len(words) <= self.settings.edit_max_tokens:
                        for key in _wildcards(words):
                            self.edits.setdefault(key, []).append(sid)
                    shingles = _shingles(words, c)
                    for shingle in shingles:
                        j = vocab.setdefault(shingle, len(vocab))
                        if j == len(postings):
                            postings.append([])
                        postings[j].append(sid)
                    self.segments.append(_Segment(bench, item["id"], name, family, words, len(grams), len(shingles)))
        self.vocab = vocab
        self._postings = [np.asarray(p, dtype=np.int32) for p in postings]
        self._segment_shingles = np.asarray([s.n_shingles for s in self.segments], dtype=np.float64)

    def matches(self, problem: Problem) -> list[Hit]:
        """Every item segment the row hits, with the first rule that fired (ngram, edit, similarity) and its score."""
        family = problem.get("source", "")
        exact: list[Hit] = []
        if family in self.template_families:
            text = " ".join(normalise_tokens(problem["prompt"], self.ignore_phrases, mask=False))
            exact = [Hit(bench, item, "problem", "exact", 1.0) for bench, item in self.exact.get((family, text), [])]
        else:
            family = ""
        hits = self._masked(problem, skip_family=family)
        return sorted(exact + hits, key=lambda h: (h.benchmark, h.item, h.segment))

    def _masked(self, problem: Problem, skip_family: str) -> list[Hit]:
        words = normalise_tokens(problem["prompt"], self.ignore_phrases)
        if not words or not self.segments:
            return []
        settings = self.settings
        hits: dict[int, Hit] = {}
        counts: dict[int, int] = {}
        row_grams = set(_grams(words, settings.ngram))
        for gram in row_grams:
            for sid in self.grams.get(gram, ()):
                counts[sid] = counts.get(sid, 0) + 1
        for sid, count in counts.items():
            # Either side mostly made of the other: a whole item inside a longer row, or a row that is a part of
            # an item (a copied first paragraph).
            coverage = max(count / self.segments[sid].n_grams, count / len(row_grams))
            if coverage >= settings.ngram_coverage:
                hits[sid] = self._hit(sid, "ngram", coverage)
        # A short segment counts when it is whole sentences of the row: "Simplify $\sqrt{#}$." with a sentence in
        # front is a copy, while a longer sentence that merely contains those tokens is not.
        starts = [0] + [i + 1 for i, w in enumerate(words) if w == _END]
        ends = {i for i, w in enumerate(words) if w == _END} | {len(words)}
        for length, table in self.whole.items():
            for start in starts:
                if start + length in ends:
                    for sid in table.get(tuple(words[start : start + length]), ()):
                        hits.setdefault(sid, self._hit(sid, "ngram", 1.0))
        if settings.edit_min_tokens <= len(words) <= settings.edit_max_tokens:
            for key in _wildcards(words):
                for sid in self.edits.get(key, ()):
                    hits.setdefault(sid, self._hit(sid, "edit", 1.0 - 1.0 / len(words)))
        shingles = _shingles(words, settings.char_ngram)
        ids = [self.vocab[s] for s in shingles if s in self.vocab]
        if ids:
            shared = np.bincount(
                np.concatenate([self._postings[j] for j in ids]), minlength=len(self.segments)
            ).astype(np.float64)
            jaccard = shared / (self._segment_shingles + len(shingles) - shared)
            for sid in np.flatnonzero(jaccard >= settings.similarity):
                hits.setdefault(int(sid), self._hit(int(sid), "similarity", float(jaccard[sid])))
        # Members of the row's own template family share the template by construction: exact matching only.
        return [h for sid, h in hits.items() if not skip_family or self.segments[sid].family != skip_family]

    def _hit(self, sid: int, rule: str, score: float) -> Hit:
        segment = self.segments[sid]
        return Hit(segment.benchmark, segment.item, segment.name, rule, round(score, 4))


def _wildcards(words: Sequence[str]) -> Iterable[tuple[str, ...]]:
    """The token list with each position in turn replaced by a wildcard: equal keys mean one substituted token."""
    for i in range(len(words)):
        yield (*words[:i], "\x00", *words[i + 1 :])
