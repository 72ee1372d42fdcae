"""The latency harness used for every model.

Batch-1 figures time the model forward alone, after warm-up calls, with the
thread count fixed. Tokenization is timed apart on the same records, so a
model whose tokenizer costs more than its forward pass shows it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _milliseconds_since(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


@torch.inference_mode()
def measure_latency(forward: Callable[..., object], tokenizer, texts: list[str], max_length: int,
                    warmup: int, threads: int, throughput_batches: int, batch_size: int = 64) -> dict[str, float]:
    """Time `forward(input_ids=..., attention_mask=...)` on `texts`; returns the latency figures.

    Every text is timed once at batch size 1 after `warmup` untimed calls;
    throughput runs `throughput_batches` padded batches of `batch_size` texts.
    """
    encode = dict(truncation=True, max_length=max_length, return_tensors="pt", return_token_type_ids=False)

    tokenize_ms, encoded = [], []
    for text in texts:
        start = time.perf_counter_ns()
        encoded.append(tokenizer(text, **encode))
        tokenize_ms.append(_milliseconds_since(start))

    with fixed_threads(threads):
        for index in range(warmup):
            item = encoded[index % len(encoded)]
            forward(input_ids=item["input_ids"], attention_mask=item["attention_mask"])

        forward_ms = []
        for item in encoded:
            start = time.perf_counter_ns()
            forward(input_ids=item["input_ids"], attention_mask=item["attention_mask"])
            forward_ms.append(_milliseconds_since(start))

        batches = [tokenizer([texts[(b * batch_size + i) % len(texts)] for i in range(batch_size)],
                             padding=True, **encode) for b in range(throughput_batches)]
        forward(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
        start = time.perf_counter_ns()
        for batch in batches:
            forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        seconds = _milliseconds_since(start) / 1e3

    return {
        "latency/b1_p50_ms": float(np.percentile(forward_ms, 50)),
        "latency/b1_p95_ms": float(np.percentile(forward_ms, 95)),
        "latency/tokenize_p50_ms": float(np.percentile(tokenize_ms, 50)),
        "latency/end_to_end_b1_p50_ms": float(np.percentile(np.add(forward_ms, tokenize_ms), 50)),
        "throughput/b64_per_s": throughput_batches * batch_size / seconds,
        "latency/threads": float(threads),
    }
