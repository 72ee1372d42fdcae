"""Locations of the pipeline's inputs and outputs, the same ones dvc.yaml names.

Everything after extract is per task: data/datasets/<task>, models/<task>/...
and reports/<task>/..., so the tasks in `tasks` run side by side.
"""

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = "params.yaml"
CONF_DIR = "conf"

DATA = Path("data")
ERP_DIR = DATA / "erp"
EXTRACTED = DATA / "extracted"
DATASETS = DATA / "datasets"
SOFT_LABELS = DATA / "soft_labels"
AUGMENTED = DATA / "augmented"

MODELS = Path("models")
REPORTS = Path("reports")


@dataclass(frozen=True)
class TaskPaths:
    """Inputs and outputs of one task's stages, relative to `root` (the repository root when stages run)."""

    task: str
    root: Path = Path()

    @property
    def datasets(self) -> Path:
        """The build_datasets output: splits, tokenizer, input encoder and card."""
        return self.root / DATASETS / self.task

    @property
    def splits(self) -> Path:
        return self.datasets / "splits"

    @property
    def tokenizer(self) -> Path:
        """The students' word-piece tokenizer, learned from this task's text."""
        return self.datasets / "tokenizer"

    @property
    def card(self) -> Path:
        return self.datasets / "card.json"

    @property
    def soft_labels(self) -> Path:
        return self.root / SOFT_LABELS / f"{self.task}.parquet"

    @property
    def augmented(self) -> Path:
        return self.root / AUGMENTED / f"{self.task}.parquet"

    @property
    def models(self) -> Path:
        return self.root / MODELS / self.task

    @property
    def teacher(self) -> Path:
        return self.models / "teacher"

    @property
    def students(self) -> Path:
        return self.models / "students"

    @property
    def baselines(self) -> Path:
        return self.models / "baselines"

    @property
    def onnx(self) -> Path:
        return self.models / "onnx"

    @property
    def reports(self) -> Path:
        return self.root / REPORTS / self.task

    def student(self, name: str) -> Path:
        return self.students / name

    def baseline(self, name: str) -> Path:
        return self.baselines / name

    def onnx_student(self, name: str) -> Path:
        return self.onnx / name
