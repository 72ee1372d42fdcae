"""Print each task's compare.json and cascade.json as Markdown tables for docs/results.md.

Usage: python scripts/results_table.py [--summary] [reports_dir]

Every folder of reports_dir (default reports/) with a compare.json is one task.
With --summary, one table with a row per task and model and the main columns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [("test/macro_f1", "macro-F1", "{:.3f}"), ("test/accuracy", "accuracy", "{:.3f}"),
           ("retention/macro_f1", "retention", "{:.1%}"), ("size/params", "params", "{:,.0f}"),
           ("size/bytes", "MB on disk", "{:.2f}"), ("latency/b1_p50_ms", "b1 p50 ms", "{:.3f}"),
           ("latency/b1_p95_ms", "b1 p95 ms", "{:.3f}"), ("latency/tokenize_p50_ms", "tokenize p50 ms", "{:.3f}"),
           ("throughput/b64_per_s", "b64 records/s", "{:,.0f}"), ("speedup/b1_p50", "speed-up b1", "{:.1f}x")]


def cell(figures: dict, key: str, template: str) -> str:
    if key not in figures:
        return "n/a"
    value = figures[key] / 1e6 if key == "size/bytes" else figures[key]
    return template.format(value)


def print_task(reports: Path) -> None:
    metrics = json.loads((reports / "compare.json").read_text())
    print(f"\n### {reports.name}\n")
    print("| model | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 1) + "|")
    for model, figures in metrics.items():
        print(f"| {model} | " + " | ".join(cell(figures, key, template) for key, _, template in COLUMNS) + " |")

    cascade_file = reports / "cascade.json"
    if cascade_file.is_file():
        cascade = json.loads(cascade_file.read_text())
        print(f"\nCascade: {cascade['student']} answers, the teacher takes records below the threshold.\n")
        print("| threshold | macro-F1 | accuracy | deferred | mean b1 latency ms |")
        print("| --- | --- | --- | --- | --- |")
        for row in cascade["thresholds"]:
            print(f"| {row['threshold']:g} | {row['macro_f1']:.3f} | {row['accuracy']:.3f} | "
                  f"{row['deferral_share']:.1%} | {row['mean_latency_ms']:.3f} |")


SUMMARY = [("test/macro_f1", "macro-F1", "{:.3f}"), ("test/accuracy", "accuracy", "{:.3f}"),
           ("retention/macro_f1", "retention", "{:.1%}"), ("size/bytes", "MB on disk", "{:.2f}"),
           ("latency/b1_p50_ms", "b1 p50 ms", "{:.3f}")]


def print_summary(tasks: list[Path]) -> None:
    print("| task | model | " + " | ".join(title for _, title, _ in SUMMARY) + " |")
    print("| --- " * (len(SUMMARY) + 2) + "|")
    for reports in tasks:
        for model, figures in json.loads((reports / "compare.json").read_text()).items():
            cells = " | ".join(cell(figures, key, template) for key, _, template in SUMMARY)
            print(f"| {reports.name} | {model} | {cells} |")


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if argument != "--summary"]
    root = Path(arguments[0] if arguments else "reports")
    tasks = sorted(file.parent for file in root.glob("*/compare.json"))
    if not tasks:
        sys.exit(f"No <task>/compare.json under {root}: run `dvc repro` first.")
    if "--summary" in sys.argv[1:]:
        print_summary(tasks)
        return
    for reports in tasks:
        print_task(reports)


if __name__ == "__main__":
    main()
