"""The decontamination audit as report lines: what each domain's pool lost to which benchmark, by which rule.

What it does
  `contamination_section(audits)` takes each domain's audit (the `contamination.json` written by
  `clean.prepare_problems`; the report reads them from the experiment) and returns Markdown lines: the settings
  the rules ran with, one row per (domain, benchmark) with items, items hit and pool rows dropped, and the
  benchmark items hit with the pool rows that matched them, their rule and score (the first `max_items` per domain;
  the JSON file has all).

How to run it
  lines = contamination_section({"math": audit})   # [] when no domain has an audit yet

What it does not guarantee
  It shows what the audit recorded; an experiment prepared before the audit existed shows no section.
"""

from __future__ import annotations

import json
from typing import Any


def _settings_line(settings: dict[str, Any]) -> str:
    return (
        f"Rules (numbers masked): word {settings['ngram']}-gram coverage >= {settings['ngram_coverage']}; "
        f"one-token edit of items of {settings['edit_min_tokens']} to {settings['edit_max_tokens']} tokens; "
        f"character {settings['char_ngram']}-gram Jaccard >= {settings['similarity']}."
    )


def contamination_section(audits: dict[str, dict[str, Any]], max_items: int = 20) -> list[str]:
    """Markdown lines of the decontamination audits ({domain: audit}, shown in domain order); [] when there is none."""
    audits = dict(sorted(audits.items()))
    if not audits:
        return []
    lines = ["## Decontamination", ""]
    settings = {d: a.get("contamination", {}).get("settings") for d, a in audits.items()}
    shown = {json.dumps(s, sort_keys=True) for s in settings.values() if s}
    for text in sorted(shown):
        lines += [_settings_line(json.loads(text)), ""]
    lines += ["| Domain | Benchmark | Items | Items hit | Pool rows dropped |", "| --- | --- | ---: | ---: | ---: |"]
    for domain, audit in audits.items():
        info = audit.get("contamination", {})
        for bench, size in info.get("benchmarks", {}).items():
            hit = info.get("items_hit", {}).get(bench, 0)
            dropped = info.get("rows_dropped", {}).get(bench, 0)
            lines.append(f"| {domain} | {bench} | {size} | {hit} | {dropped} |")
    lines.append("")
    for domain, audit in audits.items():
        by_item = audit.get("contamination", {}).get("by_item", {})
        entries = [(bench, item, hits) for bench, items in by_item.items() for item, hits in items.items()]
        if not entries:
            continue
        lines += [f"Items hit by the {domain} pool (pool row: rule, score (item segment)):", ""]
        for bench, item, hits in entries[:max_items]:
            matched = "; ".join(f"{h['row']}: {h['rule']} {h['score']:.2f} ({h['segment']})" for h in hits[:5])
            more = f"; and {len(hits) - 5} more" if len(hits) > 5 else ""
            lines.append(f"- {bench} {item}: {matched}{more}")
        if len(entries) > max_items:
            lines.append(f"- ... {len(entries) - max_items} more items in problems/{domain}/contamination.json")
        lines.append("")
    return lines
