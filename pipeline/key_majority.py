"""The lookup baseline: the most frequent label of each key value (merchant, customer) in the labeled split.

It is what a clerk's spreadsheet does ("this merchant is always fuel"), so a
student that cannot beat it adds nothing. Key values never seen in the
labeled split get the most frequent label overall.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from pipeline.metrics import classification_figures

TABLE_FILE = "key_majority.json"


def fit_key_majority(keys: list, labels: list[int]) -> dict:
    """Return the lookup table of the most frequent label per key; ties go to the lower label index."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for key, label in zip(keys, labels):
        counts[str(key)][int(label)] += 1
    table = {key: min(counter, key=lambda label: (-counter[label], label)) for key, counter in counts.items()}
    overall = Counter(int(label) for label in labels)
    fallback = min(overall, key=lambda label: (-overall[label], label))
    return {"table": table, "fallback": fallback}


def predict_key_majority(model: dict, keys: list) -> np.ndarray:
    table, fallback = model["table"], model["fallback"]
    return np.array([table.get(str(key), fallback) for key in keys], dtype=np.int64)


def save_key_majority(model: dict, key: str, class_names: list[str], folder: Path) -> None:
    document = {"kind": "key_majority", "key": key, "class_names": class_names} | model
    (folder / TABLE_FILE).write_text(json.dumps(document) + "\n")


def key_majority_figures(folder: Path, keys: list, labels: np.ndarray, latency_examples: int,
                         warmup: int) -> tuple[np.ndarray, dict[str, float]]:
    """Quality, size and batch-1 lookup latency of the saved table on the test keys."""
    file = folder / TABLE_FILE
    model = json.loads(file.read_text())
    predictions = predict_key_majority(model, keys)
    figures = {f"test/{name}": value for name, value in classification_figures(labels, predictions).items()}
    figures["size/params"] = float(len(model["table"]))
    figures["size/bytes"] = float(file.stat().st_size)

    timed = keys[:latency_examples]
    for key in timed[:warmup]:
        predict_key_majority(model, [key])
    lookup_ms = []
    for key in timed:
        start = time.perf_counter_ns()
        predict_key_majority(model, [key])
        lookup_ms.append((time.perf_counter_ns() - start) / 1e6)
    figures |= {"latency/b1_p50_ms": float(np.percentile(lookup_ms, 50)),
                "latency/b1_p95_ms": float(np.percentile(lookup_ms, 95)),
                "latency/tokenize_p50_ms": 0.0,
                "latency/end_to_end_b1_p50_ms": float(np.percentile(lookup_ms, 50))}
    start = time.perf_counter_ns()
    predict_key_majority(model, list(keys))
    figures["throughput/b64_per_s"] = len(keys) / max((time.perf_counter_ns() - start) / 1e9, 1e-9)
    return predictions, figures
