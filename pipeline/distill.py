"""Stage distill: train one student on the teacher's soft labels plus the hard labels.

The student trains on the labeled split (soft and hard targets) and the
transfer pool (soft targets only), and keeps the weights of the epoch with the
best validation macro-F1.

Usage: python -m pipeline.distill --task NAME --student NAME [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import AutoTokenizer

from pipeline import paths
from pipeline.config import ConfigError, parse_stage_args, run_stage, stage_config, to_container
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task
from pipeline.augment import augmented_file, load_augmented
from pipeline.losses import (NO_LABEL, class_weights, distillation_loss, hard_label_cross_entropy, hidden_state_mse,
                             prior_logit_adjustment, scheduled_value)
from pipeline.soft_labels import load_soft_labels
from pipeline.students import build_student, save_student
from pipeline.teacher_init import copy_teacher_weights, load_init_source, student_settings
from pipeline.teacher_model import load_teacher
from pipeline.tracking import load_run_id, save_run_info, section, start_run
from pipeline.training import adamw_with_linear_decay, make_loader, make_trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossSettings:
    """Loss settings of a student: the soft loss, its weight alpha and the temperature, fixed or scheduled.

    alpha_end and temperature_end, when set, are reached at the last training
    step by linear interpolation from alpha and temperature. hidden_weight
    scales the hidden-state MSE, added for students that read the teacher's
    tokens (a bert student with init_from_teacher set).
    """

    soft_loss: str = "kl"
    temperature: float = 2.0
    alpha: float = 0.7
    temperature_end: float | None = None
    alpha_end: float | None = None
    hidden_weight: float = 0.0

    @classmethod
    def from_config(cls, distill_cfg: DictConfig) -> "LossSettings":
        def optional(key: str) -> float | None:
            value = distill_cfg.get(key)
            return None if value is None else float(value)

        return cls(str(distill_cfg.get("soft_loss", "kl")), float(distill_cfg.temperature), float(distill_cfg.alpha),
                   optional("temperature_end"), optional("alpha_end"), float(distill_cfg.get("hidden_weight", 0.0)))


# Training on hard labels alone: no teacher logits enter the loss.
NO_DISTILLATION = LossSettings(alpha=0.0)


class DistillationModule(L.LightningModule):
    """Trains a student with a distillation loss, or with cross-entropy alone on batches without teacher logits."""

    def __init__(self, student: torch.nn.Module, num_labels: int, losses: LossSettings,
                 learning_rate: float, weight_decay: float, warmup_ratio: float = 0.05,
                 hidden_teacher: torch.nn.Module | None = None, class_weight: torch.Tensor | None = None):
        super().__init__()
        self.student = student
        self.losses = losses
        # Per-class weights of the hard-label cross-entropy. A buffer follows the module to its device.
        self.register_buffer("class_weight", class_weight, persistent=False)
        # The teacher whose last-layer states the hidden-state loss matches. A
        # tuple keeps it out of the module tree, so that it stays frozen, in
        # eval mode and out of the checkpoints.
        self.hidden_teacher = (hidden_teacher,) if hidden_teacher is not None else ()
        if self.hidden_teacher:
            self.projection = torch.nn.Linear(student.model.config.hidden_size, hidden_teacher.config.hidden_size)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.val_f1 = MulticlassF1Score(num_classes=num_labels, average="macro")
        self.val_accuracy = MulticlassAccuracy(num_classes=num_labels, average="micro")
        self.val_agreement = MulticlassAccuracy(num_classes=num_labels, average="micro")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.student(input_ids, attention_mask)

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        if self.hidden_teacher and "teacher_logits" in batch:
            logits, student_hidden = self.student.logits_and_hidden(batch["input_ids"], batch["attention_mask"])
        else:
            logits = self(batch["input_ids"], batch["attention_mask"])
        if "teacher_logits" not in batch:
            loss = hard_label_cross_entropy(logits, batch["labels"], self.class_weight)
            self.log("train/loss", loss, prog_bar=True, on_epoch=True, on_step=False)
            return loss

        progress = self.global_step / max(1, self.trainer.estimated_stepping_batches - 1)
        temperature = scheduled_value(self.losses.temperature, self.losses.temperature_end, progress)
        alpha = scheduled_value(self.losses.alpha, self.losses.alpha_end, progress)
        loss, terms = distillation_loss(logits, batch["teacher_logits"], batch["labels"], temperature, alpha,
                                        self.losses.soft_loss, self.class_weight)
        if self.hidden_teacher:
            with torch.no_grad():
                teacher_hidden = self.hidden_teacher[0].base_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            hidden = hidden_state_mse(student_hidden, teacher_hidden, self.projection, batch["attention_mask"])
            loss = loss + self.losses.hidden_weight * hidden
            self.log("train/hidden_mse", hidden, on_epoch=True, on_step=False)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        self.log("train/soft", terms["soft"], on_epoch=True, on_step=False)
        self.log("train/hard_ce", terms["hard_ce"], on_epoch=True, on_step=False)
        self.log("train/temperature", temperature, on_epoch=True, on_step=False)
        self.log("train/alpha", alpha, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        predictions = self(batch["input_ids"], batch["attention_mask"]).argmax(-1)
        self.val_f1(predictions, batch["labels"])
        self.val_accuracy(predictions, batch["labels"])
        self.log("val/macro_f1", self.val_f1, prog_bar=True, on_epoch=True)
        self.log("val/accuracy", self.val_accuracy, on_epoch=True)
        if "teacher_logits" in batch:
            self.val_agreement(predictions, batch["teacher_logits"].argmax(-1))
            self.log("val/teacher_agreement", self.val_agreement, on_epoch=True)

    def configure_optimizers(self):
        return adamw_with_linear_decay(self, self.learning_rate, self.weight_decay, self.warmup_ratio)


def _rows(dataset, split: str, soft_labels_files: list[Path], adjustment: np.ndarray | float = 0.0) -> TextRows:
    """Rows of `split` with the teacher logits averaged over every file in `soft_labels_files`.

    Averaging logits of several teachers (other seeds or models) gives the
    normalized geometric mean of their probabilities at any temperature.
    `adjustment` is subtracted from the mean (see `prior_logit_adjustment`).
    """
    rows = dataset[split]
    example_ids = list(rows["example_id"])
    logits = np.mean([load_soft_labels(file, split, example_ids) for file in soft_labels_files], axis=0)
    return TextRows(list(rows["text"]), list(rows["label"]), (logits - adjustment).astype(np.float32))


def soft_labels_files(cfg: DictConfig) -> list[Path]:
    """List the pipeline's soft-label file, then those of `distill.extra_teachers` (other teacher runs)."""
    files = [paths.TaskPaths(str(cfg.task.name)).soft_labels]
    for extra in cfg.distill.get("extra_teachers") or []:
        file = Path(str(extra))
        if not file.is_file():
            raise ConfigError(f"distill.extra_teachers lists {file}, which does not exist: give the soft-label "
                              "Parquet file of another teacher run (its data/soft_labels/<task>.parquet).")
        files.append(file)
    return files


