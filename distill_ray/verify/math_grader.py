"""Math grader: the last `\\boxed{}` after the reasoning, compared with the gold answer, failing closed.

    from distill_ray.verify import grade_math
    grade_math("<think>...</think>\\n\\nThe answer is \\boxed{\\frac12}.", "\\frac{1}{2}")  # Verdict("pass", ...)

Rules, in order (each "fail" carries the reason in parentheses):
- The answer section is the text after the last `</think>`; an unclosed `<think>` means no answer (`no_answer`).
- Every `\\boxed{...}` / `\\fbox{...}` there is brace-matched, and the LAST one is the answer (the standard rule:
  a model that boxes an intermediate result and then corrects itself is graded on its correction). None: `no_box`
  (there is no fallback to the last number). A wrapper around the whole box (`\\textbf{}`, `\\text{}`,
  `\\mathrm{}`, ...) and a trailing period or comma inside it are dropped. The last one empty: `empty_box`. One
  listing alternatives ("3 or 5", or "3, 5" where the gold has no comma): `multiple_candidates`. Longer than
  `MAX_ANSWER_CHARS`: `answer_too_long`. A numeric power tower or the factorial of a huge number:
  `pathological_answer`, at once. With `strict_boxes=True` (a verifier option for training data, off by default:
  `domains.<name>.verifier_options.strict_boxes`) several boxes with different contents fail (`multiple_boxes`).
- Exact path (`exact_verdict`, run in the caller: regular expressions and `Fraction` on at most `MAX_ANSWER_CHARS`
  characters, no sympy, so it cannot hang): the same text as the gold (whitespace that LaTeX ignores aside) passes;
  plain numbers on both sides (integers, decimals, `\\frac{a}{b}`, `\\frac12`, `a/b`, after removing `$`, units in
  `\\text{}`, degrees, percent, thousands separators and a leading `x =`) are compared as exact rationals, so neither
  a rounded decimal nor a near-equal tiny value passes; answers made of words (`\\text{Evelyn}`, `Evelyn`,
  `\\text{(C)}`) compare as words, case aside. Most MATH answers are decided here without a worker.
- A decimal answer to a gold answer that is not a plain number (`\\sqrt2`, `\\pi`) fails (`approximate_answer`)
  unless the gold is exactly that rational: MATH answers are exact.
- Everything else goes to math-verify (gold first; it is not symmetric) on the box contents only, then a numeric second
  opinion at 1e-9 relative tolerance rejects math-verify's rounding-based matches of different values: it compares
  the numbers inside tuples, intervals, sets, matrices and `x = ...` one by one, and expressions with letters at the
  same fixed point for both sides, so `(1.414214, 1)` does not pass for `(\\sqrt2, 1)`.
- Everything past the exact path runs in a pool of worker processes with a hard wall-clock limit per item (default
  1.5 s), enforced by the caller killing the worker, so it works from any thread (math-verify's own timeouts use
  signals). A timed-out answer fails (`grader_timeout`); a worker that dies for another reason gives an "error"
  verdict, which callers retry. Workers warm up before they report ready (math-verify's ANTLR parser builds its
  prediction tables lazily: a cold worker takes several times longer on its first intervals, tuples and equations,
  which on a loaded node could cost a spurious timeout), and keep parsed gold answers (the same gold is graded many
  times). Requests are not batched: a round trip costs about 0.1 ms, against 5-50 ms for a math-verify comparison.

Not guaranteed: semantic equivalence beyond what math-verify and sympy decide (e.g. two differently factored
polynomials may be judged unequal), and answers whose meaning depends on the question (units conversions).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from distill_ray.verify.verdict import Verdict, errored, failed, passed

MAX_ANSWER_CHARS = 1000
DEFAULT_TIMEOUT_S = 1.5

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


def answer_section(response: str) -> str | None:
    """The text after the reasoning; None when the reasoning never closed (a truncated trace has no answer)."""
    end = response.rfind("</think>")
    if end >= 0:
        return response[end + len("</think>") :]
    if "<think>" in response:
        return None
    return response


def find_boxes(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` in order, brace-matched; `\\boxed 5` (no braces) takes one token."""
    boxes: list[str] = []
    for match in _BOX_RE.finditer(text):
        i = match.end()
        if i < len(text) and text[i] == "{":
            j = _closing_brace(text, i)
            if j < 0:
                continue  # unbalanced: not a box we can read
            boxes.append(text[i + 1 : j])
        elif match.group(0).endswith((" ", "\t")) or (i < len(text) and text[i].isalnum()):
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                boxes.append(token.group(0).rstrip(".,"))
    return boxes


