"""Baselines trained on a tiny task on disk, evaluated the way the compare stage does."""

from __future__ import annotations

import json
import math

import joblib

import mlflow
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from omegaconf import OmegaConf

from conftest import select_task
from pipeline import paths
from pipeline.baselines import build_tfidf_logreg, evaluate_baseline, train_baseline
from pipeline.compose_params import compose_config
from pipeline.config import ConfigError, validate
from pipeline.data import load_task
from pipeline.soft_labels import load_soft_labels
from pipeline.tfidf_soft_labels import (ABSENT_CLASS_LOG_PROBABILITY, default_output, tfidf_log_probabilities,
                                        write_tfidf_soft_labels)
from pipeline.tokenization import train_student_tokenizer

FIGURES = ["test/accuracy", "test/macro_f1", "size/params", "size/bytes", "latency/b1_p50_ms",
           "latency/b1_p95_ms", "latency/tokenize_p50_ms", "throughput/b64_per_s"]
WORDS = {"toner": 0, "freight": 1, "legal": 2}
TASK = paths.TaskPaths("gl_account")


def _split(count: int, offset: int) -> dict:
    # Each text names its class's word next to a running number, so the classes separate on one word.
    texts, labels = [], []
    for index in range(count):
        word, label = list(WORDS.items())[index % len(WORDS)]
        texts.append(f"{word} invoice line {offset + index}")
        labels.append(label)
    return {"example_id": [f"{offset + i}" for i in range(count)], "text": texts, "label": labels}


