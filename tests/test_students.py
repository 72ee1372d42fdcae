"""Student architectures: output shapes and independence from padding."""

from __future__ import annotations

import pytest
import torch

from pipeline.students import ARCHITECTURES, build_student, load_student, save_student

VOCAB, LABELS, MAX_LENGTH, PAD = 50, 4, 16, 0
MODEL_KWARGS = {"transformer": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64},
                "bilstm": {"embedding_size": 16, "hidden_size": 16},
                "cnn": {"embedding_size": 16, "filters": 8, "widths": [2, 3]},
                "ngram": {"embedding_size": 16, "buckets": 101, "hidden_size": 16},
                "mlp": {"hidden_sizes": [32, 16]},
                "bert": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 32}}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_student_ignores_padding(arch):
    torch.manual_seed(0)
    model = build_student(arch, MODEL_KWARGS[arch], VOCAB, LABELS, MAX_LENGTH, PAD).eval()
    ids = torch.tensor([[5, 9, 12, 7]])
    padded = torch.tensor([[5, 9, 12, 7, PAD, PAD, PAD]])

    alone = model(ids, torch.ones_like(ids))
    with_padding = model(padded, (padded != PAD).long())

    assert alone.shape == (1, LABELS)
    torch.testing.assert_close(alone, with_padding, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_student_batch_matches_single(arch):
    torch.manual_seed(0)
    model = build_student(arch, MODEL_KWARGS[arch], VOCAB, LABELS, MAX_LENGTH, PAD).eval()
    batch = torch.tensor([[3, 4, 5, 6, 7], [8, 9, PAD, PAD, PAD]])

    together = model(batch, (batch != PAD).long())
    second = model(batch[1:, :2], torch.ones(1, 2, dtype=torch.long))

    torch.testing.assert_close(together[1:], second, rtol=1e-5, atol=1e-5)


def test_student_save_load_roundtrip(tmp_path):
    from transformers import AutoTokenizer

    from pipeline.tokenization import train_student_tokenizer

    tokenizer = train_student_tokenizer(["toner cartridge", "legal advice", "freight charges"] * 5, 60,
                                        tmp_path / "tokenizer")
    model = build_student("bilstm", MODEL_KWARGS["bilstm"], len(tokenizer), LABELS, MAX_LENGTH,
                          tokenizer.pad_token_id).eval()
    config = {"arch": "bilstm", "model": MODEL_KWARGS["bilstm"], "vocab_size": len(tokenizer), "num_labels": LABELS,
              "max_length": MAX_LENGTH, "pad_token_id": tokenizer.pad_token_id, "class_names": list("abcd")}
    save_student(model, tokenizer, config, tmp_path / "student")

    loaded, loaded_tokenizer, loaded_config = load_student(tmp_path / "student")
    ids = torch.tensor([[2, 7, 9, 3]])

    torch.testing.assert_close(model(ids, torch.ones_like(ids)), loaded(ids, torch.ones_like(ids)))
    assert loaded_config == config
    assert isinstance(AutoTokenizer.from_pretrained(str(tmp_path / "student")).vocab_size, int)
    assert loaded_tokenizer("toner")["input_ids"][0] == tokenizer.cls_token_id


def test_ngram_student_counts_bigrams():
    model = build_student("ngram", {"embedding_size": 4, "buckets": 7, "dropout": 0.0}, VOCAB, LABELS,
                          MAX_LENGTH, PAD).eval()
    swapped = torch.tensor([[5, 9], [9, 5]])

    # Same unigrams in another order: only the bigram embedding tells them apart.
    logits = model(swapped, torch.ones_like(swapped))

    assert not torch.allclose(logits[0], logits[1])


def test_mlp_student_needs_hidden_layer():
    with pytest.raises(ValueError, match="hidden_sizes"):
        build_student("mlp", {"hidden_sizes": []}, VOCAB, LABELS, MAX_LENGTH, PAD)
