"""Write a trained TF-IDF baseline's log-probabilities as a soft-label file, to use it as a second teacher.

The file has the layout of data/soft_labels/<task>.parquet (example_id, split,
logits), so `distill.extra_teachers` can list it. The distill stage averages
the logits of all teachers. Log-probabilities are logits up to a constant per
row, so the students then learn from the normalized geometric mean of the
fine-tuned transformer's and TF-IDF's probabilities. TF-IDF with logistic
regression is strong on rare classes whose records share exact words or
character n-grams, where a transformer fine-tuned on few labels is weak.

Usage, after `dvc repro baseline@<task>-tfidf_logreg`:

    python -m pipeline.tfidf_soft_labels --task gl_account
    python -m pipeline.distill --task gl_account --student bilstm \
        'distill.extra_teachers=[data/soft_labels/gl_account-tfidf_logreg.parquet]'

The model saw the labels of the train split, so its train logits fit them
closely. The fine-tuned teacher's train logits have the same property.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.baselines import SKLEARN_CONFIG_FILE, SKLEARN_FILE
from pipeline.config import ConfigError, setup_logging
from pipeline.data import class_names, load_task
from pipeline.soft_labels import write_soft_label_table

log = logging.getLogger(__name__)

# Log-probability given to a class that the train split lacks, so the model never predicts it:
# log(1e-9), far below any probability that logistic regression returns for a trained class.
ABSENT_CLASS_LOG_PROBABILITY = float(np.log(1e-9))


def default_output(task: str, baseline: str) -> Path:
    return paths.TaskPaths(task).soft_labels.with_name(f"{task}-{baseline}.parquet")


def tfidf_log_probabilities(model, texts: list[str], num_classes: int) -> np.ndarray:
    """Return float32 log-probabilities of shape (len(texts), num_classes) in the dataset's label order."""
    known = model.predict_log_proba(texts)
    full = np.full((len(texts), num_classes), ABSENT_CLASS_LOG_PROBABILITY, dtype=np.float32)

    # classes_ contains the label indices seen in training, in sorted order.
    full[:, model.classes_.astype(int)] = known
    return full


def write_tfidf_soft_labels(task: str, baseline: str, out_file: Path) -> pd.DataFrame:
    """Write the log-probabilities of baseline `baseline` for every split of `task` to `out_file`."""
    folder = paths.TaskPaths(task).baseline(baseline)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: train the baseline first (`dvc repro baseline@{task}-{baseline}`).")

    # Only a tfidf_logreg baseline writes this file. The no_distill and key_majority baselines save other files.
    config_file = folder / SKLEARN_CONFIG_FILE
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("kind") != "tfidf_logreg":
        raise ConfigError(f"Baseline {baseline!r} in {folder} is not of kind tfidf_logreg: only a tfidf_logreg "
                          "baseline has probabilities to write.")

    dataset = load_task(paths.TaskPaths(task).splits)
    names = class_names(dataset)
    if config["class_names"] != names:
        raise ValueError(f"Baseline {baseline!r} was trained on other classes than the dataset of {task!r}: "
                         f"retrain it (`dvc repro baseline@{task}-{baseline}`).")
    model = joblib.load(folder / SKLEARN_FILE)

    frames = []
    for split, rows in dataset.items():
        logits = tfidf_log_probabilities(model, list(rows["text"]), len(names))
        frames.append(pd.DataFrame({"example_id": rows["example_id"], "split": split, "logits": list(logits)}))
    table = pd.concat(frames, ignore_index=True)
    write_soft_label_table(table, out_file)
    log.info("Wrote %d rows of %s log-probabilities to %s", len(table), baseline, out_file)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tfidf_soft_labels", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="key under `tasks`, e.g. gl_account")
    parser.add_argument("--baseline", default="tfidf_logreg", help="key under `baselines` of kind tfidf_logreg")
    parser.add_argument("--out", type=Path, default=None,
                        help="output Parquet file (default data/soft_labels/<task>-<baseline>.parquet)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    write_tfidf_soft_labels(args.task, args.baseline, args.out or default_output(args.task, args.baseline))


if __name__ == "__main__":
    main()
