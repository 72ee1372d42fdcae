"""Stage baseline: the models that distillation has to beat, trained on the labeled split alone.

Two kinds, chosen by `baselines.<name>.kind`:
- `no_distill`: a student architecture (`baselines.<name>.student` names a key
  of `students`) with the same settings and epochs as the distilled student,
  trained with cross-entropy on the labeled split only, never seeing the
  teacher or the transfer pool;
- `tfidf_logreg`: TF-IDF over word and character n-grams with logistic
  regression (scikit-learn);
- `key_majority`: the most frequent label per value of one field of the
  task (`baselines.<name>.key`, such as merchant_name), a lookup table.

Each lands in models/<task>/baselines/<name>/ with the id of its MLflow run
`<task>/baseline/<name>`; the compare stage evaluates it through `evaluate_baseline`.

Usage: python -m pipeline.baselines --task NAME --baseline NAME [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import joblib
import lightning as L
import mlflow
import numpy as np
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.feature_extraction.text import TfidfVectorizer
from threadpoolctl import threadpool_limits

from pipeline import paths
from pipeline.config import ConfigError, parse_stage_args, run_stage, stage_config, to_container
from pipeline.data import TextRows, class_names, load_task
from pipeline.key_majority import TABLE_FILE as KEY_MAJORITY_FILE
from pipeline.key_majority import fit_key_majority, key_majority_figures, predict_key_majority, save_key_majority
from pipeline.metrics import classification_figures
from pipeline.students import CONFIG_FILE as STUDENT_CONFIG_FILE
from pipeline.tracking import save_run_info, section, start_run

log = logging.getLogger(__name__)

SKLEARN_FILE = "model.joblib"
SKLEARN_CONFIG_FILE = "baseline_config.json"


def train_baseline(cfg: DictConfig, name: str) -> dict:
    """Train baseline `name` from `cfg.baselines` and save it to models/<task>/baselines/<name>/."""
    baselines = cfg.get("baselines") or {}
    if name not in baselines:
        raise ConfigError(f"Unknown baseline {name!r}: params.yaml defines {', '.join(baselines) or 'none'}.")
    baseline_cfg = baselines[name]
    L.seed_everything(int(cfg.seed), workers=True)
    task_paths = paths.TaskPaths(str(cfg.task.name))
    dataset = load_task(task_paths.splits)

    if baseline_cfg.kind == "no_distill":
        figures = train_without_distillation(cfg, name, baseline_cfg, dataset)
    elif baseline_cfg.kind == "key_majority":
        figures = train_key_majority(cfg, name, baseline_cfg, dataset)
    else:
        figures = train_tfidf_logreg(cfg, name, baseline_cfg, dataset)

    report = task_paths.reports / "baselines" / f"{name}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def train_without_distillation(cfg: DictConfig, name: str, baseline_cfg: DictConfig, dataset) -> dict:
    """Train the student `baseline_cfg.student` with cross-entropy on the labeled split alone."""
    from pipeline.distill import NO_DISTILLATION, fit_student

    student_cfg = cfg.students[str(baseline_cfg.student)]
    train_rows = TextRows(list(dataset["train"]["text"]), list(dataset["train"]["label"]))
    validation_rows = TextRows(list(dataset["validation"]["text"]), list(dataset["validation"]["label"]))
    log.info("Baseline %s: student %s without distillation on %d labeled examples", name,
             baseline_cfg.student, len(train_rows))

    run = start_run(cfg, f"{cfg.task.name}/baseline/{name}", "baseline", section(cfg, "seed", "task") |
                    {"baseline": to_container(baseline_cfg), "student": to_container(student_cfg)})
    mlflow.set_tags({"student": str(student_cfg.arch), "method": "no_distill"})
    return fit_student(cfg, name, student_cfg, train_rows, validation_rows, class_names(dataset), NO_DISTILLATION,
                       run, paths.TaskPaths(str(cfg.task.name)).baseline(name))


def train_key_majority(cfg: DictConfig, name: str, baseline_cfg: DictConfig, dataset) -> dict:
    """Count the labels per key value in the labeled split and save the lookup table."""
    key = str(baseline_cfg.key)
    if key not in dataset["train"].column_names:
        fields = [column for column in dataset["train"].column_names if column not in ("text", "label")]
        raise ConfigError(f"baselines.{name}.key={key!r} is not a field of task {cfg.task.name!r} ({fields}); "
                          "set it to one of them or remove the baseline.")
    names = class_names(dataset)
    model = fit_key_majority(list(dataset["train"][key]), list(dataset["train"]["label"]))
    log.info("Baseline %s: most frequent label of %d %s values", name, len(model["table"]), key)

    run = start_run(cfg, f"{cfg.task.name}/baseline/{name}", "baseline", section(cfg, "seed", "task") |
                    {"baseline": to_container(baseline_cfg)})
    mlflow.set_tags({"student": "key_majority", "method": "no_distill"})
    try:
        validation = classification_figures(np.array(dataset["validation"]["label"]),
                                            predict_key_majority(model, list(dataset["validation"][key])))
        figures = {"val/best_macro_f1": validation["macro_f1"], "val/accuracy": validation["accuracy"]}
        mlflow.log_metrics(figures)
        out_dir = paths.TaskPaths(str(cfg.task.name)).baseline(name)
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save_key_majority(model, key, names, staging)
        save_run_info(staging, run)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        mlflow.end_run()
    return figures


def build_tfidf_logreg(baseline_cfg: DictConfig, seed: int) -> Pipeline:
    """TF-IDF of word and character n-grams (sublinear term frequency), then multinomial logistic regression."""
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer="word", ngram_range=tuple(baseline_cfg.word_ngrams), sublinear_tf=True,
                                  min_df=int(baseline_cfg.min_df))),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(baseline_cfg.char_ngrams),
                                  sublinear_tf=True, min_df=int(baseline_cfg.min_df))),
    ])
    classifier = LogisticRegression(C=float(baseline_cfg.C), max_iter=int(baseline_cfg.max_iter),
                                    class_weight=baseline_cfg.class_weight, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def train_tfidf_logreg(cfg: DictConfig, name: str, baseline_cfg: DictConfig, dataset) -> dict:
    names = class_names(dataset)
    texts, labels = list(dataset["train"]["text"]), np.array(dataset["train"]["label"])
    log.info("Baseline %s: TF-IDF + logistic regression on %d labeled examples", name, len(texts))

    run = start_run(cfg, f"{cfg.task.name}/baseline/{name}", "baseline", section(cfg, "seed", "task") |
                    {"baseline": to_container(baseline_cfg)})
    mlflow.set_tags({"student": "tfidf_logreg", "method": "no_distill"})
    try:
        model = build_tfidf_logreg(baseline_cfg, int(cfg.seed))
        started = time.perf_counter()
        model.fit(texts, labels)
        seconds = time.perf_counter() - started

        validation = classification_figures(np.array(dataset["validation"]["label"]),
                                            model.predict(list(dataset["validation"]["text"])))
        figures = {"val/best_macro_f1": validation["macro_f1"], "val/accuracy": validation["accuracy"],
                   "train/seconds": seconds}
        mlflow.log_metrics(figures)

        # The model predicts class indices; labels absent from train never appear in its output.
        out_dir = paths.TaskPaths(str(cfg.task.name)).baseline(name)
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        joblib.dump(model, staging / SKLEARN_FILE)
        config = {"name": name, "kind": "tfidf_logreg", "class_names": names}
        (staging / SKLEARN_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_run_info(staging, run)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        mlflow.end_run()

    log.info("Baseline %s trained in %.1f s: %s", name, seconds, figures)
    return figures


def evaluate_baseline(folder: Path, texts: list[str], labels: np.ndarray, cfg: DictConfig,
                      records=None) -> tuple[np.ndarray, dict[str, float]]:
    """Return test predictions and the comparison figures of the baseline saved in `folder`.

    `records` (the test split with its raw fields) is needed by key_majority only.
    """
    if (folder / STUDENT_CONFIG_FILE).is_file():
        from pipeline.compare import model_figures
        from pipeline.students import WEIGHTS_FILE, load_student

        student, tokenizer, _ = load_student(folder)
        return model_figures(student, student, tokenizer, folder / WEIGHTS_FILE, texts, labels, cfg, folder.name)
    if (folder / SKLEARN_FILE).is_file():
        return _sklearn_figures(folder, texts, labels, cfg)
    if (folder / KEY_MAJORITY_FILE).is_file():
        key = json.loads((folder / KEY_MAJORITY_FILE).read_text())["key"]
        if records is None:
            raise ValueError(f"Baseline {folder.name} looks up {key!r}, so it needs the test records.")
        return key_majority_figures(folder, list(records[key]), labels, int(cfg.compare.latency_examples),
                                    int(cfg.compare.warmup))
    raise FileNotFoundError(f"No baseline model in {folder}: run `dvc repro baseline@{folder.name}`.")


def _sklearn_figures(folder: Path, texts: list[str], labels: np.ndarray,
                     cfg: DictConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Quality, size and latency of a scikit-learn text pipeline, split as for the PyTorch models.

    The vectorizer takes the tokenizer's place (`latency/tokenize_*`), and the
    classifier's predict_proba on one vectorized record takes the forward
    pass's place (`latency/b1_*`). `latency/end_to_end_b1_p50_ms` times both
    on the raw text.
    """
    model: Pipeline = joblib.load(folder / SKLEARN_FILE)
    vectorizer, classifier = model.named_steps["features"], model.named_steps["classifier"]
    predictions = model.predict(texts)
    figures = {f"test/{key}": value for key, value in classification_figures(labels, predictions).items()}
    figures["size/params"] = float(classifier.coef_.size + classifier.intercept_.size)
    figures["size/bytes"] = float((folder / SKLEARN_FILE).stat().st_size)

    timed = texts[: int(cfg.compare.latency_examples)]
    warmup, threads = int(cfg.compare.warmup), int(cfg.compare.threads)
    with threadpool_limits(limits=threads):
        figures |= _time_sklearn(vectorizer, classifier, model, timed, warmup, int(cfg.compare.throughput_batches))
    figures["latency/threads"] = float(threads)
    return predictions, figures


