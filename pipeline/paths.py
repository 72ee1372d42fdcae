"""Locations of the pipeline's inputs and outputs, the same ones dvc.yaml names."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = "params.yaml"
CONF_DIR = "conf"

DATA = Path("data")
ERP_DIR = DATA / "erp"
EXTRACTED = DATA / "extracted"
DATASETS = DATA / "datasets"
SOFT_LABELS = DATA / "soft_labels"

MODELS = Path("models")
TEACHER = MODELS / "teacher"
STUDENTS = MODELS / "students"
BASELINES = MODELS / "baselines"
ONNX = MODELS / "onnx"

REPORTS = Path("reports")


def dataset_dir(task: str) -> Path:
    return DATASETS / task


def student_tokenizer_dir(task: str) -> Path:
    return DATASETS / f"{task}_tokenizer"


def soft_labels_file(task: str) -> Path:
    return SOFT_LABELS / f"{task}.parquet"


def student_dir(name: str) -> Path:
    return STUDENTS / name


def baseline_dir(name: str) -> Path:
    return BASELINES / name


def onnx_dir(name: str) -> Path:
    return ONNX / name
