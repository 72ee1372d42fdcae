"""Initialize a BERT student from the teacher's weights, as DistilBERT did.

Sanh, Debut, Chaumond and Wolf 2019, "DistilBERT, a distilled version of
BERT": the student keeps the teacher's width and takes one layer out of two,
so it starts from weights that already encode language instead of from noise.
The student then reads the teacher's tokenizer, because its embedding rows are
the teacher's.

`init_from_teacher` in a student config picks the source:
- `pretrained`: the weights that `teacher.pretrained` names, before
  fine-tuning (DistilBERT's recipe; the student's classifier starts random);
- `finetuned`: the task's fine-tuned teacher in models/<task>/teacher,
  classifier included.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from pipeline.config import INIT_SOURCES, ConfigError

log = logging.getLogger(__name__)

# BertConfig settings that the student takes over from the teacher. Those in
# SHAPE_KEYS fix tensor shapes, so a student may not change them. It may
# change the rest, such as dropout.
ARCHITECTURE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "max_position_embeddings",
                     "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob")
SHAPE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size")


def teacher_layers(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """Pick evenly spaced teacher layers for the student, starting at the first: 6 -> 3 gives [0, 2, 4]."""
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise ConfigError(f"A student initialized from the teacher needs 1 to {num_teacher_layers} layers "
                          f"(the teacher's count), got model.num_hidden_layers={num_student_layers}.")
    step = num_teacher_layers / num_student_layers
    return [int(index * step) for index in range(num_student_layers)]


def load_init_source(cfg: DictConfig, source: str, teacher_dir: Path):
    """Return (BERT model, tokenizer) of the `init_from_teacher` source; nothing is downloaded."""
    from transformers import AutoModel, AutoTokenizer

    from pipeline.teacher_model import load_teacher, resolve_pretrained

    if source == "finetuned":
        if not (teacher_dir / "config.json").is_file():
            raise ConfigError(f"init_from_teacher=finetuned needs the fine-tuned teacher in {teacher_dir}: "
                              "run the train_teacher stage first.")
        return load_teacher(teacher_dir)
    if source == "pretrained":
        if cfg.teacher.pretrained is None:
            raise ConfigError("init_from_teacher=pretrained needs teacher.pretrained, but this teacher is built "
                              "from a config with random weights: use init_from_teacher=finetuned instead.")
        folder = resolve_pretrained(str(cfg.teacher.pretrained))
        model = AutoModel.from_pretrained(folder, local_files_only=True)
        return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)
    raise ConfigError(f"init_from_teacher={source!r} is unknown: choose one of {', '.join(INIT_SOURCES)} or null.")


def student_settings(teacher_config, model_settings: dict) -> dict:
    """Merge the teacher's architecture settings with the student's own keys, which win, into BertConfig settings."""
    inherited = {key: getattr(teacher_config, key) for key in ARCHITECTURE_KEYS if hasattr(teacher_config, key)}
    changed = [key for key in SHAPE_KEYS if key in model_settings and model_settings[key] != inherited.get(key)]
    if changed:
        raise ConfigError(f"A student initialized from the teacher keeps the teacher's shape, but its model sets "
                          + ", ".join(f"{key}={model_settings[key]} (teacher: {inherited.get(key)})" for key in changed)
                          + ": remove those keys from the student config.")
    return inherited | model_settings


def copy_teacher_weights(teacher: torch.nn.Module, student: torch.nn.Module, copy_classifier: bool) -> list[int]:
    """Copy embeddings, evenly spaced encoder layers and the pooler of `teacher` into the BertStudent `student`.

    `teacher` is a BertModel or a BertForSequenceClassification. Returns the
    teacher layers used, in student order.
    """
    source = teacher.base_model.state_dict()
    target = student.model.bert
    layers = teacher_layers(teacher.config.num_hidden_layers, target.config.num_hidden_layers)

    mapped = {}
    for key, tensor in source.items():
        if key.startswith("encoder.layer."):
            index, rest = key[len("encoder.layer."):].split(".", 1)
            if int(index) in layers:
                mapped[f"encoder.layer.{layers.index(int(index))}.{rest}"] = tensor
        else:
            mapped[key] = tensor
    own = target.state_dict()
    for key, tensor in mapped.items():
        if key in own and own[key].shape != tensor.shape:
            raise ConfigError(f"Teacher tensor {key} has shape {tuple(tensor.shape)}, the student's "
                              f"{tuple(own[key].shape)}: the student must keep the teacher's architecture.")
    missing, _ = target.load_state_dict({key: value for key, value in mapped.items() if key in own}, strict=False)
    if missing:
        log.info("Not in the teacher, so left at random initialization: %s", ", ".join(missing))

    if copy_classifier:
        student.model.classifier.load_state_dict(teacher.classifier.state_dict())
    log.info("Student initialized from teacher layers %s (of %d)", layers, teacher.config.num_hidden_layers)
    return layers