_CANDIDATES_RE = re.compile(r"(\\text\{\s*or\s*\}|\\textrm\{\s*or\s*\}|\\mbox\{\s*or\s*\}|\bor\b|\\lor\b)")
# A box made of one text/bold/roman wrapper: the wrapper is presentation, the contents are the answer.
_WRAPPER_RE = re.compile(r"^\\(?:text|textbf|textit|textrm|textsf|mathrm|mathbf|mathit|mathsf|mbox|boldsymbol)\s*\{")


def unwrap(answer: str) -> str:
    """The answer without a wrapper around all of it (`\\textbf{Evelyn}` -> `Evelyn`), repeatedly, and without a
    trailing period or comma (`27.` -> `27`; a LaTeX space `\\,` at the end goes too)."""
    s = answer.strip()
    while True:
        before = s
        s = s.strip().strip("$").strip()
        while s.endswith(("\\,", "\\;", "\\!", "\\ ")):
            s = s[:-2].rstrip()
        if s.endswith((".", ",")) and not s.endswith(("\\.", "\\,")):
            s = s[:-1].rstrip()
        match = _WRAPPER_RE.match(s)
        if match and s.endswith("}") and _closing_brace(s, match.end() - 1) == len(s) - 1:
            s = s[match.end() : -1].strip()
        if s == before:
            return s


def _closing_brace(s: str, start: int) -> int:
    """Index of the brace that closes the one at `start`, or -1."""
    depth, j = 0, start
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _top_level_commas(s: str) -> int:
    """Commas outside any bracket: `3, 4` has one, `(3, 4)` and `\\frac{1,2}{3}` none."""
    depth, count, j = 0, 0, 0
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2  # `\{` and `\}` are escaped braces, and `\,` a space; the brackets around them still count
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            count += 1
        j += 1
    return count


def extract_final_answer(response: str, *, strict_boxes: bool = False) -> tuple[str | None, str]:
    """(failure reason or None, the extracted answer): the last box after the reasoning, unwrapped.

    `strict_boxes` (a training-data option, off by default) also fails a response whose answer section holds several
    boxes with different contents (`multiple_boxes`), as a stricter filter for traces a student learns from."""
    section = answer_section(response)
    if section is None:
        return "no_answer", ""
    boxes = find_boxes(section)
    if not boxes:
        return "no_box", ""
    final = unwrap(boxes[-1])
    if strict_boxes and len({_squash(unwrap(b)) for b in boxes}) > 1:
        return "multiple_boxes", final
    if not _squash(final):
        return "empty_box", final
    if len(final) > MAX_ANSWER_CHARS:
        return "answer_too_long", final[:200]
    if _CANDIDATES_RE.search(final):
        return "multiple_candidates", final
    if _looks_pathological(final):
        return "pathological_answer", final
    return None, final


def hedges_against(gold: str, answer: str) -> bool:
    """An answer listing several values where the gold is one (`3, 4` for `3`); a thousands separator is no list,
    and a gold with any comma (a tuple, set or list) is left to the comparison."""
    if "," in gold.replace("{,}", "") or not _top_level_commas(answer):
        return False
    if re.search(r",\s", answer):
        return True  # `284, 285`: a thousands separator is never followed by a space
    return not _THOUSANDS_RE.match(normalize_number_text(answer))