def _augmented_rows(cfg: DictConfig, num_labels: int, adjustment: np.ndarray | float = 0.0) -> TextRows | None:
    if int(cfg.augment.copies_per_record) == 0:
        return None
    texts, logits = load_augmented(augmented_file(str(cfg.task.name)), num_labels)
    return TextRows(texts, [NO_LABEL] * len(texts), (logits - adjustment).astype(np.float32))


def distill(cfg: DictConfig, name: str) -> dict:
    """Train student `name` on labeled and transfer rows with the teacher's soft labels."""
    if name not in cfg.students:
        raise ConfigError(f"Unknown student {name!r}: params.yaml defines {', '.join(cfg.students)}.")
    student_cfg = cfg.students[name]
    L.seed_everything(int(cfg.seed), workers=True)

    task = str(cfg.task.name)
    task_paths = paths.TaskPaths(task)
    dataset = load_task(task_paths.splits)
    teachers = soft_labels_files(cfg)
    num_labels = len(class_names(dataset))
    tau = float(cfg.distill.get("logit_adjustment", 0.0))
    adjustment = prior_logit_adjustment(dataset["train"]["label"], num_labels, tau) if tau else 0.0
    parts = [_rows(dataset, "train", teachers, adjustment), _rows(dataset, "transfer", teachers, adjustment)]
    augmented = _augmented_rows(cfg, num_labels, adjustment)
    if augmented is not None:
        parts.append(augmented)
    train_rows = TextRows([text for part in parts for text in part.texts],
                          [label for part in parts for label in part.labels],
                          np.concatenate([part.teacher_logits for part in parts]))
    log.info("Student %s: %d labeled + %d transfer + %d augmented examples, soft labels of %d teacher(s)", name,
             len(parts[0]), len(parts[1]), len(augmented) if augmented is not None else 0, len(teachers))

    losses = LossSettings.from_config(cfg.distill)
    run = start_run(cfg, f"{task}/student/{name}", "distill", section(cfg, "seed", "distill", "task") |
                    {"student": to_container(student_cfg), "student_name": name})
    method = f"distill/{losses.soft_loss}" + ("+hidden" if uses_hidden_loss(student_cfg, losses) else "")
    mlflow.set_tags({"student": str(student_cfg.arch), "method": method})
    teacher_run_id = load_run_id(task_paths.teacher)
    if teacher_run_id:
        mlflow.set_tag("teacher_run_id", teacher_run_id)
    figures = fit_student(cfg, name, student_cfg, train_rows, _rows(dataset, "validation", teachers, adjustment),
                          class_names(dataset), losses, run, task_paths.student(name))

    report = task_paths.reports / "students" / f"{name}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def uses_hidden_loss(student_cfg: DictConfig, losses: LossSettings) -> bool:
    """Tell whether the hidden-state loss applies: it has a weight and the student reads the teacher's tokens."""
    return losses.hidden_weight > 0 and bool(student_cfg.get("init_from_teacher"))


