"""Pieces shared by the teacher and student training loops."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from lightning.pytorch.callbacks import TQDMProgressBar

from pipeline.tracking import MlflowMetrics


def adamw_with_linear_decay(module: L.LightningModule, learning_rate: float, weight_decay: float,
                            warmup_ratio: float):
    """AdamW without decay on biases and norms, warm-up then linear decay, stepped per batch."""
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )
    total_steps = module.trainer.estimated_stepping_batches
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * warmup_ratio), total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def make_trainer(max_epochs: int, callbacks: list | None = None) -> L.Trainer:
    """Build a CPU trainer that reproduces its run for a fixed seed and logs to MLflow."""
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=bool(callbacks and any(isinstance(c, L.pytorch.callbacks.ModelCheckpoint)
                                                    for c in callbacks)),
        # tqdm rather than rich: rich prints nothing until the end when stderr is not a terminal.
        callbacks=[MlflowMetrics(), TQDMProgressBar(refresh_rate=20), *(callbacks or [])],
        enable_model_summary=True,
        log_every_n_steps=10,
    )


def make_loader(dataset, collate, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=generator, num_workers=0)
