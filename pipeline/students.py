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


class CNNStudent(nn.Module):
    """Convolutions of several widths over word-piece embeddings, max-pooled over time (Kim 2014).

    Padding embeddings are zeroed and each convolution pads by width - 1 on
    both sides. A window that overlaps right padding therefore reads the same
    zeros as the convolution's own padding, so outputs do not depend on
    batch padding.
    """

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int,
                 embedding_size: int = 96, filters: int = 96, widths: tuple[int, ...] = (2, 3, 4),
                 dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_token_id)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(embedding_size, filters, width, padding=width - 1) for width in widths)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(filters * len(widths), num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        embedded = (self.dropout(self.embedding(input_ids)) * mask).transpose(1, 2)
        lengths = attention_mask.sum(1, keepdim=True)

        pooled = []
        for convolution in self.convolutions:
            states = torch.relu(convolution(embedded))
            # A sequence of n tokens has n + width - 1 windows that touch at least one token.
            positions = torch.arange(states.shape[-1], device=input_ids.device).unsqueeze(0)
            valid = positions < lengths + convolution.kernel_size[0] - 1
            pooled.append(states.masked_fill(~valid.unsqueeze(1), -math.inf).max(dim=-1).values)
        return self.classifier(self.dropout(torch.cat(pooled, dim=-1)))


class NgramStudent(nn.Module):
    """A fastText-style bag of word pieces and hashed word-piece bigrams (Joulin et al. 2017).

    The embeddings of every real token and every bigram of two real tokens are
    averaged, then a linear layer (hidden_size 0) or one ReLU layer maps the
    average to logits. Word pieces already carry sub-word (character n-gram)
    information; bigram ids are hashed into `buckets` rows.
    """

    # A prime above any vocabulary size in use, so (first * PRIME + second) rarely collides before the modulo.
    PRIME = 1_000_003

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int,
                 embedding_size: int = 64, buckets: int = 20_000, hidden_size: int = 0, dropout: float = 0.1):
        super().__init__()
        self.vocab_size = vocab_size
        self.buckets = buckets
        self.embedding = nn.Embedding(vocab_size + buckets, embedding_size)
        self.dropout = nn.Dropout(dropout)
        if hidden_size > 0:
            self.head = nn.Sequential(nn.Linear(embedding_size, hidden_size), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(hidden_size, num_labels))
        else:
            self.head = nn.Linear(embedding_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        real = attention_mask.to(torch.float32)
        bigram_ids = self.vocab_size + (input_ids[:, :-1] * self.PRIME + input_ids[:, 1:]) % self.buckets
        bigram_real = real[:, :-1] * real[:, 1:]

        ids = torch.cat([input_ids, bigram_ids], dim=1)
        weights = torch.cat([real, bigram_real], dim=1).unsqueeze(-1)
        summed = (self.embedding(ids) * weights).sum(1)
        average = summed / weights.sum(1).clamp(min=1.0)
        return self.head(self.dropout(average))


class MLPStudent(nn.Module):
    """An MLP over the vector of word-piece counts of a record.

    For a tabular record serialized to text (description, vendor, amount) the
    counts are the one-hot encoding of its fields' values, so this is the
    usual MLP for tabular data. The first layer is an embedding sum, which
    equals a linear layer on the count vector without building that vector.
    """

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int,
                 hidden_sizes: tuple[int, ...] = (256, 128), dropout: float = 0.2):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("MLPStudent needs at least one hidden layer: set model.hidden_sizes, e.g. [256, 128].")
        self.first_layer = nn.Embedding(vocab_size, hidden_sizes[0])
        self.first_bias = nn.Parameter(torch.zeros(hidden_sizes[0]))
        layers: list[nn.Module] = []
        for size_in, size_out in zip(hidden_sizes[:-1], hidden_sizes[1:]):
            layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(size_in, size_out)]
        layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_sizes[-1], num_labels)]
        self.layers = nn.Sequential(*layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        counts = attention_mask.unsqueeze(-1).to(torch.float32)
        hidden = (self.first_layer(input_ids) * counts).sum(1) + self.first_bias
        return self.layers(hidden)


class BertStudent(nn.Module):
    """A BERT encoder with its [CLS] classification head, built from BertConfig settings.

    With `init_from_teacher` set, the distill stage gives it the teacher's
    width and tokenizer and copies the teacher's embeddings and every other
    layer into it, as DistilBERT did (see pipeline/teacher_init.py).
    `logits_and_hidden` also returns the last layer's states, for the
    hidden-state loss.
    """

    def __init__(self, vocab_size: int, num_labels: int, max_length: int, pad_token_id: int, **settings):
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        settings = {"max_position_embeddings": max(512, max_length)} | settings
        config = BertConfig(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id, **settings)
        self.model = BertForSequenceClassification(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def logits_and_hidden(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the last layer's token states, from one forward pass."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return output.logits, output.hidden_states[-1]


ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": TransformerStudent, "bilstm": BiLSTMStudent,
                                             "cnn": CNNStudent, "ngram": NgramStudent, "mlp": MLPStudent,
                                             "bert": BertStudent}


def build_student(arch: str, model_kwargs: dict, vocab_size: int, num_labels: int, max_length: int,
                  pad_token_id: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown student architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
    # YAML and JSON give lists where the constructors take tuples.
    kwargs = {key: tuple(value) if isinstance(value, list) else value for key, value in model_kwargs.items()}
    return ARCHITECTURES[arch](vocab_size=vocab_size, num_labels=num_labels, max_length=max_length,
                               pad_token_id=pad_token_id, **kwargs)


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