_TOWER_RE = re.compile(r"\d+\^\{?\(?\d+\)?\^")
_BIG_FACTORIAL_RE = re.compile(r"(\d{4,}|\^\{?\d+\}?)\)?\s*!")


def _looks_pathological(answer: str) -> bool:
    """Numeric power towers and factorials of huge numbers: sympy would try to evaluate them for minutes.
    (The worker's time limit catches the rest; this only saves the wait and a worker restart.)"""
    flat = re.sub(r"\s+", "", answer)
    return bool(_TOWER_RE.search(flat) or _BIG_FACTORIAL_RE.search(flat))


def _squash(s: str) -> str:
    return re.sub(r"\s+|\\[,;:! ]|\\quad|\\qquad", "", s)


# ---------------------------------------------------------------- exact numbers

_UNIT_TEXT_RE = re.compile(r"\\(?:text|textrm|mbox|mathrm)\{[^{}]*\}")
_ASSIGN_RE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?!=)")
_INT_RE = re.compile(r"^[+-]?\d+$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DEC_RE = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac\{\s*([+-]?\d+)\s*\}\{\s*([+-]?\d+)\s*\}$")
_FRAC_SHORT_RE = re.compile(r"^([+-]?)\\frac(\d)(\d)$")
_SLASH_RE = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")


_SPACE_RE = re.compile(r"\s+")
_DROP_SPACE_RE = re.compile(r" (?![A-Za-z])|(?<![A-Za-z]) ")


def canonical_text(s: str) -> str:
    """The answer with the whitespace LaTeX ignores removed (a space between two letters ends a control word or
    separates words in `\\text{}`, so it stays), and surrounding `$` dropped."""
    s = _SPACE_RE.sub(" ", s.strip().strip("$").strip())
    return _DROP_SPACE_RE.sub("", s)


def normalize_number_text(s: str) -> str:
    """Strip the decorations MATH answers carry around a plain number; the result may still be non-numeric."""
    s = s.strip().strip("$").strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\left|\\right|\\displaystyle", "", s)
    s = re.sub(r"\\[,;:! ]|~", "", s)
    s = s.replace("{,}", ",")
    s = s.replace("\\$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", "", s)
    s = _ASSIGN_RE.sub("", s, count=1)
    # units written as text after a number ("10\text{ cm}") go; a text-only answer stays text
    stripped = _UNIT_TEXT_RE.sub("", s).strip()
    if stripped and re.search(r"\d", stripped):
        s = stripped
    s = s.strip().rstrip(".").strip()
    if s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1].strip()
    return s.replace(" ", "")


def as_rational(s: str) -> Fraction | None:
    """The exact value of a plain number written in one of the usual forms, else None."""
    t = normalize_number_text(s)
    if len(t) > 60:
        return None
    if _THOUSANDS_RE.match(t):
        t = t.replace(",", "")
    if _INT_RE.match(t) or _DEC_RE.match(t):
        return Fraction(t)
    m = _FRAC_RE.match(t) or _FRAC_SHORT_RE.match(t)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        value = Fraction(num, den)
        return -value if m.group(1) == "-" else value
    m = _SLASH_RE.match(t)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


def exact_verdict(gold: str, answer: str) -> tuple[bool, str] | None:
    """(equal, reason) when the exact path decides, else None (math-verify must). Bounded work: no time limit needed."""
    if len(gold) > MAX_ANSWER_CHARS or len(answer) > MAX_ANSWER_CHARS:
        return None
    if canonical_text(gold) == canonical_text(answer):
        return True, "correct"
    if canonical_text(unwrap(gold)) == canonical_text(unwrap(answer)):
        return True, "correct"
    plain_gold = _plain_words(gold)
    plain_answer = _plain_words(answer, letter=plain_gold is not None and len(plain_gold) == 1)
    if plain_gold is not None and plain_answer is not None:
        return (True, "correct") if plain_gold == plain_answer else (False, "wrong_answer")
    gold_value, answer_value = as_rational(gold), as_rational(answer)
    if gold_value is not None and answer_value is not None:
        return (True, "correct") if gold_value == answer_value else (False, "wrong_answer")
    return None


