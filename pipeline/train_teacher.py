"""Stage train_teacher: fine-tune a Hugging Face sequence classifier on the labeled split.

The teacher trains on the train split's labels only, the same label budget as
the students. The transfer pool reaches the students through its soft labels.

Usage: python -m pipeline.train_teacher --task NAME [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
import time

import lightning as L
import mlflow
import torch
from omegaconf import DictConfig
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from pipeline import paths
from pipeline.config import parse_stage_args, run_stage, stage_config
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task
from pipeline.losses import class_weights
from pipeline.teacher_model import build_teacher
from pipeline.tracking import save_run_info, section, start_run
from pipeline.training import adamw_with_linear_decay, make_loader, make_trainer

log = logging.getLogger(__name__)


class TeacherModule(L.LightningModule):
    """Fine-tunes a Hugging Face sequence classifier with cross-entropy."""

    def __init__(self, model, num_labels: int, learning_rate: float, weight_decay: float, warmup_ratio: float,
                 class_weight: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        # A buffer, so that the weights follow the module to its device.
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.val_f1 = MulticlassF1Score(num_classes=num_labels, average="macro")
        self.val_accuracy = MulticlassAccuracy(num_classes=num_labels, average="micro")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"], weight=self.class_weight)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val/loss", torch.nn.functional.cross_entropy(logits, batch["labels"]), on_epoch=True)
        predictions = logits.argmax(-1)
        self.val_f1(predictions, batch["labels"])
        self.val_accuracy(predictions, batch["labels"])
        self.log("val/macro_f1", self.val_f1, prog_bar=True, on_epoch=True)
        self.log("val/accuracy", self.val_accuracy, on_epoch=True)

    def configure_optimizers(self):
        return adamw_with_linear_decay(self, self.learning_rate, self.weight_decay, self.warmup_ratio)


def train_teacher(cfg: DictConfig) -> dict:
    L.seed_everything(int(cfg.seed), workers=True)
    task = str(cfg.task.name)
    task_paths = paths.TaskPaths(task)
    dataset = load_task(task_paths.splits)
    names = class_names(dataset)
    model, tokenizer = build_teacher(cfg, len(names), dict(enumerate(names)), task_paths.tokenizer)

    collate = TokenizingCollator(tokenizer, int(cfg.task.max_length))
    train = make_loader(TextRows(dataset["train"]["text"], dataset["train"]["label"]), collate,
                        int(cfg.teacher.batch_size), shuffle=True, seed=int(cfg.seed))
    validation = make_loader(TextRows(dataset["validation"]["text"], dataset["validation"]["label"]),
                             collate, 128, shuffle=False, seed=int(cfg.seed))
    weights = class_weights(cfg.teacher.get("class_weight"), dataset["train"]["label"], len(names))
    module = TeacherModule(model, len(names), float(cfg.teacher.learning_rate),
                           float(cfg.teacher.weight_decay), float(cfg.teacher.warmup_ratio), weights)

    run = start_run(cfg, f"{task}/teacher", "train_teacher", section(cfg, "seed", "teacher", "task"))
    try:
        started = time.perf_counter()
        trainer = make_trainer(int(cfg.teacher.epochs))
        trainer.fit(module, train, validation)
        seconds = time.perf_counter() - started

        out_dir = task_paths.teacher
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        save_run_info(staging, run)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)

        figures = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("val/")}
        figures["train/seconds"] = seconds
        mlflow.log_metric("train/seconds", seconds)
        mlflow.set_tag("pretrained", str(cfg.teacher.pretrained))
    finally:
        mlflow.end_run()

    report = task_paths.reports / "teacher.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=2) + "\n")
    log.info("Teacher trained in %.0f s: %s", seconds, figures)
    return figures


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.train_teacher")
    train_teacher(stage_config(overrides, task=args.task))


if __name__ == "__main__":
    run_stage(main)
