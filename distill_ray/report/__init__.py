"""The study's report, from an experiment directory (finished or still running): Markdown tables, PNG curves, CSV/JSON.

    distill-ray report runs/local            # writes runs/local/report.md, curves-*.png, results.csv, results.json
    from distill_ray.report import write_report, load_experiment, summary_rows

Per student, the seed study's tables (experiment 16/02), generated: per trial `Step | Samples | MATH-500 | MBPP+` (with
MBPP base-tests-only, train loss and the share of responses cut at max_new_tokens) and a Base row; the summary
`Training Data | Best MATH-500 | MBPP+ at best MATH | Best MBPP+ | MATH at best MBPP` with a Base row and the honest
validation-half picks beside; `Data Source | Best MATH-500 | MBPP+ at best` per domain; the deltas the seed's takeaways
quote. Differences are paired over items (exact McNemar test, Newcombe's paired interval), for each checkpoint vs
base, vs the previous checkpoint, and teacher vs teacher at the same step and at each side's best. The report reads
only files (`trials/*/results.jsonl`, `trials/*/eval/step-*/`, `base/*/`, `traces/*/*/done.json`); no Ray or Tune.

Modules: `data` (reading and checking files; benchmark names), `analysis` (best, validation split, paired
comparisons), `tables` (the seed's tables), `markdown` (the rest, and `write_report`), `plots`.

Not guaranteed: the seed-style "best" columns are optimistic by construction (the report says so and prints the
validation-half pick next to them); benchmarks other than one math and one code benchmark get columns but no
summary placement.
"""

from distill_ray.report.analysis import summary_rows
from distill_ray.report.data import load_experiment
from distill_ray.report.markdown import write_report

__all__ = ["load_experiment", "summary_rows", "write_report"]
