"""The registered student behind `mlflow models serve`, over real HTTP on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from conftest import select_task
from pipeline import paths
from pipeline.export import INT8_FILE, export_fp32, quantize_int8
from pipeline.register import choose_champion, register_student
from pipeline.features import InputEncoder
from pipeline.serving import validate_records
from pipeline.students import build_student, save_student
from pipeline.tokenization import train_student_tokenizer

CLASSES = ["610100", "641000", "651000"]
TEXTS = ["toner cartridge | vendor Acme Office GmbH | amount 10 to 100",
         "freight charges | vendor Nordlog Logistics BV | amount 100 to 500",
         "legal advice | vendor Lexa Legal Ltd | amount over 10000"] * 10
ENCODER = InputEncoder(["description"], ["vendor"], ["amount"], {"amount": [10.0, 100.0, 500.0, 10000.0]})
TASK = paths.TaskPaths("gl_account")
RECORDS = {"dataframe_split": {"columns": ["description", "vendor", "amount"],
                               "data": [["toner cartridge", "Acme Office GmbH", 45.5],
                                        ["legal advice", "Lexa Legal Ltd", 12000.0]]}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _save_test_split(records: dict) -> None:
    """Write the input encoder and a test split with raw columns, from which register takes its input example."""
    from datasets import Dataset, DatasetDict

    frame = pd.DataFrame(records["data"], columns=records["columns"])
    TASK.datasets.mkdir(parents=True)
    ENCODER.save(TASK.datasets)
    DatasetDict({"test": Dataset.from_pandas(frame)}).save_to_disk(str(TASK.splits))


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    """Train nothing: a random student, exported and registered, then served on a loopback port."""
    from pipeline.compose_params import compose_config

    root = tmp_path_factory.mktemp("serving")
    previous = Path.cwd()
    os.chdir(root)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        torch.manual_seed(0)
        tokenizer = train_student_tokenizer(TEXTS, 100, root / "tokenizer")
        kwargs = {"embedding_size": 16, "hidden_size": 16}
        model = build_student("bilstm", kwargs, len(tokenizer), len(CLASSES), 32, tokenizer.pad_token_id).eval()
        save_student(model, tokenizer, {"arch": "bilstm", "model": kwargs, "vocab_size": len(tokenizer),
                                        "num_labels": len(CLASSES), "max_length": 32,
                                        "pad_token_id": tokenizer.pad_token_id, "class_names": CLASSES},
                     TASK.student("bilstm"))
        TASK.onnx_student("bilstm").mkdir(parents=True)
        export_fp32(model, 32, root / "model.onnx")
        quantize_int8(root / "model.onnx", TASK.onnx_student("bilstm") / INT8_FILE)
        _save_test_split(RECORDS["dataframe_split"])
        report = register_student(select_task(compose_config(["experiment=smoke"]), "gl_account"), "bilstm",
                                  "onnx_int8")
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.chdir(previous)

    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", report["model_uri"], "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve exited:\n{server.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow models serve did not answer /ping within 180 s")
        yield base, report
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_served_model_labels_records(served_model):
    base, report = served_model
    status, body = _post(f"{base}/invocations", RECORDS)

    assert report["model_uri"] == "models:/gl_account-student@champion"
    assert status == 200, body
    predictions = body["predictions"]
    assert len(predictions) == 2
    for prediction in predictions:
        assert prediction["label"] in CLASSES
        assert 0.0 < prediction["probability"] <= 1.0
        top = json.loads(prediction["top_3"])
        assert [entry["label"] for entry in top][0] == prediction["label"]
        assert len(top) == 3


def test_missing_column_gets_400(served_model):
    base, _ = served_model
    payload = {"dataframe_split": {"columns": ["description", "amount"], "data": [["toner", 10.0]]}}

    status, body = _post(f"{base}/invocations", payload)

    assert status == 400
    assert "vendor" in json.dumps(body)


def test_mistyped_amount_gets_400(served_model):
    base, _ = served_model
    payload = {"dataframe_split": {"columns": ["description", "vendor", "amount"],
                                   "data": [["toner", "Acme", "forty euros"]]}}

    status, body = _post(f"{base}/invocations", payload)

    assert status == 400
    assert "amount" in json.dumps(body)


def test_validation_names_mistyped_text():
    records = pd.DataFrame({"description": ["toner", 12], "vendor": ["Acme", "Acme"], "amount": [1.0, 2.0]})

    with pytest.raises(MlflowException, match="'description' has type object, expected text"):
        validate_records(records, ENCODER)


def test_empty_values_rendered_as_in_training():
    records = pd.DataFrame({"description": ["toner", None], "vendor": ["Acme", None], "amount": [45.5, None]})

    validate_records(records, ENCODER)

    assert ENCODER.render_frame(records) == ["toner | vendor Acme | amount 10 to 100",
                                             "vendor unknown | amount unknown"]


def test_champion_needs_retention():
    metrics = {"teacher": {"test/macro_f1": 0.8},
               "bilstm@onnx_int8": {"test/macro_f1": 0.7, "retention/macro_f1": 0.875, "latency/b1_p50_ms": 0.2},
               "transformer@onnx": {"test/macro_f1": 0.79, "retention/macro_f1": 0.9875, "latency/b1_p50_ms": 0.5},
               "transformer": {"test/macro_f1": 0.81, "retention/macro_f1": 1.01}}

    assert choose_champion(metrics, 0.97) == ("transformer", "onnx")
    assert choose_champion(metrics, 0.5) == ("transformer", "onnx")
    assert choose_champion(metrics, 0.99) is None
