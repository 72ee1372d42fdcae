"""The students' subword tokenizer, learned from the task's own text.

A vocabulary of a few thousand pieces keeps the students' embedding tables
small; the 30,522-piece vocabulary of BERT-style teachers would dominate a
student's size. The pieces are byte-pair merges (BPE) over BERT's lower-cased
words. The tokenizers library (0.22) trains WordPiece vocabularies in an
order that changes from run to run (a hash map decides among pieces with
equal counts); its plain BPE trainer gives the same vocabulary every time,
which keeps the pipeline deterministic and its DVC outputs stable.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_student_tokenizer(texts: list[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Train a lower-casing BPE tokenizer on `texts` and save it to `out_dir`."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )
    wrapped.save_pretrained(str(out_dir))
    log.info("Student tokenizer: %d subword pieces from %d texts, saved to %s",
             tokenizer.get_vocab_size(), len(texts), out_dir)
    return wrapped