_WORDS_RE = re.compile(r"^\(?([A-Za-z][A-Za-z ]*)\)?$")


def _plain_words(s: str, *, letter: bool = False) -> str | None:
    """A text answer made of words only (`\text{Evelyn}`, `Evelyn`, `\text{(C)}`), lower-cased with spaces squashed
    and choice parentheses dropped; None for anything mathematical (a single letter outside a choice stays maths)."""
    t = unwrap(s)
    match = _WORDS_RE.match(t)
    if not match:
        return None
    words = " ".join(match.group(1).split()).lower()
    if len(words) == 1 and not (letter or t.startswith("(") or s.strip().startswith("\\text")):
        return None  # `x` or `C` written bare: a variable as often as a choice
    return words


def is_decimal_literal(s: str) -> bool:
    t = normalize_number_text(s)
    if _THOUSANDS_RE.match(t):
        t = t.replace(",", "")
    return bool(_DEC_RE.match(t))


# ---------------------------------------------------------------- comparison (runs inside a worker process)

_MV_STATE: dict = {}
_GOLD_CACHE: dict[str, dict] = {}
GOLD_CACHE_SIZE = 4096

# Typical MATH answer shapes, parsed once when a worker starts so that math-verify's parser has built its prediction
# tables before the first timed request (written for this purpose, not taken from any benchmark).
WARM_UP = (
    "\\frac{\\sqrt{3}}{2}", "3 + 2\\sqrt{2}", "\\frac{3\\pi}{4}", "(1, -2)", "\\left( 2, \\frac{\\pi}{3} \\right)",
    "[-1, 4)", "(-\\infty, 2] \\cup [5, \\infty)", "\\{1, 2, 3\\}", "x^2 + 2x - 3", "y = 3x - 2", "2x + y - z = 4",
    "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\text{(B)}", "1011_2", "\\log_2 3", "1 \\pm \\sqrt{2}",
)


def _math_verify():
    if not _MV_STATE:
        import logging

        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        logging.getLogger("math_verify").setLevel(logging.CRITICAL)
        _MV_STATE.update(
            parse=parse,
            verify=verify,
            targets=(LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()),
        )
    return _MV_STATE


def _parse(latex: str) -> list:
    mv = _math_verify()
    return mv["parse"]("\\boxed{" + latex + "}", mv["targets"], parsing_timeout=None)


def _gold(gold: str) -> dict:
    """{"parsed": math-verify's parse, then "value" and "leaves" once asked for}, parsed once per worker (a bounded
    LRU: dicts keep insertion order, and a hit moves to the end). A parse that raises is not cached."""
    entry = _GOLD_CACHE.pop(gold, None)
    if entry is None:
        entry = {"parsed": _parse(gold)}
        if len(_GOLD_CACHE) >= GOLD_CACHE_SIZE:
            del _GOLD_CACHE[next(iter(_GOLD_CACHE))]
    _GOLD_CACHE[gold] = entry
    return entry


def _gold_value(entry: dict) -> complex | None:
    if "value" not in entry:
        entry["value"] = _sympy_number(entry["parsed"][0]) if entry["parsed"] else None
    return entry["value"]


def _gold_leaves(entry: dict) -> list | None:
    if "leaves" not in entry:
        entry["leaves"] = _numeric_leaves(entry["parsed"][0]) if entry["parsed"] else None
    return entry["leaves"]


