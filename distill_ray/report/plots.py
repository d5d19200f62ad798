"""Learning-curve PNGs, one per student: accuracy per step with its 95% Wilson band, the base model dashed; and for
students with replicates, the mean over seeds per step with the between-seed range as a band.

    from distill_ray.report.plots import plot_curves, plot_replicates
    plot_curves(load_experiment("runs/local"), "runs/local")      # writes runs/local/curves-<student>.png
    plot_replicates(load_experiment("runs/local"), "runs/local")  # writes runs/local/replicates-<student>.png

Not guaranteed: readable legends beyond a handful of trials per student.
"""

from __future__ import annotations

import os
from typing import Any

from distill_ray.report.analysis import trials
from distill_ray.report.data import benchmark_info
from distill_ray.report.replicates import replicate_groups, step_spread
from distill_ray.report.tables import ordered


def plot_curves(data: dict[str, Any], exp_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = ordered(data["benchmarks"])
    paths = []
    for student in sorted({r["student"] for r in data["rows"]} | set(data["base"])):
        fig, axes = plt.subplots(1, max(1, len(benches)), figsize=(5 * max(1, len(benches)), 3.6), squeeze=False)
        for ax, bench in zip(axes[0], benches, strict=False):
            for t in trials(data):
                if t["student"] != student:
                    continue
                points = [(r["step"], r[f"{bench}/accuracy"], r[f"{bench}/ci95_low"], r[f"{bench}/ci95_high"])
                          for r in t["rows"] if f"{bench}/accuracy" in r]
                if not points:
                    continue
                steps, acc, low, high = zip(*points, strict=True)
                ax.plot(steps, [100 * a for a in acc], marker="o", label=t["label"])
                ax.fill_between(steps, [100 * v for v in low], [100 * v for v in high], alpha=0.12)
            _finish_axis(ax, data, student, bench, "")
        paths.append(_save(fig, plt, os.path.join(exp_dir, f"curves-{student}.png")))
    return paths


def plot_replicates(data: dict[str, Any], exp_dir: str) -> list[str]:
    """replicates-<student>.png for each student with replicate groups: mean line, min–max band, base dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = ordered(data["benchmarks"])
    groups = replicate_groups(data)
    paths = []
    for student in sorted({g["student"] for g in groups}):
        fig, axes = plt.subplots(1, max(1, len(benches)), figsize=(5 * max(1, len(benches)), 3.6), squeeze=False)
        for ax, bench in zip(axes[0], benches, strict=False):
            for g in (g for g in groups if g["student"] == student):
                points = step_spread(g, bench)
                if not points:
                    continue
                steps = [p["step"] for p in points]
                line = ax.plot(steps, [100 * p["mean"] for p in points], marker="o",
                               label=f"{g['label']} ({len(g['seeds'])} seeds)")
                ax.fill_between(steps, [100 * p["min"] for p in points], [100 * p["max"] for p in points],
                                alpha=0.2, color=line[0].get_color())
            _finish_axis(ax, data, student, bench, ", mean and range over seeds")
        paths.append(_save(fig, plt, os.path.join(exp_dir, f"replicates-{student}.png")))
    return paths


def _finish_axis(ax: Any, data: dict[str, Any], student: str, bench: str, title_suffix: str) -> None:
    """The base model's accuracy as a dashed line, the title, the axes' labels and range, the legend."""
    base = data["base"].get(student, {}).get(bench)
    if base:
        ax.axhline(100 * base["accuracy"], color="black", linestyle="--", linewidth=1, label="base")
    ax.set_title(f"{student} — {benchmark_info(bench).display}{title_suffix}")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7)


def _save(fig: Any, plt: Any, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
