"""Where a sweep's wall-clock time goes: named phases timed in order, printed as a table at the end of every sweep and
kept in the experiment's done.json (records.SweepDone["profile"]).

    clock = PhaseClock()
    with clock.phase("problems"):
        ...
    print(profile_table(clock.rows()))

Not guaranteed: phases are wall-clock spans of the driver; work that overlaps (evaluation beside training, the
base model's scores queued before the trials) is counted in the phase during which the driver waited for it, so a
phase says where the driver spent its time, not what each worker did. Time outside every phase is one more row,
"other".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseClock:
    """Sums the wall-clock seconds spent in named phases (a phase entered twice adds up)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - begun

    def rows(self) -> list[dict]:
        """[{"phase", "seconds", "share"}] in the order phases were first entered, then "other" and "total"."""
        total = max(1e-9, time.perf_counter() - self.started)
        rows = [{"phase": k, "seconds": round(v, 2), "share": round(v / total, 3)} for k, v in self.seconds.items()]
        other = max(0.0, total - sum(self.seconds.values()))
        rows.append({"phase": "other", "seconds": round(other, 2), "share": round(other / total, 3)})
        rows.append({"phase": "total", "seconds": round(total, 2), "share": 1.0})
        return rows


def profile_table(rows: list[dict]) -> str:
    """The profile as aligned text lines: phase, seconds, share of the total."""
    width = max(len(r["phase"]) for r in rows)
    return "\n".join(f"{r['phase']:<{width}}  {r['seconds']:>9.1f} s  {r['share']:>6.1%}" for r in rows)
