"""Stage soft_labels: the teacher's logits for every example of every split.

Logits, not probabilities, so that the students can apply any temperature.
Output: one Parquet file per task with columns example_id, split and logits
(a list of float32, one per class in the dataset's label order).

Usage: python -m pipeline.soft_labels --task NAME [override ...]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.config import parse_stage_args, run_stage, stage_config
from pipeline.data import TextRows, TokenizingCollator, class_names, load_task
from pipeline.metrics import classification_figures
from pipeline.teacher_model import load_teacher
from pipeline.training import make_loader

log = logging.getLogger(__name__)


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int, desc: str) -> np.ndarray:
    """Run a Hugging Face classifier over texts; returns float32 logits in input order."""
    collate = TokenizingCollator(tokenizer, max_length)
    loader = make_loader(TextRows(texts, [0] * len(texts)), collate, batch_size, shuffle=False, seed=0)
    chunks = []
    for batch in tqdm(loader, desc=desc, unit=" batches", mininterval=5):
        chunks.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float())
    return torch.cat(chunks).numpy()


def write_soft_labels(cfg: DictConfig, out_file: Path) -> pd.DataFrame:
    task_paths = paths.TaskPaths(str(cfg.task.name))
    dataset = load_task(task_paths.splits)
    model, tokenizer = load_teacher(task_paths.teacher)
    if model.config.num_labels != len(class_names(dataset)):
        raise ValueError(f"Teacher has {model.config.num_labels} classes, dataset {len(class_names(dataset))}: "
                         f"retrain the teacher (`dvc repro train_teacher@{cfg.task.name}`).")

    frames = []
    for split, rows in dataset.items():
        logits = predict_logits(model, tokenizer, list(rows["text"]), int(cfg.task.max_length),
                                int(cfg.soft_labels.batch_size), f"teacher logits {split}")
        frames.append(pd.DataFrame({"example_id": rows["example_id"], "split": split, "logits": list(logits)}))
        if split != "transfer":
            figures = classification_figures(np.array(rows["label"]), logits.argmax(-1))
            log.info("Teacher on %s: %s", split, figures)

    table = pd.concat(frames, ignore_index=True)
    write_soft_label_table(table, out_file)
    log.info("Wrote %d rows of teacher logits to %s", len(table), out_file)
    return table


def write_soft_label_table(table: pd.DataFrame, out_file: Path) -> None:
    """Write columns example_id, split and logits to `out_file` through a `.partial` file, so no half file remains."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_suffix(".partial")
    schema = pa.schema([("example_id", pa.string()), ("split", pa.string()), ("logits", pa.list_(pa.float32()))])
    pq.write_table(pa.Table.from_pandas(table, schema=schema, preserve_index=False), partial)
    partial.replace(out_file)


def load_soft_labels(file: Path, split: str, example_ids: list[str]) -> np.ndarray:
    """Return the teacher logits of `split`, aligned to `example_ids`."""
    table = pd.read_parquet(file, filters=[("split", "==", split)]).set_index("example_id")
    missing = set(example_ids) - set(table.index)
    if missing:
        raise ValueError(f"{len(missing)} {split} examples have no teacher logits in {file} "
                         f"(e.g. {sorted(missing)[:3]}): rerun `dvc repro soft_labels`.")
    return np.stack(table.loc[example_ids, "logits"].to_numpy()).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.soft_labels")
    cfg = stage_config(overrides, task=args.task)
    torch.manual_seed(int(cfg.seed))
    write_soft_labels(cfg, paths.TaskPaths(args.task).soft_labels)


if __name__ == "__main__":
    run_stage(main)
