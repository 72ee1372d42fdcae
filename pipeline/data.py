"""Load a task's splits and turn rows into tokenized batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from datasets import DatasetDict, load_from_disk

from pipeline.config import ConfigError


def load_task(dataset_dir: Path) -> DatasetDict:
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise ConfigError(f"Dataset {dataset_dir} not found: run `dvc repro build_datasets` first.")
    # keep_in_memory so that nothing writes cache files into a DVC output.
    return load_from_disk(str(dataset_dir), keep_in_memory=True)


def class_names(dataset: DatasetDict) -> list[str]:
    return list(dataset["train"].features["label"].names)


class TextRows(torch.utils.data.Dataset):
    """Rows of text with a hard label (-1 where none) and, for distillation, teacher logits."""

    def __init__(self, texts: list[str], labels: list[int], teacher_logits: np.ndarray | None = None):
        if teacher_logits is not None and len(teacher_logits) != len(texts):
            raise ValueError(f"{len(teacher_logits)} teacher logit rows for {len(texts)} texts")
        self.texts = list(texts)
        self.labels = list(labels)
        self.teacher_logits = teacher_logits

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict:
        row = {"text": self.texts[index], "label": self.labels[index]}
        if self.teacher_logits is not None:
            row["teacher_logits"] = self.teacher_logits[index]
        return row


class TokenizingCollator:
    """Tokenize a list of rows into padded tensors at batch time."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer([row["text"] for row in rows], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt", return_token_type_ids=False)
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                 "labels": torch.tensor([row["label"] for row in rows], dtype=torch.long)}
        if "teacher_logits" in rows[0]:
            batch["teacher_logits"] = torch.tensor(np.stack([row["teacher_logits"] for row in rows]),
                                                   dtype=torch.float32)
        return batch
