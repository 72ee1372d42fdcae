"""Augmentation of the transfer pool: masking, same-kind replacement, n-gram sampling."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from conftest import select_task
from pipeline.augment import (MASK, augment_text, augment_texts, load_augmented, word_kind, words_by_kind,
                              write_augmented)

TEXTS = ["toner cartridge HP-410 12.50", "legal advice march 1200.00", "freight charges DHL-7 85.10"]


@pytest.mark.parametrize(("word", "kind"), [("12.50", "number"), ("1,200", "number"), ("HP-410", "code"),
                                            ("toner", "word")])
def test_word_kind_cases(word, kind):
    assert word_kind(word) == kind


def test_mask_all_words():
    text = augment_text(TEXTS[0], words_by_kind(TEXTS), random.Random(0), p_mask=1.0, p_replace=0.0, p_ngram=0.0)

    assert text.split() == [MASK] * 4


def test_replacement_keeps_kind():
    vocabulary = words_by_kind(TEXTS)
    text = augment_text(TEXTS[0], vocabulary, random.Random(3), p_mask=0.0, p_replace=1.0, p_ngram=0.0)

    kinds = [word_kind(word) for word in text.split()]
    assert kinds == ["word", "word", "code", "number"]
    for word in text.split():
        assert word in vocabulary[word_kind(word)]


def test_ngram_sampling_keeps_window():
    words = "a b c d e f g h".split()
    for seed in range(20):
        text = augment_text(" ".join(words), {}, random.Random(seed), p_mask=0.0, p_replace=0.0, p_ngram=1.0)
        window = text.split()

        assert 1 <= len(window) <= 5
        start = words.index(window[0])
        assert words[start:start + len(window)] == window


def test_augment_texts_deterministic():
    first = augment_texts(TEXTS, 3, 0.3, 0.3, 0.5, seed=7)
    second = augment_texts(TEXTS, 3, 0.3, 0.3, 0.5, seed=7)

    assert first == second
    assert set(first).isdisjoint(TEXTS)
    assert len(first) == len(set(first))


def test_load_augmented_empty(tmp_path):
    file = tmp_path / "augmented.parquet"
    pd.DataFrame({"text": pd.Series([], dtype=str), "logits": pd.Series([], dtype=object)}).to_parquet(file)

    texts, logits = load_augmented(file, num_labels=4)

    assert texts == []
    assert logits.shape == (0, 4)


def test_load_augmented_class_mismatch(tmp_path):
    file = tmp_path / "augmented.parquet"
    pd.DataFrame({"text": ["a"], "logits": [np.zeros(3, dtype=np.float32)]}).to_parquet(file)

    with pytest.raises(ValueError, match="3 classes"):
        load_augmented(file, num_labels=4)


def test_load_augmented_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro augment"):
        load_augmented(tmp_path / "absent.parquet", num_labels=4)


def test_augment_off_writes_empty_file(tmp_path, default_config):
    select_task(default_config, "gl_account")
    file = tmp_path / "augmented" / "gl_account.parquet"

    write_augmented(default_config, file)
    texts, logits = load_augmented(file, num_labels=4)

    assert texts == []
    assert logits.shape == (0, 4)
    assert not file.with_suffix(".partial").exists()
