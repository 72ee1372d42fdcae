"""Write the comparison to DVC metrics and plots files and to MLflow."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from pipeline.metrics import confusion_figure, per_class_f1  # noqa: E402
from pipeline.tracking import section, start_run  # noqa: E402

log = logging.getLogger(__name__)

LIBRARIES = ("torch", "onnxruntime", "transformers", "lightning", "scikit-learn", "mlflow", "dvc")


@dataclass
class Comparison:
    """Figures, test predictions, runtime and MLflow run of every model compared."""

    labels: np.ndarray
    class_names: list[str]
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str | None] = field(default_factory=dict)

    def add(self, name: str, runtime: str, predictions: np.ndarray, figures: dict[str, float],
            run_id: str | None) -> None:
        self.figures[name] = dict(figures)
        self.predictions[name] = np.asarray(predictions)
        self.runtimes[name] = runtime
        self.run_ids[name] = run_id

    def table(self, teacher: str) -> pd.DataFrame:
        """Build one row per model; every model but the teacher also gets figures relative to it."""
        reference = self.figures[teacher]
        rows = {}
        for name, figures in self.figures.items():
            row = dict(figures)
            if name != teacher:
                row["test/teacher_agreement"] = float(np.mean(self.predictions[name] == self.predictions[teacher]))
                row["retention/macro_f1"] = row["test/macro_f1"] / reference["test/macro_f1"]
                if "latency/b1_p50_ms" in row:
                    row["speedup/b1_p50"] = reference["latency/b1_p50_ms"] / row["latency/b1_p50_ms"]
            rows[name] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.insert(0, "runtime", pd.Series(self.runtimes))
        table.index.name = "model"
        return table


def mlflow_name(model: str) -> str:
    """MLflow metric and tag names reject '@', so `bilstm@onnx` becomes `bilstm.onnx`."""
    return model.replace("@", ".")


def _finite_figures(row: pd.Series) -> dict[str, float]:
    return {key: float(value) for key, value in row.items()
            if isinstance(value, (int, float, np.floating)) and math.isfinite(value)}


def write_reports(table: pd.DataFrame, cascade: dict, reports: Path) -> None:
    """reports/compare.json (DVC metrics), reports/pareto.json (DVC plot), reports/cascade.json."""
    reports.mkdir(parents=True, exist_ok=True)
    metrics = {model: _finite_figures(row) for model, row in table.iterrows()}
    (reports / "compare.json").write_text(json.dumps(metrics, indent=2) + "\n")

    timed = table.dropna(subset=["latency/b1_p50_ms"])
    points = [{"model": model, "runtime": row["runtime"], "latency_b1_p50_ms": row["latency/b1_p50_ms"],
               "macro_f1": row["test/macro_f1"], "size_mb": row["size/bytes"] / 1e6} for model, row in timed.iterrows()]
    (reports / "pareto.json").write_text(json.dumps(points, indent=2) + "\n")
    (reports / "cascade.json").write_text(json.dumps(cascade, indent=2) + "\n")


def pareto_plot(table: pd.DataFrame) -> plt.Figure:
    """Macro-F1 against batch-1 latency; marker area is proportional to bytes on disk."""
    models = table.dropna(subset=["latency/b1_p50_ms"])
    figure, axes = plt.subplots(figsize=(9.5, 5))
    area = 2000 * models["size/bytes"] / models["size/bytes"].max()
    for runtime, group in models.groupby("runtime"):
        axes.scatter(group["latency/b1_p50_ms"], group["test/macro_f1"], s=area[group.index].clip(lower=30),
                     alpha=0.6, label=runtime)
    for name, row in models.iterrows():
        axes.annotate(f"{name}\n{row['size/bytes'] / 1e6:.1f} MB", (row["latency/b1_p50_ms"], row["test/macro_f1"]),
                      textcoords="offset points", xytext=(8, 4), fontsize=7)
    if "majority_class" in table.index:
        axes.axhline(table.loc["majority_class", "test/macro_f1"], linestyle="--", color="grey", label="majority class")
    legend = axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="runtime")
    for handle in legend.legend_handles:
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([40])
    axes.set_xscale("log")
    axes.set_xlabel("batch-1 latency, p50 (ms, log scale)")
    axes.set_ylabel("test macro-F1")
    axes.set_title("Quality against speed; marker area = bytes on disk")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure


def machine_facts(threads: int) -> dict[str, str]:
    """CPU model, core count, timing threads and library versions, logged with every measurement."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    facts = {"machine.cpu": cpu, "machine.cores": str(os.cpu_count()), "machine.timing_threads": str(threads),
             "machine.torch_default_threads": str(torch.get_num_threads()), "machine.python": platform.python_version(),
             "machine.platform": platform.platform()}
    for library in LIBRARIES:
        try:
            facts[f"version.{library}"] = version(library)
        except PackageNotFoundError:
            facts[f"version.{library}"] = "not installed"
    return facts


