"""Stage augment: a larger transfer set, made from the unlabeled pool and labeled by the teacher.

The three rules are those of Tang et al. 2019, "Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks". One random draw per word
decides its fate. With probability p_mask the word becomes [MASK], with
probability p_replace a random word of the same kind from the pool, and
otherwise it stays. Then, with probability p_ngram, the record is cut to a random
window of 1 to 5 words. Tang et al. tag parts of speech to find words of the
same kind. ERP text has no grammar to tag, so here the kind is the word's
shape: a number, a word with digits (codes), or letters only.

Output: data/augmented/<task>.parquet with columns text and logits (the
teacher's, float32, one per class). With `augment.copies_per_record: 0` the
table is empty and the teacher is not loaded.

Usage: python -m pipeline.augment --task NAME [override ...]
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from pipeline import paths
from pipeline.config import parse_stage_args, run_stage, stage_config
from pipeline.data import load_task

log = logging.getLogger(__name__)

MASK = "[MASK]"
MAX_NGRAM = 5
SCHEMA = pa.schema([("text", pa.string()), ("logits", pa.list_(pa.float32()))])


def augmented_file(task: str) -> Path:
    return paths.TaskPaths(task).augmented


def word_kind(word: str) -> str:
    """Return the shape of a word: `number`, `code` (letters and digits) or `word`."""
    if re.fullmatch(r"[\d.,\-]+", word):
        return "number"
    if any(character.isdigit() for character in word):
        return "code"
    return "word"


def words_by_kind(texts: list[str]) -> dict[str, list[str]]:
    """Collect the distinct words of `texts` by kind, in first-seen order so that sampling is reproducible."""
    seen: dict[str, dict[str, None]] = defaultdict(dict)
    for text in texts:
        for word in text.split():
            seen[word_kind(word)][word] = None
    return {kind: list(words) for kind, words in seen.items()}


def augment_text(text: str, vocabulary: dict[str, list[str]], rng: random.Random, p_mask: float,
                 p_replace: float, p_ngram: float) -> str:
    """Return one augmented copy of `text` by masking, same-kind replacement and n-gram sampling."""
    words = text.split()
    changed = []
    for word in words:
        draw = rng.random()
        if draw < p_mask:
            changed.append(MASK)
        elif draw < p_mask + p_replace:
            changed.append(rng.choice(vocabulary.get(word_kind(word)) or [word]))
        else:
            changed.append(word)

    if changed and rng.random() < p_ngram:
        length = rng.randint(1, min(MAX_NGRAM, len(changed)))
        start = rng.randint(0, len(changed) - length)
        changed = changed[start:start + length]
    return " ".join(changed)


def augment_texts(texts: list[str], copies_per_record: int, p_mask: float, p_replace: float, p_ngram: float,
                  seed: int) -> list[str]:
    """Return `copies_per_record` augmented copies of each text, in input order, without exact duplicates."""
    rng = random.Random(seed)
    vocabulary = words_by_kind(texts)
    originals = set(texts)
    augmented: dict[str, None] = {}
    for text in texts:
        for _ in range(copies_per_record):
            copy = augment_text(text, vocabulary, rng, p_mask, p_replace, p_ngram)
            # A copy equal to an original or to an earlier copy adds no new example.
            if copy and copy not in originals:
                augmented[copy] = None
    return list(augmented)


def write_augmented(cfg: DictConfig, out_file: Path) -> pd.DataFrame:
    settings = cfg.augment
    task = str(cfg.task.name)
    texts: list[str] = []
    logits = np.zeros((0, 0), dtype=np.float32)

    copies = int(settings.copies_per_record)
    if copies > 0:
        from pipeline.soft_labels import predict_logits
        from pipeline.teacher_model import load_teacher

        pool = list(load_task(paths.TaskPaths(task).splits)["transfer"]["text"])
        texts = augment_texts(pool, copies, float(settings.p_mask), float(settings.p_replace),
                              float(settings.p_ngram), int(cfg.seed))
        log.info("Augmented %d transfer records into %d new texts; labeling them with the teacher", len(pool),
                 len(texts))
        model, tokenizer = load_teacher(paths.TaskPaths(task).teacher)
        logits = predict_logits(model, tokenizer, texts, int(cfg.task.max_length), int(cfg.soft_labels.batch_size),
                                "teacher logits augmented")

    # Arrow arrays built directly, because pandas gives an empty logits column a float64 type.
    table = pa.table({"text": pa.array(texts, pa.string()),
                      "logits": pa.array([row.tolist() for row in logits], pa.list_(pa.float32()))}, schema=SCHEMA)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(out_file)
    log.info("Wrote %d augmented rows to %s", table.num_rows, out_file)
    return table.to_pandas()


def load_augmented(file: Path, num_labels: int) -> tuple[list[str], np.ndarray]:
    """Return the augmented texts and their teacher logits; empty when the stage made none."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: run `dvc repro augment` (or python -m pipeline.augment --task NAME).")
    table = pd.read_parquet(file)
    if table.empty:
        return [], np.zeros((0, num_labels), dtype=np.float32)
    logits = np.stack(table["logits"].to_numpy()).astype(np.float32)
    if logits.shape[1] != num_labels:
        raise ValueError(f"{file} has logits for {logits.shape[1]} classes, the dataset {num_labels}: "
                         "rerun `dvc repro augment`.")
    return list(table["text"]), logits


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.augment")
    write_augmented(stage_config(overrides, task=args.task), augmented_file(args.task))


if __name__ == "__main__":
    run_stage(main)
