"""ONNX export of the students: fp32 parity, int8 quantization and the loud failure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.export import ExportError, OnnxForward, export_fp32, onnx_session, parity, quantize_int8
from pipeline.students import build_student
from pipeline.tokenization import train_student_tokenizer

TEXTS = ["toner cartridge | vendor Acme GmbH | amount 10 to 100", "legal advice | vendor Lex Legal Ltd | amount over 10000",
         "50 pcs network switch 48 port | vendor Kalotin IT GmbH | amount 5000 to 10000", "freight charges"] * 8
MODEL_KWARGS = {"transformer": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "ffn_size": 64},
                "bilstm": {"embedding_size": 24, "hidden_size": 24},
                "bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_student_tokenizer(TEXTS, 120, tmp_path_factory.mktemp("tokenizer"))


@pytest.mark.parametrize("arch", sorted(MODEL_KWARGS))
def test_fp32_export_matches_pytorch(arch, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_student(arch, MODEL_KWARGS[arch], len(tokenizer), 5, 32, tokenizer.pad_token_id).eval()
    export_fp32(model, 32, tmp_path / "model.onnx")

    figures = parity(model, OnnxForward(onnx_session(tmp_path / "model.onnx", 1)), tokenizer, TEXTS, 32, batch_size=5)

    assert figures["max_abs_logit_diff"] < 1e-4
    assert figures["prediction_agreement"] == 1.0


@pytest.mark.parametrize("arch", sorted(MODEL_KWARGS))
def test_repeated_exports_stay_dynamic(arch, tokenizer, tmp_path):
    for attempt in range(2):
        torch.manual_seed(attempt)
        model = build_student(arch, MODEL_KWARGS[arch], len(tokenizer), 5, 32, tokenizer.pad_token_id).eval()
        export_fp32(model, 32, tmp_path / f"model{attempt}.onnx")
        session = onnx_session(tmp_path / f"model{attempt}.onnx", 1)

        for length in (3, 17):
            ids = np.full((2, length), 7, dtype=np.int64)
            logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
            assert logits.shape == (2, 5), (attempt, length)


@pytest.mark.parametrize("arch", sorted(MODEL_KWARGS))
def test_int8_export_is_smaller(arch, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_student(arch, MODEL_KWARGS[arch] | {"dropout": 0.0}, 4000, 5, 32, tokenizer.pad_token_id).eval()
    export_fp32(model, 32, tmp_path / "model.onnx")
    quantize_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx")

    session = onnx_session(tmp_path / "model.int8.onnx", 1)
    ids = np.array([[2, 40, 41, 3]], dtype=np.int64)
    logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]

    assert logits.shape == (1, 5)
    assert np.isfinite(logits).all()
    assert (tmp_path / "model.int8.onnx").stat().st_size < 0.5 * (tmp_path / "model.onnx").stat().st_size


def test_export_fails_on_disagreement(small_config, in_tmp_dir, tokenizer):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from pipeline import paths
    from pipeline.export import export_student
    from pipeline.students import save_student

    features = Features({"text": Value("string"), "label": ClassLabel(names=list("abcde"))})
    DatasetDict({"test": Dataset.from_dict({"text": TEXTS, "label": [0] * len(TEXTS)}, features=features)}
                ).save_to_disk(str(paths.TaskPaths("gl_account").splits))
    model = build_student("bilstm", MODEL_KWARGS["bilstm"], len(tokenizer), 5, 32, tokenizer.pad_token_id)
    save_student(model.eval(), tokenizer, {"arch": "bilstm", "model": MODEL_KWARGS["bilstm"],
                                           "vocab_size": len(tokenizer), "num_labels": 5, "max_length": 32,
                                           "pad_token_id": tokenizer.pad_token_id, "class_names": list("abcde")},
                 paths.TaskPaths("gl_account").student("bilstm"))
    small_config.export.fp32_max_abs_logit_diff = -1.0

    with pytest.raises(ExportError, match=r"bilstm onnx disagrees.*export.fp32_max_abs_logit_diff"):
        export_student(small_config, "bilstm")
    assert not paths.TaskPaths("gl_account").onnx_student("bilstm").exists()
