"""Classification figures computed the same way for every model."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # noqa: E402

CALIBRATION_BINS = 15


def classification_figures(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    # Macro-F1 averages over the classes present in labels or predictions (scikit-learn's rule).
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017, "On Calibration of Modern Neural Networks").

    The sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|.
    """
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def per_class_f1(labels: np.ndarray, predictions: np.ndarray, class_names: list[str]) -> dict[str, float]:
    scores = f1_score(labels, predictions, labels=np.arange(len(class_names)), average=None, zero_division=0)
    return {name: float(score) for name, score in zip(class_names, scores)}


def confusion_figure(labels: np.ndarray, predictions: np.ndarray, class_names: list[str], title: str) -> plt.Figure:
    """Row-normalised confusion matrix: each row shows where one true class went."""
    matrix = confusion_matrix(labels, predictions, labels=np.arange(len(class_names))).astype(float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)

    size = max(5.0, 0.4 * len(class_names))
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of true class")
    figure.tight_layout()
    return figure
