"""The verdict every judge returns: pass, fail (with a reason) or error (infrastructure trouble, retried).

`Verdict` is a frozen dataclass so it can be shared between threads and compared in tests; `as_dict` gives the three
fields that `records.VerifiedTrace` adds to a trace row. Nothing here runs untrusted code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

VerdictName = Literal["pass", "fail", "error"]

# "No answer in the expected format", kept apart from wrong answers by every scorer (the sweep's evaluation and both
# `score` commands): no \boxed{}, an empty box, no python block, reasoning never closed (`no_answer`), and, only under
# the strict training option, several different boxes.
FORMAT_FAILURE_REASONS = frozenset({"no_box", "empty_box", "no_code", "no_answer", "multiple_boxes"})


@dataclass(frozen=True)
class Verdict:
    """A judge's decision: `verdict` is "pass", "fail" or "error"; `reason` a short snake_case word."""

    verdict: VerdictName
    reason: str
    extracted: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def passed(reason: str = "correct", extracted: str = "") -> Verdict:
    return Verdict("pass", reason, extracted)


def failed(reason: str, extracted: str = "") -> Verdict:
    return Verdict("fail", reason, extracted)


def errored(reason: str, extracted: str = "") -> Verdict:
    return Verdict("error", reason, extracted)
