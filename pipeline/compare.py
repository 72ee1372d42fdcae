"""Stage compare: test accuracy, size and latency of the teacher, students and baselines.

Writes reports/compare.json (DVC metrics), reports/pareto.json (DVC plot data),
and an MLflow run with the comparison table and a plot of macro-F1 against
batch-1 latency whose marker area shows the bytes on disk. Each model's
figures also go to that model's own MLflow run.

Usage: python -m pipeline.compare [override ...]
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from pipeline import paths  # noqa: E402
from pipeline.config import run_stage, stage_config  # noqa: E402
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task  # noqa: E402
from pipeline.latency import measure_latency  # noqa: E402
from pipeline.metrics import classification_figures  # noqa: E402
from pipeline.students import WEIGHTS_FILE, load_student  # noqa: E402
from pipeline.teacher_model import load_teacher  # noqa: E402
from pipeline.tracking import load_run_id, section, start_run  # noqa: E402
from pipeline.training import make_loader  # noqa: E402

log = logging.getLogger(__name__)

TEACHER = "teacher"


@torch.inference_mode()
def predict(forward, tokenizer, texts: list[str], max_length: int, desc: str) -> np.ndarray:
    loader = make_loader(TextRows(texts, [0] * len(texts)), TokenizingCollator(tokenizer, max_length), 128,
                         shuffle=False, seed=0)
    logits = [forward(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
              for b in tqdm(loader, desc=desc, unit=" batches", mininterval=5)]
    return torch.cat(logits).argmax(-1).numpy()


def model_figures(forward, model: torch.nn.Module, tokenizer, weights: Path, texts: list[str],
                  labels: np.ndarray, cfg: DictConfig, name: str) -> tuple[np.ndarray, dict[str, float]]:
    """Quality on the test split, size, and latency of one model."""
    max_length = int(cfg.task.max_length)
    predictions = predict(forward, tokenizer, texts, max_length, f"test {name}")
    figures = {f"test/{key}": value for key, value in classification_figures(labels, predictions).items()}
    figures["size/params"] = float(sum(parameter.numel() for parameter in model.parameters()))
    figures["size/bytes"] = float(weights.stat().st_size)

    timed = texts[: int(cfg.compare.latency_examples)]
    log.info("Timing %s on %d test records, %d thread(s)", name, len(timed), cfg.compare.threads)
    figures |= measure_latency(forward, tokenizer, timed, max_length, int(cfg.compare.warmup),
                               int(cfg.compare.threads), int(cfg.compare.throughput_batches))
    return predictions, figures


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, float]:
    majority = np.bincount(train_labels).argmax()
    figures = classification_figures(test_labels, np.full_like(test_labels, majority))
    return {f"test/{key}": value for key, value in figures.items()}


def pareto_plot(table: pd.DataFrame) -> plt.Figure:
    """Macro-F1 against batch-1 latency; marker area is proportional to bytes on disk."""
    models = table.dropna(subset=["latency/b1_p50_ms"])
    figure, axes = plt.subplots(figsize=(7, 4.5))
    area = 2000 * models["size/bytes"] / models["size/bytes"].max()
    axes.scatter(models["latency/b1_p50_ms"], models["test/macro_f1"], s=area.clip(lower=30), alpha=0.6)
    for name, row in models.iterrows():
        axes.annotate(f"{name}\n{row['size/bytes'] / 1e6:.1f} MB", (row["latency/b1_p50_ms"], row["test/macro_f1"]),
                      textcoords="offset points", xytext=(8, 4), fontsize=8)
    if "majority_class" in table.index:
        axes.axhline(table.loc["majority_class", "test/macro_f1"], linestyle="--", color="grey",
                     label="majority class")
        axes.legend(loc="lower right")
    axes.set_xscale("log")
    axes.set_xlabel("batch-1 latency, p50 (ms, log scale)")
    axes.set_ylabel("test macro-F1")
    axes.set_title("Quality against speed; marker area = bytes on disk")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure


def compare(cfg: DictConfig) -> pd.DataFrame:
    task = str(cfg.task.name)
    dataset = load_task(paths.dataset_dir(task))
    test_texts = list(dataset["test"]["text"])
    test_labels = np.array(dataset["test"]["label"])
    names = class_names(dataset)
    results: dict[str, dict[str, float]] = {}
    run_ids: dict[str, str | None] = {}

    teacher, teacher_tokenizer = load_teacher(paths.TEACHER)
    teacher_predictions, results[TEACHER] = model_figures(
        lambda **batch: teacher(**batch).logits, teacher, teacher_tokenizer, paths.TEACHER / "model.safetensors",
        test_texts, test_labels, cfg, TEACHER)
    run_ids[TEACHER] = load_run_id(paths.TEACHER)
    del teacher

    def relative_to_teacher(predictions: np.ndarray, figures: dict[str, float]) -> dict[str, float]:
        figures["test/teacher_agreement"] = float(np.mean(predictions == teacher_predictions))
        figures["retention/macro_f1"] = figures["test/macro_f1"] / results[TEACHER]["test/macro_f1"]
        if "latency/b1_p50_ms" in figures:
            figures["speedup/b1_p50"] = results[TEACHER]["latency/b1_p50_ms"] / figures["latency/b1_p50_ms"]
        return figures

    for name in cfg.students:
        folder = paths.student_dir(name)
        student, tokenizer, student_config = load_student(folder)
        if student_config["class_names"] != names:
            raise ValueError(f"Student {name} was trained on other classes than the dataset: "
                             f"rerun `dvc repro distill@{name}`.")
        predictions, figures = model_figures(student, student, tokenizer, folder / WEIGHTS_FILE, test_texts,
                                             test_labels, cfg, name)
        results[name] = relative_to_teacher(predictions, figures)
        run_ids[name] = load_run_id(folder)

    # Baselines trained outside the distillation stage, each in models/baselines/<name>/.
    for name in cfg.get("baselines") or {}:
        from pipeline.baselines import evaluate_baseline

        folder = paths.baseline_dir(name)
        predictions, figures = evaluate_baseline(folder, test_texts, test_labels, cfg)
        results[name] = relative_to_teacher(predictions, figures)
        run_ids[name] = load_run_id(folder)

    results["majority_class"] = majority_baseline(np.array(dataset["train"]["label"]), test_labels)
    table = pd.DataFrame.from_dict(results, orient="index")
    table.index.name = "model"
    log.info("Comparison on %d test examples:\n%s", len(test_labels), table.to_string(float_format="%.4g"))

    write_reports(table, paths.REPORTS)
    log_to_mlflow(cfg, table, run_ids)
    return table


def write_reports(table: pd.DataFrame, reports: Path) -> None:
    reports.mkdir(parents=True, exist_ok=True)
    metrics = {model: {key: value for key, value in row.items() if not math.isnan(value)}
               for model, row in table.to_dict(orient="index").items()}
    (reports / "compare.json").write_text(json.dumps(metrics, indent=2) + "\n")

    timed = table.dropna(subset=["latency/b1_p50_ms"])
    points = [{"model": model, "latency_b1_p50_ms": row["latency/b1_p50_ms"], "macro_f1": row["test/macro_f1"],
               "size_mb": row["size/bytes"] / 1e6} for model, row in timed.iterrows()]
    (reports / "pareto.json").write_text(json.dumps(points, indent=2) + "\n")


def log_to_mlflow(cfg: DictConfig, table: pd.DataFrame, run_ids: dict[str, str | None]) -> None:
    client = MlflowClient()
    for model, run_id in run_ids.items():
        if run_id is None:
            log.warning("No MLflow run recorded for %s; its figures go to the comparison run only", model)
            continue
        figures = {key: value for key, value in table.loc[model].items() if not math.isnan(value)}
        for key, value in figures.items():
            client.log_metric(run_id, key, value)

    start_run(cfg, "compare", "compare", section(cfg, "compare"))
    try:
        for model, run_id in run_ids.items():
            if run_id:
                mlflow.set_tag(f"run_id.{model}", run_id)
        flat = {f"{model}/{key}": value for model, row in table.iterrows() for key, value in row.items()
                if not math.isnan(value)}
        mlflow.log_metrics(flat)
        mlflow.log_table(table.reset_index(), "comparison.json")
        mlflow.log_text(table.to_csv(float_format="%.6g"), "comparison.csv")
        figure = pareto_plot(table)
        mlflow.log_figure(figure, "macro_f1_vs_latency.png")
        plt.close(figure)
    finally:
        mlflow.end_run()


def main(argv: list[str] | None = None) -> None:
    cfg = stage_config(argv)
    compare(cfg)


if __name__ == "__main__":
    run_stage(main)
