"""Stage export: a student to ONNX (fp32) and to ONNX with dynamic int8 quantization.

Each exported file is checked against the PyTorch student on the test split,
by the maximum absolute logit difference and the share of equal predictions,
and the stage fails when they disagree beyond `export.*` tolerances.

Usage: python -m pipeline.export --task NAME --student NAME [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from omegaconf import DictConfig
from onnxruntime.quantization import QuantType, quantize_dynamic
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.config import ConfigError, parse_stage_args, run_stage, stage_config
from pipeline.data import load_task
from pipeline.students import load_student

log = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
PARITY_FILE = "parity.json"
INPUT_NAMES = ("input_ids", "attention_mask")


class ExportError(RuntimeError):
    """An exported model disagrees with its PyTorch source beyond the configured tolerance."""


def export_fp32(model: torch.nn.Module, max_length: int, path: Path) -> None:
    """Export with batch size and sequence length left dynamic, and prove they are.

    The torch.export (dynamo) exporter comes first. In torch 2.13 it fixes the
    sequence length of an LSTM exported after another one in the same process,
    so a graph with a fixed dimension is exported again with the TorchScript
    exporter, which keeps it dynamic.
    """
    example = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    mask = (example != 0).long()
    names = dict(input_names=list(INPUT_NAMES), output_names=["logits"])
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=max_length)
    torch.onnx.export(
        model.eval(), (example, mask), str(path), dynamo=True, external_data=False, verbose=False, **names,
        dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
    )
    if _static_inputs(path):
        log.warning("The dynamo exporter fixed input dimensions %s; exporting again with TorchScript",
                    _static_inputs(path))
        axes = {"batch": 0, "sequence": 1}
        torch.onnx.export(
            model.eval(), (example, mask), str(path), dynamo=False, opset_version=17, **names,
            dynamic_axes={name: {index: axis for axis, index in axes.items()} for name in INPUT_NAMES}
            | {"logits": {0: "batch"}},
        )
    if _static_inputs(path):
        raise ExportError(f"ONNX export fixed the input dimensions {_static_inputs(path)}; batch size and "
                          "sequence length must stay dynamic.")


def _static_inputs(path: Path) -> dict[str, list]:
    """Inputs of an ONNX graph whose shape has a fixed size where a named (dynamic) one belongs."""
    graph = onnx.load(str(path), load_external_data=False).graph
    static = {}
    for graph_input in graph.input:
        dims = [dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim]
        if any(isinstance(dim, int) for dim in dims):
            static[graph_input.name] = dims
    return static


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic quantization: int8 weights, activations quantized per call (no calibration data)."""
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)


def onnx_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxForward:
    """Calls an ONNX Runtime session with the PyTorch students' keyword interface."""

    def __init__(self, session: ort.InferenceSession):
        self.session = session

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.numpy().astype(np.int64),
                 "attention_mask": attention_mask.numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


@torch.inference_mode()
def parity(model: torch.nn.Module, forward: OnnxForward, tokenizer, texts: list[str], max_length: int,
           batch_size: int = 256) -> dict[str, float]:
    """Compare logits and predictions of the PyTorch model and an exported one."""
    max_difference, equal = 0.0, 0
    for start in tqdm(range(0, len(texts), batch_size), desc="parity", unit=" batches", mininterval=5):
        encoded = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt", return_token_type_ids=False)
        reference = model(encoded["input_ids"], encoded["attention_mask"])
        exported = forward(encoded["input_ids"], encoded["attention_mask"])
        max_difference = max(max_difference, float((reference - exported).abs().max()))
        equal += int((reference.argmax(-1) == exported.argmax(-1)).sum())
    return {"max_abs_logit_diff": max_difference, "prediction_agreement": equal / len(texts)}


def export_student(cfg: DictConfig, name: str) -> dict:
    if name not in cfg.students:
        raise ConfigError(f"Unknown student {name!r}: params.yaml defines {', '.join(cfg.students)}.")
    task_paths = paths.TaskPaths(str(cfg.task.name))
    model, tokenizer, student_config = load_student(task_paths.student(name))
    max_length = int(student_config["max_length"])
    texts = list(load_task(task_paths.splits)["test"]["text"])

    out_dir = task_paths.onnx_student(name)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    log.info("Exporting %s to ONNX", name)
    export_fp32(model, max_length, staging / FP32_FILE)
    quantize_int8(staging / FP32_FILE, staging / INT8_FILE)

    report = {}
    for runtime, file, check in (("onnx", FP32_FILE, "fp32"), ("onnx_int8", INT8_FILE, "int8")):
        figures = parity(model, OnnxForward(onnx_session(staging / file, threads=2)), tokenizer, texts, max_length)
        figures["bytes"] = (staging / file).stat().st_size
        report[runtime] = figures
        log.info("%s %s against PyTorch on %d test examples: %s", name, runtime, len(texts), figures)

        tolerance = float(cfg.export[f"{check}_max_abs_logit_diff"])
        min_agreement = float(cfg.export[f"{check}_min_agreement"])
        if figures["max_abs_logit_diff"] > tolerance or figures["prediction_agreement"] < min_agreement:
            shutil.rmtree(staging, ignore_errors=True)
            raise ExportError(
                f"{name} {runtime} disagrees with PyTorch: max |logit difference| "
                f"{figures['max_abs_logit_diff']:.3g} (limit export.{check}_max_abs_logit_diff={tolerance}), "
                f"prediction agreement {figures['prediction_agreement']:.4f} (limit "
                f"export.{check}_min_agreement={min_agreement}). Check the export of this architecture."
            )

    (staging / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return report


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.export",
                                       ("student", "key under `students` in params.yaml, e.g. bilstm"))
    export_student(stage_config(overrides, task=args.task), args.student)


if __name__ == "__main__":
    run_stage(main)