def _numeric_leaves(expr, depth: int = 0) -> list | None:
    """The numbers an answer is made of, in structural order (complex, or None where not finite); None when the
    structure is not one we can align (the second opinion then stays out). Letters take fixed values, the same for
    gold and answer, so `1.414214 x` and `\\sqrt2 x` differ."""
    import sympy

    if depth > 20:
        return None
    if isinstance(expr, (tuple, list, sympy.Tuple, sympy.FiniteSet, sympy.Union, sympy.Intersection)):
        args = expr.args if isinstance(expr, sympy.Basic) else expr
        out: list = []
        for arg in args:
            leaves = _numeric_leaves(arg, depth + 1)
            if leaves is None:
                return None
            out += leaves
        if isinstance(expr, sympy.FiniteSet) and None not in out and len(out) == len(args):
            out.sort(key=lambda z: (z.real, z.imag))  # a set of numbers: align by value, not by sympy's sort key
        return out
    if isinstance(expr, sympy.Interval):
        return _numeric_leaves([expr.start, expr.end], depth + 1)
    if isinstance(expr, sympy.MatrixBase):
        return _numeric_leaves(list(expr), depth + 1)
    if isinstance(expr, sympy.Eq) and isinstance(expr.lhs, sympy.Symbol):
        return _numeric_leaves(expr.rhs, depth + 1)
    if isinstance(expr, sympy.Expr):
        symbols = sorted(expr.free_symbols, key=lambda sym: sym.name)
        if symbols:
            # an arbitrary point, the same for both sides (by name): 0.6180..., 0.7548..., ...
            expr = expr.xreplace({sym: sympy.Rational(1, 2) + sympy.sqrt(i + 2) / 10 for i, sym in enumerate(symbols)})
        return [_sympy_number(expr)]
    return None


def compare_answers(gold: str, answer: str) -> tuple[bool, str]:
    """(equal, reason) for an extracted answer against the gold answer. No time limit: call it in a worker."""
    decided = exact_verdict(gold, answer)
    if decided is not None:
        return decided
    gold_value, answer_value = as_rational(gold), as_rational(answer)
    if gold_value is None and answer_value is not None and is_decimal_literal(answer) and not is_decimal_literal(gold):
        try:
            gold_numeric = _gold_value(_gold(gold))
        except Exception:
            gold_numeric = None
        # a decimal for a symbolic gold is an approximation unless the gold happens to be that exact rational
        if (gold_numeric is None or gold_numeric.imag
                or Fraction(gold_numeric.real).limit_denominator(10**12) != answer_value):
            return False, "approximate_answer"
    gold_entry = _gold(gold)
    gold_parsed = gold_entry["parsed"]
    answer_parsed = _parse(answer)
    if not gold_parsed:
        return False, "gold_unparsable"
    if not answer_parsed:
        return False, "unparsable_answer"
    if not _math_verify()["verify"](gold_parsed, answer_parsed, timeout_seconds=None):
        return False, "wrong_answer"
    # second opinion: math-verify rounds to 6 decimals, so 1e-7 "equals" 2e-7; insist on 1e-9 relative agreement
    gold_leaves, answer_leaves = _gold_leaves(gold_entry), _numeric_leaves(answer_parsed[0])
    if gold_leaves is not None and answer_leaves is not None and len(gold_leaves) == len(answer_leaves):
        for g, a in zip(gold_leaves, answer_leaves):
            if g is not None and a is not None and abs(g - a) > 1e-9 * max(1.0, abs(g)):
                return False, "wrong_answer"
    return True, "correct"


def _sympy_number(expr) -> complex | None:
    try:
        import sympy

        if not isinstance(expr, sympy.Expr) or expr.free_symbols:
            return None
        value = complex(sympy.N(expr, 30))
    except Exception:
        return None
    if value != value or abs(value) == float("inf"):
        return None
    return value


def worker_main() -> None:
    """Loop of a grader worker process: one JSON request per stdin line, one JSON reply per stdout line."""
    import resource

    # a pathological expression may try to allocate without bound; fail it, not the node
    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the protocol
    _math_verify()
    for latex in WARM_UP:
        try:
            compare_answers(latex, latex + "+1")
        except Exception:
            pass
    _GOLD_CACHE.clear()
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            equal, reason = compare_answers(request["gold"], request["answer"])
            reply = {"equal": equal, "reason": reason}
        except MemoryError:
            reply = {"equal": False, "reason": "grader_memory"}
        except RecursionError:
            reply = {"equal": False, "reason": "unparsable_answer"}
        except Exception as exc:  # math-verify raises on malformed LaTeX; fail closed
            reply = {"equal": False, "reason": "unparsable_answer", "detail": type(exc).__name__}
        out.write(json.dumps(reply) + "\n")
        out.flush()