def provenance_tags(stage: str) -> dict[str, str]:
    """Collect the git commit and the dvc.lock hashes of a stage's dependencies, where they exist."""
    tags = {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        tags["git.commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        log.info("No git commit to tag runs with")
    lock = Path("dvc.lock")
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for dependency in stages.get(stage, {}).get("deps", []):
            digest = dependency.get("md5") or dependency.get("hash") or ""
            tags[f"dvc.dep.{dependency['path']}"] = str(digest)
    return tags


def _stage_of(model: str, runtime: str) -> str:
    if model == "teacher":
        return "train_teacher"
    if runtime == "baseline":
        return f"baseline@{model}"
    return f"distill@{model.split('@')[0]}"


def log_to_mlflow(cfg: DictConfig, comparison: Comparison, table: pd.DataFrame, cascade: dict) -> None:
    """Log each model's figures to its own run, and the whole comparison to a `compare` run."""
    client = MlflowClient()
    facts = machine_facts(int(cfg.compare.threads))
    for model, run_id in comparison.run_ids.items():
        if run_id is None:
            continue
        runtime = comparison.runtimes[model]
        prefix = "" if runtime in ("pytorch", "baseline") else f"{runtime}/"
        for key, value in _finite_figures(table.loc[model]).items():
            client.log_metric(run_id, f"{prefix}{key}", value)
        for key, value in (facts | provenance_tags(_stage_of(model, runtime))).items():
            client.set_tag(run_id, key, value)

    start_run(cfg, f"{cfg.task.name}/compare", "compare", section(cfg, "compare"))
    try:
        mlflow.set_tags(facts | provenance_tags("compare"))
        for model, run_id in comparison.run_ids.items():
            if run_id:
                mlflow.set_tag(f"run_id.{mlflow_name(model)}", run_id)
        mlflow.log_metrics({f"{mlflow_name(model)}/{key}": value for model, row in table.iterrows()
                            for key, value in _finite_figures(row).items()})
        for row in cascade["thresholds"]:
            mlflow.log_metrics({f"cascade/{row['threshold']:g}/{key}": value for key, value in row.items()
                                if key != "threshold"})

        mlflow.log_table(table.reset_index(), "comparison.json")
        mlflow.log_text(table.to_csv(float_format="%.6g"), "comparison.csv")
        per_class = {model: per_class_f1(comparison.labels, predictions, comparison.class_names)
                     for model, predictions in comparison.predictions.items()}
        mlflow.log_table(pd.DataFrame(per_class).rename_axis("class").reset_index(), "per_class_f1.json")
        mlflow.log_dict(cascade, "cascade.json")

        figure = pareto_plot(table)
        mlflow.log_figure(figure, "macro_f1_vs_latency.png")
        plt.close(figure)
        for model, predictions in comparison.predictions.items():
            figure = confusion_figure(comparison.labels, predictions, comparison.class_names, f"{model}: test split")
            mlflow.log_figure(figure, f"confusion/{mlflow_name(model)}.png")
            plt.close(figure)
    finally:
        mlflow.end_run()
