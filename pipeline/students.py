"""Student architectures, built from config, and their save and load format.

Every student maps (input_ids, attention_mask) to logits, the same contract as
the teacher, so training, export and timing code treat them alike.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "student_config.json"


class TransformerStudent(nn.Module):
    """A small transformer encoder with learned positions, mean-pooled over real tokens."""

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int,
                 hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4, ffn_size: int = 256,
                 dropout: float = 0.1):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position_embedding = nn.Embedding(max_length, hidden_size)
        self.embedding_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(hidden_size, num_heads, ffn_size, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(hidden_size)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)
        hidden = self.dropout(self.embedding_norm(hidden))
        hidden = self.encoder(hidden, src_key_padding_mask=attention_mask == 0)
        hidden = self.final_norm(hidden)

        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))


class BiLSTMStudent(nn.Module):
    """A bidirectional LSTM over word-piece embeddings, max-pooled over real tokens.

    The backward direction runs a second LSTM over each sequence reversed
    within its own length, so right padding never reaches a real token. This
    does what packed sequences do with plain gathers, which ONNX can export.
    """

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int,
                 embedding_size: int = 96, hidden_size: int = 96, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_token_id)
        self.forward_lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(2 * hidden_size, 2 * hidden_size)
        self.classifier = nn.Linear(2 * hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(input_ids))
        forward_states, _ = self.forward_lstm(embedded)

        # Position t of a sequence of length n reads position n - 1 - t; padding stays put.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        lengths = attention_mask.sum(1, keepdim=True)
        reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)
        reverse = reverse.unsqueeze(-1)
        reversed_embedded = embedded.gather(1, reverse.expand(-1, -1, embedded.shape[-1]))
        backward_states, _ = self.backward_lstm(reversed_embedded)
        backward_states = backward_states.gather(1, reverse.expand(-1, -1, backward_states.shape[-1]))

        states = torch.cat([forward_states, backward_states], dim=-1)
        states = states.masked_fill(attention_mask.unsqueeze(-1) == 0, -math.inf)
        pooled = states.max(dim=1).values
        return self.classifier(self.dropout(torch.relu(self.hidden(pooled))))


ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": TransformerStudent, "bilstm": BiLSTMStudent}


def build_student(arch: str, model_kwargs: dict, vocab_size: int, num_labels: int, max_length: int,
                  pad_token_id: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown student architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[arch](vocab_size=vocab_size, num_labels=num_labels, max_length=max_length,
                               pad_token_id=pad_token_id, **model_kwargs)


def save_student(model: nn.Module, tokenizer, student_config: dict, folder: Path) -> None:
    """Write weights (safetensors), the config that rebuilds the model, and the tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(student_config, indent=2) + "\n")
    tokenizer.save_pretrained(str(folder))


def load_student(folder: Path):
    """Return (model in eval mode, tokenizer, config) saved by save_student."""
    from transformers import AutoTokenizer

    config = json.loads((folder / CONFIG_FILE).read_text())
    model = build_student(config["arch"], config["model"], config["vocab_size"], config["num_labels"],
                          config["max_length"], config["pad_token_id"])
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder)), config
