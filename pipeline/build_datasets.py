"""Stage build_datasets: turn extracted ERP records into a supervised task on disk.

The first task maps an invoice line (description, vendor, amount) to its GL
account. Splits are drawn by invoice, so the lines of one invoice never sit on
both sides. Of the invoices left after test and validation, the share
`task.label_budget` keeps its labels (train). The rest form the transfer pool,
stored with the label -1, so students only ever see the teacher's view of it.

Usage: python -m pipeline.build_datasets [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from omegaconf import DictConfig

from pipeline import paths
from pipeline.config import ConfigError, run_stage, stage_config
from pipeline.features import format_invoice_line
from pipeline.tokenization import train_student_tokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "transfer", "validation", "test")
NO_LABEL = -1


def load_invoice_lines(extracted: Path) -> pd.DataFrame:
    """Join invoice lines with their invoice, vendor and account."""
    def read(table: str) -> pd.DataFrame:
        file = extracted / f"{table}.parquet"
        if not file.is_file():
            raise ConfigError(f"{file} not found: run the extract stage first (`dvc repro extract`).")
        return pd.read_parquet(file)

    lines = read("invoice_lines")
    invoices = read("invoices")[["invoice_id", "vendor_id", "posting_date"]]
    vendors = read("vendors")[["vendor_id", "name"]].rename(columns={"name": "vendor"})
    accounts = read("gl_accounts")[["account_id", "name"]].rename(columns={"name": "account_name"})

    # Extract quarantines orphans, so these inner joins drop nothing; the check proves it.
    frame = (lines.merge(invoices, on="invoice_id", how="inner")
             .merge(vendors, on="vendor_id", how="inner")
             .merge(accounts, left_on="gl_account_id", right_on="account_id", how="inner"))
    if len(frame) != len(lines):
        raise ConfigError(
            f"{len(lines) - len(frame)} invoice lines lost their invoice, vendor or account in the "
            "join; rerun extract, which quarantines such orphans."
        )
    if frame.empty:
        raise ConfigError("No invoice lines to build a dataset from: the extracted table is empty.")
    return frame.sort_values("line_id", kind="stable").reset_index(drop=True)


def assign_splits(groups: pd.Series, cfg: DictConfig) -> pd.Series:
    """Assign each group (invoice) to one split, at random with the config's seed."""
    unique = np.array(sorted(groups.unique()))
    order = np.random.default_rng(int(cfg.seed)).permutation(len(unique))
    shuffled = unique[order]

    n_test = int(round(len(unique) * cfg.task.test_fraction))
    n_validation = int(round(len(unique) * cfg.task.validation_fraction))
    n_pool = len(unique) - n_test - n_validation
    n_train = int(round(n_pool * cfg.task.label_budget))
    if min(n_test, n_validation, n_train, n_pool - n_train) < 1:
        raise ConfigError(
            f"{len(unique)} invoices are too few for the split fractions {dict(cfg.task)}: "
            "every split needs at least one invoice. Simulate more invoices or change the fractions."
        )

    bounds = np.cumsum([n_test, n_validation, n_train])
    split_of = {}
    for index, group in enumerate(shuffled):
        if index < bounds[0]:
            split_of[group] = "test"
        elif index < bounds[1]:
            split_of[group] = "validation"
        elif index < bounds[2]:
            split_of[group] = "train"
        else:
            split_of[group] = "transfer"
    return groups.map(split_of)


def build(cfg: DictConfig, extracted: Path, out_dir: Path, report_file: Path) -> dict:
    task = str(cfg.task.name)
    frame = load_invoice_lines(extracted)
    frame["text"] = [format_invoice_line(d, v, a) for d, v, a in
                     zip(frame["description"], frame["vendor"], frame["amount"])]
    frame["split"] = assign_splits(frame["invoice_id"], cfg)

    class_names = sorted(frame["gl_account_id"].unique())
    label_of = {name: index for index, name in enumerate(class_names)}
    frame["label"] = frame["gl_account_id"].map(label_of)
    names = dict(zip(frame["gl_account_id"], frame["account_name"]))

    features = Features({
        "example_id": Value("string"),
        "invoice_id": Value("string"),
        "text": Value("string"),
        "vendor": Value("string"),
        "amount": Value("float64"),
        "label": ClassLabel(names=class_names),
    })
    splits = {}
    card = {"task": task, "input": "description | vendor | amount bucket", "group_key": "invoice_id",
            "split_policy": "random by invoice", "label_budget": float(cfg.task.label_budget),
            "classes": {name: names[name] for name in class_names}, "splits": {}}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        labels = part["label"].to_numpy() if split != "transfer" else np.full(len(part), NO_LABEL)
        splits[split] = Dataset.from_dict({
            "example_id": part["line_id"].tolist(),
            "invoice_id": part["invoice_id"].tolist(),
            "text": part["text"].tolist(),
            "vendor": part["vendor"].tolist(),
            "amount": part["amount"].astype(float).tolist(),
            "label": labels.tolist(),
        }, features=features)
        counts = part["gl_account_id"].value_counts().to_dict() if split != "transfer" else {}
        card["splits"][split] = {
            "examples": len(part),
            "invoices": int(part["invoice_id"].nunique()),
            "posting_dates": [str(part["posting_date"].min()), str(part["posting_date"].max())],
            "class_counts": {name: int(counts.get(name, 0)) for name in class_names} if counts else None,
        }

    train_classes = set(frame.loc[frame["split"] == "train", "gl_account_id"])
    unseen = {split: sorted(set(frame.loc[frame["split"] == split, "gl_account_id"]) - train_classes)
              for split in ("validation", "test")}
    card["classes_not_in_train"] = unseen
    for split, missing in unseen.items():
        if missing:
            log.warning("%s has %d class(es) with no training example: %s. The teacher can only "
                        "learn them from the transfer pool's absence; raise task.label_budget.",
                        split, len(missing), missing)

    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    DatasetDict(splits).save_to_disk(str(staging / task))
    unlabeled_text = list(splits["train"]["text"]) + list(splits["transfer"]["text"])
    train_student_tokenizer(unlabeled_text, int(cfg.task.student_vocab_size), staging / f"{task}_tokenizer")
    (staging / f"{task}_card.json").write_text(json.dumps(card, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)

    summary = {task: {split: {"examples": card["splits"][split]["examples"]} for split in SPLITS}}
    summary[task]["classes"] = len(class_names)
    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("Built %s: %s examples per split, %d classes", task,
             {split: card["splits"][split]["examples"] for split in SPLITS}, len(class_names))
    return card


def main(argv: list[str] | None = None) -> None:
    cfg = stage_config(argv)
    build(cfg, paths.EXTRACTED, paths.DATASETS, paths.REPORTS / "datasets.json")


if __name__ == "__main__":
    run_stage(main)