@pytest.fixture()
def tiny_task(in_tmp_dir):
    features = Features({"example_id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=list(WORDS))})
    splits = {"train": _split(30, 0), "transfer": _split(30, 100), "validation": _split(12, 200),
              "test": _split(12, 300)}
    dataset = DatasetDict({name: Dataset.from_dict(rows, features=features) for name, rows in splits.items()})
    dataset.save_to_disk(str(TASK.splits))
    train_student_tokenizer(splits["train"]["text"] + splits["transfer"]["text"], 60, TASK.tokenizer)

    cfg = select_task(compose_config(["experiment=smoke"]), "gl_account")
    OmegaConf.update(cfg, "students.bilstm.epochs", 2)
    OmegaConf.update(cfg, "compare.latency_examples", 5)
    OmegaConf.update(cfg, "compare.warmup", 2)
    OmegaConf.update(cfg, "compare.throughput_batches", 1)
    mlflow.set_tracking_uri(f"sqlite:///{in_tmp_dir / 'mlflow.db'}")
    yield cfg, splits["test"]
    mlflow.set_tracking_uri(None)


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def test_tfidf_baseline_roundtrip(tiny_task):
    cfg, test = tiny_task
    train_baseline(cfg, "tfidf_logreg")
    folder = TASK.baseline("tfidf_logreg")

    predictions, figures = evaluate_baseline(folder, test["text"], np.array(test["label"]), cfg)

    assert predictions.shape == (12,)
    for figure in FIGURES:
        assert _finite(figures.get(figure)), f"{figure} = {figures.get(figure)}"
    assert figures["test/accuracy"] == 1.0
    assert (folder / "mlflow_run.json").is_file()
    assert not folder.with_name("tfidf_logreg.partial").exists()


def test_no_distill_baseline_roundtrip(tiny_task):
    cfg, test = tiny_task
    train_baseline(cfg, "bilstm_no_distill")
    folder = TASK.baseline("bilstm_no_distill")

    predictions, figures = evaluate_baseline(folder, test["text"], np.array(test["label"]), cfg)

    assert predictions.shape == (12,)
    for figure in FIGURES:
        assert _finite(figures.get(figure)), f"{figure} = {figures.get(figure)}"
    assert json.loads((folder / "student_config.json").read_text())["arch"] == "bilstm"


def test_baseline_run_tagged(tiny_task):
    cfg, _ = tiny_task
    train_baseline(cfg, "tfidf_logreg")
    run_id = json.loads((TASK.baseline("tfidf_logreg") / "mlflow_run.json").read_text())["run_id"]

    run = mlflow.get_run(run_id)

    assert run.info.run_name == "gl_account/baseline/tfidf_logreg"
    assert run.data.tags["method"] == "no_distill"
    assert run.data.tags["student"] == "tfidf_logreg"
    assert run.data.tags["task"] == "gl_account"
    assert run.data.tags["seed"] == str(cfg.seed)


def test_unknown_baseline_rejected(tiny_task):
    cfg, _ = tiny_task

    with pytest.raises(ConfigError, match="nearest_neighbour"):
        train_baseline(cfg, "nearest_neighbour")


def test_missing_baseline_folder_rejected(tmp_path, default_config):
    with pytest.raises(FileNotFoundError, match="dvc repro baseline@absent"):
        evaluate_baseline(tmp_path / "absent", ["text"], np.array([0]), default_config)


def test_unknown_baseline_kind_invalid(default_config):
    default_config.baselines.tfidf_logreg.kind = "svm"

    with pytest.raises(ConfigError, match="baselines.tfidf_logreg.kind='svm'"):
        validate(default_config)


def test_no_distill_needs_known_student(default_config):
    default_config.baselines.bilstm_no_distill.student = "gru"

    with pytest.raises(ConfigError, match="baselines.bilstm_no_distill.student='gru'"):
        validate(default_config)


def test_unknown_soft_loss_invalid(default_config):
    default_config.distill.soft_loss = "cosine"

    with pytest.raises(ConfigError, match="distill.soft_loss='cosine'"):
        validate(default_config)


@pytest.mark.parametrize("alpha_end", [-0.1, 1.5])
def test_alpha_end_out_of_range_invalid(default_config, alpha_end):
    default_config.distill.alpha_end = alpha_end

    with pytest.raises(ConfigError, match="distill.alpha_end"):
        validate(default_config)


def test_zero_temperature_end_invalid(default_config):
    default_config.distill.temperature_end = 0

    with pytest.raises(ConfigError, match="distill.temperature_end"):
        validate(default_config)


@pytest.mark.parametrize("preset", ["distill=logit_mse", "distill=kd_annealed", "experiment=zoo", "augment=tang"])
def test_presets_valid(preset):
    validate(compose_config([preset]))


def test_augment_probabilities_sum_invalid(default_config):
    default_config.augment.p_mask = 0.6
    default_config.augment.p_replace = 0.6

    with pytest.raises(ConfigError, match="exceeds 1"):
        validate(default_config)


def test_key_majority_lookup_and_fallback():
    from pipeline.key_majority import fit_key_majority, predict_key_majority

    model = fit_key_majority(["shell", "shell", "shell", "tesco", "tesco"], [2, 2, 0, 1, 0])

    assert model["table"] == {"shell": 2, "tesco": 0}
    assert model["fallback"] == 0
    assert predict_key_majority(model, ["shell", "tesco", "aldi"]).tolist() == [2, 0, 0]


def test_key_majority_baseline_roundtrip(in_tmp_dir):
    from pipeline.key_majority import TABLE_FILE

    features = Features({"example_id": Value("string"), "text": Value("string"), "merchant": Value("string"),
                         "label": ClassLabel(names=list(WORDS))})
    rows = {"example_id": ["1", "2", "3", "4"], "text": ["a", "b", "c", "d"], "merchant": ["m1", "m1", "m2", "m3"],
            "label": [1, 1, 2, 0]}
    DatasetDict({split: Dataset.from_dict(rows, features=features)
                 for split in ("train", "transfer", "validation", "test")}).save_to_disk(str(TASK.splits))
    cfg = select_task(compose_config(["experiment=smoke"]), "gl_account")
    OmegaConf.update(cfg, "baselines.merchant_majority", {"kind": "key_majority", "key": "merchant"}, force_add=True)
    mlflow.set_tracking_uri(f"sqlite:///{in_tmp_dir / 'mlflow.db'}")
    try:
        train_baseline(cfg, "merchant_majority")
    finally:
        mlflow.set_tracking_uri(None)
    folder = TASK.baseline("merchant_majority")
    test = load_task(TASK.splits)["test"]

    predictions, figures = evaluate_baseline(folder, test["text"], np.array(test["label"]), cfg, test)

    assert (folder / TABLE_FILE).is_file()
    assert predictions.tolist() == [1, 1, 2, 0]
    assert figures["test/accuracy"] == 1.0
    for figure in FIGURES:
        assert _finite(figures.get(figure)), f"{figure} = {figures.get(figure)}"


def test_key_majority_unknown_field_rejected(in_tmp_dir):
    features = Features({"example_id": Value("string"), "text": Value("string"), "label": ClassLabel(names=["a"])})
    rows = {"example_id": ["1"], "text": ["a"], "label": [0]}
    DatasetDict({split: Dataset.from_dict(rows, features=features)
                 for split in ("train", "transfer", "validation", "test")}).save_to_disk(str(TASK.splits))
    cfg = select_task(compose_config(["experiment=smoke"]), "gl_account")
    OmegaConf.update(cfg, "baselines.merchant_majority", {"kind": "key_majority", "key": "merchant"}, force_add=True)

    with pytest.raises(ConfigError, match="key='merchant' is not a field of task 'gl_account'"):
        train_baseline(cfg, "merchant_majority")


def test_tfidf_soft_labels_match_probabilities(tiny_task):
    cfg, _ = tiny_task
    train_baseline(cfg, "tfidf_logreg")
    out_file = default_output("gl_account", "tfidf_logreg")

    table = write_tfidf_soft_labels("gl_account", "tfidf_logreg", out_file)

    dataset = load_task(TASK.splits)
    assert len(table) == sum(len(rows) for rows in dataset.values())
    model = joblib.load(TASK.baseline("tfidf_logreg") / "model.joblib")
    for split, rows in dataset.items():
        logits = load_soft_labels(out_file, split, list(rows["example_id"]))
        assert logits.shape == (len(rows), len(WORDS))
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probabilities, model.predict_proba(list(rows["text"])), atol=1e-5)
    assert not out_file.with_suffix(".partial").exists()


def test_tfidf_soft_labels_absent_class_floor():
    texts = ["toner cartridge", "toner drum", "legal advice", "legal fees"]
    model = build_tfidf_logreg(OmegaConf.create({"word_ngrams": [1, 1], "char_ngrams": [2, 3], "min_df": 1,
                                                 "C": 10.0, "max_iter": 200, "class_weight": None}), seed=0)
    model.fit(texts, np.array([0, 0, 2, 2]))

    logits = tfidf_log_probabilities(model, ["toner refill", "legal opinion"], num_classes=3)

    assert logits.shape == (2, 3)
    assert np.all(logits[:, 1] == np.float32(ABSENT_CLASS_LOG_PROBABILITY))
    np.testing.assert_allclose(logits[:, [0, 2]], model.predict_log_proba(["toner refill", "legal opinion"]),
                               rtol=1e-6)
    assert list(logits.argmax(axis=1)) == [0, 2]


def test_tfidf_soft_labels_need_tfidf_baseline(tiny_task):
    cfg, _ = tiny_task
    train_baseline(cfg, "bilstm_no_distill")

    with pytest.raises(ConfigError, match="bilstm_no_distill.*not of kind tfidf_logreg"):
        write_tfidf_soft_labels("gl_account", "bilstm_no_distill", default_output("gl_account", "x"))
    with pytest.raises(FileNotFoundError, match="dvc repro baseline@gl_account-tfidf_logreg"):
        write_tfidf_soft_labels("gl_account", "tfidf_logreg", default_output("gl_account", "x"))