# ---------------------------------------------------------------- worker pool (the caller's side)


class _Worker:
    """One grader subprocess; killed and replaced when it overruns its deadline."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": root, "PYTHONHASHSEED": "0"}
        # the worker needs no secrets; an empty environment keeps API keys out of it
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from distill_ray.verify.math_grader import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        self.ready = False

    def _readline(self, deadline: float) -> bytes | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("grader worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        if not self.ready:
            line = self._readline(time.monotonic() + timeout_s)
            if line is None:
                raise TimeoutError("grader worker did not start")
            self.ready = True

    def ask(self, gold: str, answer: str, timeout_s: float) -> dict | None:
        """The reply, or None when the deadline passed (the worker is then dead)."""
        self.proc.stdin.write((json.dumps({"gold": gold, "answer": answer}) + "\n").encode())
        self.proc.stdin.flush()
        line = self._readline(time.monotonic() + timeout_s)
        if line is None:
            self.kill()
            return None
        return json.loads(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class MathGrader:
    """A pool of grader processes. Thread-safe; `grade` blocks for at most about `timeout_s` per answer."""

    def __init__(self, workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.size = workers or max(1, os.cpu_count() or 1)
        self.timeout_s = timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._all: list[_Worker] = []
        self._closed = False
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        worker = _Worker()
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def grade(self, response: str, gold: str, *, strict_boxes: bool = False) -> Verdict:
        reason, answer = extract_final_answer(response, strict_boxes=strict_boxes)
        if reason is not None:
            return failed(reason, answer)
        return self.compare(gold, answer)

    def compare(self, gold: str, answer: str) -> Verdict:
        if not str(gold).strip():
            return errored("missing_gold", answer)
        if hedges_against(str(gold), answer):
            return failed("multiple_candidates", answer)
        decided = exact_verdict(str(gold), answer)
        if decided is not None:
            return passed("correct", answer) if decided[0] else failed(decided[1], answer)
        worker = self._idle.get()
        replace = False
        try:
            worker.wait_ready()
            reply = worker.ask(str(gold), answer, self.timeout_s)
            if reply is None:
                replace = True
                return failed("grader_timeout", answer)
        except (OSError, EOFError, TimeoutError, ValueError):
            worker.kill()
            replace = True
            return errored("grader_crashed", answer)
        finally:
            if replace:
                with self._lock:
                    if worker in self._all:
                        self._all.remove(worker)
                if not self._closed:
                    self._spawn()
            else:
                self._idle.put(worker)
        if reply["equal"]:
            return passed("correct", answer)
        return failed(reply["reason"], answer)

    def grade_many(self, items: Iterable[tuple[str, str]]) -> list[Verdict]:
        """Grade (response, gold) pairs concurrently on all workers, results in input order."""
        items = list(items)
        with ThreadPoolExecutor(self.size) as pool:
            return list(pool.map(lambda item: self.grade(*item), items))

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.kill()

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHARED: dict[str, MathGrader] = {}
_SHARED_LOCK = threading.Lock()


def shared_grader() -> MathGrader:
    """The process-wide grader pool, created on first use (a Ray actor keeps its own for its lifetime)."""
    with _SHARED_LOCK:
        if "pool" not in _SHARED:
            _SHARED["pool"] = MathGrader()
            atexit.register(_SHARED["pool"].close)
        return _SHARED["pool"]


def grade_math(response: str, gold: str, *, grader: MathGrader | None = None, strict_boxes: bool = False) -> Verdict:
    """Grade one response against its gold answer (see the module docstring for the rules)."""
    reason, answer = extract_final_answer(response, strict_boxes=strict_boxes)
    if reason is not None:
        return failed(reason, answer)
    return (grader or shared_grader()).compare(gold, answer)
