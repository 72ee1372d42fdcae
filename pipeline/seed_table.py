"""Average several runs' reports/<task>/compare.json into one Markdown table with the spread across seeds.

Usage: python -m pipeline.seed_table --task NAME RUN_DIR [RUN_DIR ...]

Each RUN_DIR (a sweep job folder) contains reports/<task>/compare.json of one seed. The table lists, per
model, the mean and sample standard deviation of test macro-F1 and accuracy,
the retention of the teacher's macro-F1, and the median over runs of size
and batch-1 latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import setup_logging

log = logging.getLogger(__name__)

COLUMNS = ["test/macro_f1", "test/accuracy", "retention/macro_f1", "size/params", "size/bytes", "latency/b1_p50_ms"]


def load_runs(run_dirs: list[Path], task: str) -> pd.DataFrame:
    """Return one row per (run, model) with the figures of COLUMNS that the run reports for `task`."""
    rows = []
    for run_dir in run_dirs:
        file = run_dir / "reports" / task / "compare.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found: run the compare stage in {run_dir} first.")
        for model, figures in json.loads(file.read_text()).items():
            rows.append({"run": str(run_dir), "model": model} | {key: figures.get(key, np.nan) for key in COLUMNS})
    return pd.DataFrame(rows)


def seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby("model", sort=False)
    table = pd.DataFrame({
        "runs": grouped.size(),
        "macro_f1_mean": grouped["test/macro_f1"].mean(),
        "macro_f1_std": grouped["test/macro_f1"].std(ddof=1),
        "accuracy_mean": grouped["test/accuracy"].mean(),
        "retention_mean": grouped["retention/macro_f1"].mean(),
        "params": grouped["size/params"].median(),
        "megabytes": grouped["size/bytes"].median() / 1e6,
        "b1_p50_ms": grouped["latency/b1_p50_ms"].median(),
    })
    return table.sort_values("macro_f1_mean", ascending=False)


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| model | runs | test macro-F1 (mean ± sd) | accuracy | retention | parameters | MB | batch-1 p50 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model, row in table.iterrows():
        spread = "" if np.isnan(row["macro_f1_std"]) else f" ± {row['macro_f1_std']:.3f}"
        retention = "" if np.isnan(row["retention_mean"]) else f"{row['retention_mean']:.1%}"
        params = "" if np.isnan(row["params"]) else f"{row['params'] / 1e6:.2f} M"
        megabytes = "" if np.isnan(row["megabytes"]) else f"{row['megabytes']:.1f}"
        latency = "" if np.isnan(row["b1_p50_ms"]) else f"{row['b1_p50_ms']:.2f}"
        lines.append(f"| {model} | {int(row['runs'])} | {row['macro_f1_mean']:.3f}{spread} | "
                     f"{row['accuracy_mean']:.3f} | {retention} | {params} | {megabytes} | {latency} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.seed_table", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="key under `tasks`, e.g. gl_account")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="folders that each contain reports/<task>/compare.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    table = seed_table(load_runs(args.run_dirs, args.task))
    sys.stdout.write(to_markdown(table))


if __name__ == "__main__":
    main()
