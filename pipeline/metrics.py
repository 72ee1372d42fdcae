"""Classification figures computed the same way for every model."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def classification_figures(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    # Macro-F1 averages over the classes present in labels or predictions (scikit-learn's rule).
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }
