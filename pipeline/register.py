"""Stage register: put the task's best exported student in the MLflow model registry.

The champion is the ONNX student (fp32 or int8) with the highest test macro-F1
among those that keep at least `registry.min_retention` of the teacher's
macro-F1; it is registered as `<task>-student` with the alias `champion`.
When no student qualifies, nothing is registered and reports/registry.json gives the reason.

Usage: python -m pipeline.register --task NAME [override ...]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from pipeline import paths
from pipeline.config import parse_stage_args, run_stage, stage_config
from pipeline.data import load_task
from pipeline.export import FP32_FILE, INT8_FILE
from pipeline.features import INPUTS_FILE, InputEncoder
from pipeline.serving import StudentModel
from pipeline.students import CONFIG_FILE
from pipeline.tracking import start_run

log = logging.getLogger(__name__)

ALIAS = "champion"
EXPORT_FILES = {"onnx": FP32_FILE, "onnx_int8": INT8_FILE}


def choose_champion(metrics: dict[str, dict[str, float]], min_retention: float) -> tuple[str, str] | None:
    """Return (student, runtime) of the best qualifying ONNX export, or None."""
    candidates = []
    for model, figures in metrics.items():
        if "@" not in model:
            continue
        student, runtime = model.split("@", 1)
        if runtime in EXPORT_FILES and figures.get("retention/macro_f1", 0.0) >= min_retention:
            candidates.append((figures["test/macro_f1"], -figures.get("latency/b1_p50_ms", 0.0), student, runtime))
    if not candidates:
        return None
    _, _, student, runtime = max(candidates)
    return student, runtime


def input_example(task_paths: paths.TaskPaths) -> pd.DataFrame:
    """Return the first two test records with the task's input columns, as the model's input example."""
    encoder = InputEncoder.load(task_paths.datasets / INPUTS_FILE)
    test = load_task(task_paths.splits)["test"].select(range(2))
    return test.to_pandas()[encoder.fields]


def register_student(cfg: DictConfig, student: str, runtime: str) -> dict:
    """Log the pyfunc in an MLflow run, register it and point the champion alias at it."""
    task_paths = paths.TaskPaths(str(cfg.task.name))
    folder = task_paths.student(student)
    model_name = f"{cfg.task.name}-student"
    artifacts = {"onnx_model": str(task_paths.onnx_student(student) / EXPORT_FILES[runtime]), "tokenizer": str(folder),
                 "student_config": str(folder / CONFIG_FILE), "inputs": str(task_paths.datasets / INPUTS_FILE)}
    example = input_example(task_paths)

    python_model = StudentModel()
    example_output = pd.DataFrame({"label": ["610100"], "probability": [0.9], "top_3": ["[]"]})
    start_run(cfg, f"{cfg.task.name}/register/{student}@{runtime}", "register", {"student": student, "runtime": runtime})
    try:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=python_model, artifacts=artifacts,
            code_paths=[str(Path(__file__).resolve().parent)],
            signature=infer_signature(example, example_output), input_example=example,
            registered_model_name=model_name,
            pip_requirements=["onnxruntime", "transformers", "tokenizers", "pandas", "numpy", "mlflow"],
        )
    finally:
        mlflow.end_run()

    version = info.registered_model_version
    MlflowClient().set_registered_model_alias(model_name, ALIAS, version)
    log.info("Registered %s@%s as %s version %s, alias %s", student, runtime, model_name, version, ALIAS)
    return {"registered_model": model_name, "version": int(version), "alias": ALIAS, "student": student,
            "runtime": runtime, "model_uri": f"models:/{model_name}@{ALIAS}"}


def register(cfg: DictConfig, report_file: Path) -> dict:
    metrics = json.loads((paths.TaskPaths(str(cfg.task.name)).reports / "compare.json").read_text())
    min_retention = float(cfg.registry.min_retention)
    choice = choose_champion(metrics, min_retention)
    if choice is None:
        report = {"registered_model": None,
                  "reason": f"no exported student keeps {min_retention:.0%} of the teacher's macro-F1"}
        log.warning("Nothing registered: %s", report["reason"])
    else:
        report = register_student(cfg, *choice)
        report["retention/macro_f1"] = metrics[f"{choice[0]}@{choice[1]}"]["retention/macro_f1"]
    report_file.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.register")
    register(stage_config(overrides, task=args.task), paths.TaskPaths(args.task).reports / "registry.json")


if __name__ == "__main__":
    run_stage(main)