def fit_student(cfg: DictConfig, name: str, student_cfg: DictConfig, train_rows: TextRows,
                validation_rows: TextRows, names: list[str], losses: LossSettings, run, out_dir: Path) -> dict:
    """Train a student in the active MLflow run `run`, keep its best epoch and save it to `out_dir`.

    Ends the MLflow run. The best epoch is the one with the highest validation
    macro-F1; `out_dir` appears only once the model is completely written.
    """
    try:
        task = str(cfg.task.name)
        task_paths = paths.TaskPaths(task)
        model_kwargs = to_container(student_cfg.model)
        init = student_cfg.get("init_from_teacher")
        if init:
            if str(student_cfg.arch) != "bert":
                raise ConfigError(f"Student {name}: init_from_teacher needs arch bert, not {student_cfg.arch}.")
            source_model, tokenizer = load_init_source(cfg, str(init), task_paths.teacher)
            model_kwargs = student_settings(source_model.config, model_kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(task_paths.tokenizer))
        max_length = int(cfg.task.max_length)
        collate = TokenizingCollator(tokenizer, max_length)
        train = make_loader(train_rows, collate, int(student_cfg.batch_size), shuffle=True, seed=int(cfg.seed))
        validation = make_loader(validation_rows, collate, 256, shuffle=False, seed=int(cfg.seed))

        student = build_student(str(student_cfg.arch), model_kwargs, len(tokenizer), len(names), max_length,
                                tokenizer.pad_token_id)
        if init:
            copy_teacher_weights(source_model, student, copy_classifier=str(init) == "finetuned")
        hidden_teacher = None
        if uses_hidden_loss(student_cfg, losses):
            hidden_teacher, _ = load_teacher(task_paths.teacher)
        elif losses.hidden_weight > 0:
            log.warning("Student %s reads its own tokens, not the teacher's: it trains without the hidden-state "
                        "loss (distill.hidden_weight=%s).", name, losses.hidden_weight)
        # The same rule for distilled students and for their no-distillation baselines.
        weights = class_weights(cfg.distill.get("class_weight"), train_rows.labels, len(names))
        module = DistillationModule(student, len(names), losses, float(student_cfg.learning_rate),
                                    float(student_cfg.weight_decay), hidden_teacher=hidden_teacher,
                                    class_weight=weights)

        with tempfile.TemporaryDirectory() as checkpoint_dir:
            best = ModelCheckpoint(dirpath=checkpoint_dir, monitor="val/macro_f1", mode="max", save_top_k=1,
                                   save_weights_only=True)
            started = time.perf_counter()
            trainer = make_trainer(int(student_cfg.epochs), [best])
            trainer.fit(module, train, validation)
            seconds = time.perf_counter() - started
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        figures = {"val/best_macro_f1": float(best.best_model_score), "train/seconds": seconds}
        mlflow.log_metrics(figures)

        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        save_student(student.eval(), tokenizer, {
            "name": name, "arch": str(student_cfg.arch), "model": model_kwargs, "vocab_size": len(tokenizer),
            "num_labels": len(names), "class_names": names, "max_length": max_length,
            "pad_token_id": tokenizer.pad_token_id,
        }, staging)
        save_run_info(staging, run)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        mlflow.end_run()

    log.info("Student %s trained in %.0f s: %s", name, seconds, figures)
    return figures


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.distill",
                                       ("student", "key under `students` in params.yaml, e.g. bilstm"))
    distill(stage_config(overrides, task=args.task), args.student)


if __name__ == "__main__":
    run_stage(main)
