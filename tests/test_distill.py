"""Soft labels of several teachers, averaged by the distill stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from conftest import select_task
from pipeline.config import ConfigError
from pipeline.distill import _rows, soft_labels_files


def _soft_labels(file, logits: list[list[float]]) -> None:
    pd.DataFrame({"example_id": ["a", "b"], "split": "train",
                  "logits": [np.array(row, dtype=np.float32) for row in logits]}).to_parquet(file)


def test_teachers_logits_averaged(tmp_path):
    dataset = DatasetDict({"train": Dataset.from_dict({"example_id": ["b", "a"], "text": ["y", "x"],
                                                       "label": [1, 0]})})
    _soft_labels(tmp_path / "one.parquet", [[1.0, 3.0], [0.0, -2.0]])
    _soft_labels(tmp_path / "two.parquet", [[3.0, 1.0], [4.0, 2.0]])

    rows = _rows(dataset, "train", [tmp_path / "one.parquet", tmp_path / "two.parquet"])

    # Rows follow the dataset's order (b, a), not the files' order.
    np.testing.assert_allclose(rows.teacher_logits, [[2.0, 0.0], [2.0, 2.0]])
    assert rows.labels == [1, 0]


def test_logit_adjustment_subtracted_after_averaging(tmp_path):
    dataset = DatasetDict({"train": Dataset.from_dict({"example_id": ["a", "b"], "text": ["x", "y"],
                                                       "label": [0, 0]})})
    _soft_labels(tmp_path / "one.parquet", [[1.0, 3.0], [0.0, -2.0]])
    _soft_labels(tmp_path / "two.parquet", [[3.0, 1.0], [4.0, 2.0]])

    rows = _rows(dataset, "train", [tmp_path / "one.parquet", tmp_path / "two.parquet"],
                 adjustment=np.array([0.5, -1.0], dtype=np.float32))

    np.testing.assert_allclose(rows.teacher_logits, [[1.5, 3.0], [1.5, 1.0]])


def test_missing_extra_teacher_rejected(default_config, tmp_path):
    select_task(default_config, "gl_account")
    default_config.distill.extra_teachers = [str(tmp_path / "absent.parquet")]

    with pytest.raises(ConfigError, match="absent.parquet"):
        soft_labels_files(default_config)
