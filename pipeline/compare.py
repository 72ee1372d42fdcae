"""Stage compare: quality, size and latency of the teacher, students, exports and baselines.

Every model goes through the same harness: test-split predictions, parameter
counts and bytes on disk, then batch-1 and batch-64 timings with a fixed
thread count. Students also run as ONNX fp32 and ONNX int8 when the export
stage produced them. Results go to DVC metrics and plots under reports/ and
to MLflow (see pipeline/reporting.py).

Usage: python -m pipeline.compare --task NAME [override ...]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.config import parse_stage_args, run_stage, stage_config
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task
from pipeline.export import FP32_FILE, INT8_FILE, OnnxForward, onnx_session
from pipeline.latency import measure_latency
from pipeline.metrics import classification_figures, expected_calibration_error, softmax
from pipeline.reporting import Comparison, log_to_mlflow, write_reports
from pipeline.students import WEIGHTS_FILE, load_student
from pipeline.teacher_model import load_teacher
from pipeline.tracking import load_run_id
from pipeline.training import make_loader

log = logging.getLogger(__name__)

TEACHER = "teacher"
RUNTIMES = {"onnx": FP32_FILE, "onnx_int8": INT8_FILE}


@torch.inference_mode()
def predict_logits(forward, tokenizer, texts: list[str], max_length: int, desc: str) -> np.ndarray:
    loader = make_loader(TextRows(texts, [0] * len(texts)), TokenizingCollator(tokenizer, max_length), 128,
                         shuffle=False, seed=0)
    logits = [forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
              for batch in tqdm(loader, desc=desc, unit=" batches", mininterval=5)]
    return torch.cat(logits).float().numpy()


def size_figures(model: torch.nn.Module, weights: Path) -> dict[str, float]:
    total = sum(parameter.numel() for parameter in model.parameters())
    embedding = sum(parameter.numel() for module in model.modules() if isinstance(module, torch.nn.Embedding)
                    for parameter in module.parameters(recurse=False))
    return {"size/params": float(total), "size/non_embedding_params": float(total - embedding),
            "size/bytes": float(weights.stat().st_size)}


def model_figures(forward, model: torch.nn.Module, tokenizer, weights: Path, texts: list[str],
                  labels: np.ndarray, cfg: DictConfig, name: str) -> tuple[np.ndarray, dict[str, float]]:
    """Quality on the test split, size and latency of one model; returns (predictions, figures).

    `forward(input_ids=..., attention_mask=...)` returns logits; `model` is the
    PyTorch module whose parameters are counted, `weights` the file whose
    bytes are reported.
    """
    max_length = int(cfg.task.max_length)
    logits = predict_logits(forward, tokenizer, texts, max_length, f"test {name}")
    predictions = logits.argmax(-1)
    figures = {f"test/{key}": value for key, value in classification_figures(labels, predictions).items()}
    figures["test/ece"] = expected_calibration_error(softmax(logits), labels)
    figures |= size_figures(model, weights)

    timed = texts[: int(cfg.compare.latency_examples)]
    log.info("Timing %s on %d test records, %d thread(s)", name, len(timed), cfg.compare.threads)
    figures |= measure_latency(forward, tokenizer, timed, max_length, int(cfg.compare.warmup),
                               int(cfg.compare.threads), int(cfg.compare.throughput_batches))
    return predictions, figures


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    predictions = np.full_like(test_labels, np.bincount(train_labels).argmax())
    figures = classification_figures(test_labels, predictions)
    return predictions, {f"test/{key}": value for key, value in figures.items()}


def cascade_figures(student_logits: np.ndarray, teacher_predictions: np.ndarray, labels: np.ndarray,
                    student_ms: float, teacher_ms: float, thresholds: list[float]) -> list[dict[str, float]]:
    """Score a cascade: the student labels records whose top probability reaches the threshold, the teacher the rest.

    Latency is the expected batch-1 forward time per record: the student always
    runs, the teacher only on deferred records.
    """
    probabilities = softmax(student_logits)
    rows = []
    for threshold in thresholds:
        deferred = probabilities.max(-1) < threshold
        predictions = np.where(deferred, teacher_predictions, probabilities.argmax(-1))
        figures = classification_figures(labels, predictions)
        rows.append({"threshold": float(threshold), "accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"],
                     "deferral_share": float(deferred.mean()),
                     "mean_latency_ms": float(student_ms + deferred.mean() * teacher_ms)})
    return rows


def compare(cfg: DictConfig) -> pd.DataFrame:
    task_paths = paths.TaskPaths(str(cfg.task.name))
    dataset = load_task(task_paths.splits)
    texts = list(dataset["test"]["text"])
    labels = np.array(dataset["test"]["label"])
    names = class_names(dataset)
    comparison = Comparison(labels=labels, class_names=names)

    teacher, teacher_tokenizer = load_teacher(task_paths.teacher)
    teacher_predictions, figures = model_figures(
        lambda **batch: teacher(**batch).logits, teacher, teacher_tokenizer, task_paths.teacher / "model.safetensors",
        texts, labels, cfg, TEACHER)
    comparison.add(TEACHER, "pytorch", teacher_predictions, figures, load_run_id(task_paths.teacher))
    del teacher

    student_logits = {}
    for name in cfg.students:
        folder = task_paths.student(name)
        student, tokenizer, student_config = load_student(folder)
        if student_config["class_names"] != names:
            raise ValueError(f"Student {name} was trained on other classes than the dataset: "
                             f"rerun `dvc repro distill@{cfg.task.name}-{name}`.")
        run_id = load_run_id(folder)
        predictions, figures = model_figures(student, student, tokenizer, folder / WEIGHTS_FILE, texts, labels,
                                             cfg, name)
        comparison.add(name, "pytorch", predictions, figures, run_id)
        student_logits[name] = predict_logits(student, tokenizer, texts, int(cfg.task.max_length), f"logits {name}")

        for runtime, file in RUNTIMES.items():
            exported = task_paths.onnx_student(name) / file
            if not exported.is_file():
                log.warning("No %s export of %s at %s: run `dvc repro export@%s-%s`", runtime, name, exported,
                            cfg.task.name, name)
                continue
            forward = OnnxForward(onnx_session(exported, int(cfg.compare.threads)))
            predictions, figures = model_figures(forward, student, tokenizer, exported, texts, labels, cfg,
                                                 f"{name}@{runtime}")
            comparison.add(f"{name}@{runtime}", runtime, predictions, figures, run_id)

    # Baselines trained outside the distillation stage, each in models/<task>/baselines/<name>/.
    for name in cfg.get("baselines") or {}:
        from pipeline.baselines import evaluate_baseline

        folder = task_paths.baseline(name)
        predictions, figures = evaluate_baseline(folder, texts, labels, cfg, dataset["test"])
        comparison.add(name, "baseline", predictions, figures, load_run_id(folder))

    predictions, figures = majority_baseline(np.array(dataset["train"]["label"]), labels)
    comparison.add("majority_class", "baseline", predictions, figures, None)

    table = comparison.table(TEACHER)
    best = max(student_logits, key=lambda name: table.loc[name, "test/macro_f1"])
    cascade = cascade_figures(student_logits[best], teacher_predictions, labels,
                              float(table.loc[best, "latency/b1_p50_ms"]), float(table.loc[TEACHER, "latency/b1_p50_ms"]),
                              list(cfg.compare.cascade_thresholds))
    log.info("Comparison on %d test examples:\n%s", len(labels),
             table[["test/macro_f1", "test/accuracy", "size/bytes", "latency/b1_p50_ms", "speedup/b1_p50"]]
             .to_string(float_format="%.4g"))
    log.info("Cascade of %s and the teacher: %s", best, cascade)

    write_reports(table, {"student": best, "thresholds": cascade}, task_paths.reports)
    log_to_mlflow(cfg, comparison, table, {"student": best, "thresholds": cascade})
    return table


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.compare")
    compare(stage_config(overrides, task=args.task))


if __name__ == "__main__":
    run_stage(main)
