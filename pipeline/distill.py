"""Stage distill: train one student on the teacher's soft labels plus the hard labels.

The student trains on the labeled split (soft and hard targets) and the
transfer pool (soft targets only), and keeps the weights of the epoch with the
best validation macro-F1.

Usage: python -m pipeline.distill --student NAME [override ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import AutoTokenizer

from pipeline import paths
from pipeline.config import ConfigError, run_stage, stage_config
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task
from pipeline.losses import distillation_loss
from pipeline.soft_labels import load_soft_labels
from pipeline.students import build_student, save_student
from pipeline.tracking import load_run_id, save_run_info, section, start_run
from pipeline.training import adamw_with_linear_decay, make_loader, make_trainer

log = logging.getLogger(__name__)


class DistillationModule(L.LightningModule):
    """Trains a student with the soft-target distillation loss."""

    def __init__(self, student: torch.nn.Module, num_labels: int, temperature: float, alpha: float,
                 learning_rate: float, weight_decay: float, warmup_ratio: float = 0.05):
        super().__init__()
        self.student = student
        self.temperature = temperature
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.val_f1 = MulticlassF1Score(num_classes=num_labels, average="macro")
        self.val_accuracy = MulticlassAccuracy(num_classes=num_labels, average="micro")
        self.val_agreement = MulticlassAccuracy(num_classes=num_labels, average="micro")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.student(input_ids, attention_mask)

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss, terms = distillation_loss(logits, batch["teacher_logits"], batch["labels"], self.temperature, self.alpha)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        self.log("train/soft_kl", terms["soft_kl"], on_epoch=True, on_step=False)
        self.log("train/hard_ce", terms["hard_ce"], on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        predictions = self(batch["input_ids"], batch["attention_mask"]).argmax(-1)
        self.val_f1(predictions, batch["labels"])
        self.val_accuracy(predictions, batch["labels"])
        self.val_agreement(predictions, batch["teacher_logits"].argmax(-1))
        self.log("val/macro_f1", self.val_f1, prog_bar=True, on_epoch=True)
        self.log("val/accuracy", self.val_accuracy, on_epoch=True)
        self.log("val/teacher_agreement", self.val_agreement, on_epoch=True)

    def configure_optimizers(self):
        return adamw_with_linear_decay(self, self.learning_rate, self.weight_decay, self.warmup_ratio)


def _rows(dataset, split: str, soft_labels_file) -> TextRows:
    rows = dataset[split]
    logits = load_soft_labels(soft_labels_file, split, list(rows["example_id"]))
    return TextRows(list(rows["text"]), list(rows["label"]), logits)


def distill(cfg: DictConfig, name: str) -> dict:
    if name not in cfg.students:
        raise ConfigError(f"Unknown student {name!r}: params.yaml defines {', '.join(cfg.students)}.")
    student_cfg = cfg.students[name]
    L.seed_everything(int(cfg.seed), workers=True)

    task = str(cfg.task.name)
    dataset = load_task(paths.dataset_dir(task))
    names = class_names(dataset)
    soft_labels_file = paths.soft_labels_file(task)
    tokenizer = AutoTokenizer.from_pretrained(str(paths.student_tokenizer_dir(task)))
    max_length = int(cfg.task.max_length)

    labeled, transfer = _rows(dataset, "train", soft_labels_file), _rows(dataset, "transfer", soft_labels_file)
    train_rows = TextRows(labeled.texts + transfer.texts, labeled.labels + transfer.labels,
                          np.concatenate([labeled.teacher_logits, transfer.teacher_logits]))
    collate = TokenizingCollator(tokenizer, max_length)
    train = make_loader(train_rows, collate, int(student_cfg.batch_size), shuffle=True, seed=int(cfg.seed))
    validation = make_loader(_rows(dataset, "validation", soft_labels_file), collate, 256, shuffle=False,
                             seed=int(cfg.seed))
    log.info("Student %s: %d labeled + %d transfer examples, %d validation", name, len(labeled), len(transfer),
             len(validation.dataset))

    model_kwargs = dict(student_cfg.model)
    student = build_student(str(student_cfg.arch), model_kwargs, len(tokenizer), len(names), max_length,
                            tokenizer.pad_token_id)
    module = DistillationModule(student, len(names), float(cfg.distill.temperature), float(cfg.distill.alpha),
                                float(student_cfg.learning_rate), float(student_cfg.weight_decay))

    run = start_run(cfg, f"student/{name}", "distill", section(cfg, "seed", "distill", "task") |
                    {"student": dict(student_cfg) | {"model": model_kwargs}, "student_name": name})
    teacher_run_id = load_run_id(paths.TEACHER)
    if teacher_run_id:
        mlflow.set_tag("teacher_run_id", teacher_run_id)
    try:
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

        out_dir = paths.student_dir(name)
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

    report = paths.REPORTS / "students" / f"{name}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=2) + "\n")
    log.info("Student %s distilled in %.0f s: %s", name, seconds, figures)
    return figures


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m pipeline.distill", description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="key under `students` in params.yaml, e.g. bilstm")
    args, overrides = parser.parse_known_args(argv)
    cfg = stage_config(overrides)
    distill(cfg, args.student)


if __name__ == "__main__":
    run_stage(main)
