"""An MLflow pyfunc that takes raw ERP records and returns the label, its probability and the top 3.

It runs an exported student in ONNX Runtime, so serving needs neither PyTorch
nor the training code. It renders each record into model text with the
input encoder fitted by build_datasets (pipeline/features.py), so the task's
columns and numeric bins are those of training.
"""

from __future__ import annotations

import json
import logging

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from pipeline.features import InputEncoder

log = logging.getLogger(__name__)

TOP_K = 3


def validate_records(records: pd.DataFrame, encoder: InputEncoder) -> None:
    """Raise MlflowException (HTTP 400 from the scoring server) naming the first bad column.

    Empty values are allowed: the encoder renders them as training did.
    """
    missing = [name for name in encoder.fields if name not in records.columns]
    if missing:
        raise MlflowException(f"Missing input column(s) {missing}; expected columns {encoder.fields}.",
                              error_code=INVALID_PARAMETER_VALUE)
    for name in encoder.numeric_fields:
        values = records[name]
        if not (pd.api.types.is_numeric_dtype(values) or values.isna().all()):
            raise MlflowException(f"Column {name!r} has type {values.dtype}, expected a number.",
                                  error_code=INVALID_PARAMETER_VALUE)
    for name in [*encoder.text_fields, *encoder.categorical_fields]:
        values = records[name].dropna()
        if not all(isinstance(value, str) for value in values):
            raise MlflowException(f"Column {name!r} has type {records[name].dtype}, expected text.",
                                  error_code=INVALID_PARAMETER_VALUE)


class StudentModel(mlflow.pyfunc.PythonModel):
    """Classify raw records with an ONNX student; artifacts: onnx_model, tokenizer, student_config, inputs."""

    def load_context(self, context) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        config = json.loads(open(context.artifacts["student_config"], encoding="utf-8").read())
        self.class_names = list(config["class_names"])
        self.max_length = int(config["max_length"])
        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts["tokenizer"])
        self.encoder = InputEncoder.load(context.artifacts["inputs"])
        self.session = ort.InferenceSession(context.artifacts["onnx_model"], providers=["CPUExecutionProvider"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        validate_records(model_input, self.encoder)
        texts = self.encoder.render_frame(model_input)
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np", return_token_type_ids=False)
        logits = self.session.run(None, {"input_ids": encoded["input_ids"].astype(np.int64),
                                         "attention_mask": encoded["attention_mask"].astype(np.int64)})[0]

        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        order = np.argsort(-probabilities, axis=-1)[:, :TOP_K]
        return pd.DataFrame({
            "label": [self.class_names[row[0]] for row in order],
            "probability": [float(probabilities[index, row[0]]) for index, row in enumerate(order)],
            "top_3": [json.dumps([{"label": self.class_names[k], "probability": round(float(probabilities[index, k]), 6)}
                                  for k in row]) for index, row in enumerate(order)],
        })
