"""How `distill-ray status` and the sweep print distill_ray.status.read_status: progress bars on a terminal (rich),
plain lines in a job log, and a thread that prints the view at a steady interval while a sweep runs.

    print_status(read_status("runs/local"))                      # bars on a TTY, lines otherwise
    with StatusPrinter("runs/local", interval_s=30): run(...)    # the sweep's periodic view (plain lines)

Not guaranteed: the plain lines' wording is for people, not parsers (`distill-ray status --json` is for programs);
a StatusPrinter that fails to read the directory prints the error once per interval and keeps going.
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
from typing import IO, Any


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _clock(unix: float | None) -> str:
    return _dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S") if unix else "?"


def _dollars(row: dict) -> str:
    spent = row["cost_usd"] + row["spent_before_usd"]
    cap = f" of ${row['max_cost_usd']:.2f}" if row.get("max_cost_usd") is not None else ""
    return f"${spent:.4f}{cap}"


def _scores(scores: dict[str, float]) -> str:
    return " ".join(f"{b} {a:.1%}" for b, a in sorted(scores.items())) or "-"


def status_lines(status: dict[str, Any]) -> list[str]:
    """The view as plain lines (job logs, pipes, the sweep's periodic print)."""
    lines = [f"{status['name']}: " + " | ".join(f"{k} {v}" for k, v in status["stages"].items())]
    for t in status["teachers"]:
        rows = f"{t['rows_done']}/{t['rows_total'] if t['rows_total'] is not None else '?'}"
        rate = f"{t['rate_rows_s']:.1f} rows/s" if t["rate_rows_s"] else "-"
        lines.append(f"  teacher {t['teacher']}/{t['domain']}: generate {t['generate']}, verify {t['verify']}; "
                     f"rows {rows}, failures {t['failures']}, {_dollars(t)}, {rate}, "
                     f"left {_duration(t['seconds_left'])}")
    for t in status["trials"]:
        scored = f"step {t['last_scored_step']}: {_scores(t['scores'])}" if t["last_scored_step"] is not None else "-"
        lines.append(f"  trial {t['trial']}: {t['state']}, step {t['step']}/{t['steps']}, "
                     f"left {_duration(t['seconds_left'])}; last scored {scored}")
    for student, pool in status["pools"].items():
        base = status["base"].get(student)
        lines.append(f"  pool {student}: {pool['queued']} queued; base {_scores(base) if base else 'not scored'}")
    label = "finished" if status["finished"] else "estimated end"
    lines.append(f"  {label}: {_clock(status['estimated_end'])}")
    if status.get("profile"):
        lines.append("  time: " + ", ".join(f"{r['phase']} {r['seconds']:.0f} s" for r in status["profile"]))
    return lines


def print_status(status: dict[str, Any], stream: IO[str] | None = None, bars: bool | None = None,
                 width: int | None = None) -> None:
    """Progress bars (rich) when `stream` is a terminal (or `bars=True`), else status_lines. `width`: the bars'
    console width (default: the terminal's)."""
    stream = stream or sys.stdout
    if bars is None:
        bars = stream.isatty()
    if not bars:
        stream.write("\n".join(status_lines(status)) + "\n")
        stream.flush()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = Console(file=stream, width=width)
    console.print(f"[bold]{status['name']}[/bold]  " + "  ".join(f"{k}: {v}" for k, v in status["stages"].items()))
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
                        TextColumn("{task.fields[info]}"), console=console, auto_refresh=False)
    for t in status["teachers"]:
        progress.add_task(f"{t['teacher']}/{t['domain']}", total=t["rows_total"] or None, completed=t["rows_done"],
                          info=f"left {_duration(t['seconds_left'])}  {_dollars(t)}  {t['failures']} failed")
    for t in status["trials"]:
        progress.add_task(t["trial"], total=t["steps"], completed=t["step"],
                          info=f"left {_duration(t['seconds_left'])}  scored "
                               + (f"step {t['last_scored_step']}: {_scores(t['scores'])}"
                                  if t["last_scored_step"] is not None else "-"))
    console.print(progress.get_renderable())
    for line in status_lines(status)[1 + len(status["teachers"]) + len(status["trials"]):]:
        console.print(line.strip(), highlight=False)


class StatusPrinter:
    """A daemon thread printing the experiment's status lines every `interval_s` until stopped (a context manager)."""

    def __init__(self, exp_dir: str, interval_s: float, stream: IO[str] | None = None) -> None:
        self.exp_dir, self.interval_s, self.stream = exp_dir, interval_s, stream
        self.printed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-printer", daemon=True)

    def _run(self) -> None:
        from distill_ray.status import read_status

        while not self._stop.wait(self.interval_s):
            stream = self.stream or sys.stdout
            try:
                print_status(read_status(self.exp_dir), stream, bars=False)
            except Exception as exc:  # noqa: BLE001 - a view must never stop the sweep it watches
                print(f"[status] cannot read {self.exp_dir}: {exc}", file=stream, flush=True)
            self.printed += 1

    def __enter__(self) -> StatusPrinter:
        if self.interval_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
