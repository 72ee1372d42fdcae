"""An MLflow pyfunc that takes raw ERP records and returns the label, its probability and the top 3.

It runs an exported student in ONNX Runtime, so serving needs neither PyTorch
nor the training code, and builds each model input with the same function
the pipeline used (pipeline/features.py).
"""

from __future__ import annotations

import json
import logging

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from pipeline.features import format_invoice_line

log = logging.getLogger(__name__)

# Input columns of the gl_account task and the pandas check each must pass.
INPUT_COLUMNS = {"description": pd.api.types.is_string_dtype, "vendor": pd.api.types.is_string_dtype,
                 "amount": pd.api.types.is_numeric_dtype}
TOP_K = 3


def validate_records(records: pd.DataFrame) -> None:
    """Raise MlflowException (HTTP 400 from the scoring server) naming the first bad column."""
    for column, check in INPUT_COLUMNS.items():
        if column not in records.columns:
            raise MlflowException(f"Missing input column {column!r}; expected columns {list(INPUT_COLUMNS)}.",
                                  error_code=INVALID_PARAMETER_VALUE)
        values = records[column]
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise MlflowException(f"Column {column!r} is empty in row {row}; every record needs a value.",
                                  error_code=INVALID_PARAMETER_VALUE)
        if not check(values):
            raise MlflowException(f"Column {column!r} has type {values.dtype}, expected "
                                  f"{'a number' if column == 'amount' else 'text'}.", error_code=INVALID_PARAMETER_VALUE)


class StudentModel(mlflow.pyfunc.PythonModel):
    """Classifies invoice lines with an ONNX student; artifacts: onnx_model, tokenizer, student_config."""

    def load_context(self, context) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        config = json.loads(open(context.artifacts["student_config"], encoding="utf-8").read())
        self.class_names = list(config["class_names"])
        self.max_length = int(config["max_length"])
        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts["tokenizer"])
        self.session = ort.InferenceSession(context.artifacts["onnx_model"], providers=["CPUExecutionProvider"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        validate_records(model_input)
        texts = [format_invoice_line(description, vendor, float(amount)) for description, vendor, amount in
                 zip(model_input["description"], model_input["vendor"], model_input["amount"])]
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