def _time_sklearn(vectorizer, classifier, model: Pipeline, texts: list[str], warmup: int,
                  throughput_batches: int, batch_size: int = 64) -> dict[str, float]:
    for index in range(warmup):
        model.predict_proba([texts[index % len(texts)]])

    vectorize_ms, forward_ms, end_to_end_ms = [], [], []
    for text in texts:
        start = time.perf_counter_ns()
        vector = vectorizer.transform([text])
        vectorize_ms.append((time.perf_counter_ns() - start) / 1e6)

        start = time.perf_counter_ns()
        classifier.predict_proba(vector)
        forward_ms.append((time.perf_counter_ns() - start) / 1e6)

        start = time.perf_counter_ns()
        model.predict_proba([text])
        end_to_end_ms.append((time.perf_counter_ns() - start) / 1e6)

    batches = [vectorizer.transform([texts[(b * batch_size + i) % len(texts)] for i in range(batch_size)])
               for b in range(throughput_batches)]
    start = time.perf_counter_ns()
    for batch in batches:
        classifier.predict_proba(batch)
    seconds = (time.perf_counter_ns() - start) / 1e9

    return {
        "latency/b1_p50_ms": float(np.percentile(forward_ms, 50)),
        "latency/b1_p95_ms": float(np.percentile(forward_ms, 95)),
        "latency/tokenize_p50_ms": float(np.percentile(vectorize_ms, 50)),
        "latency/end_to_end_b1_p50_ms": float(np.percentile(end_to_end_ms, 50)),
        "throughput/b64_per_s": throughput_batches * batch_size / seconds,
    }


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.baselines",
                                       ("baseline", "key under `baselines` in params.yaml, e.g. tfidf_logreg"))
    train_baseline(stage_config(overrides, task=args.task), args.baseline)


if __name__ == "__main__":
    run_stage(main)
