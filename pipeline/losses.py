"""Distillation losses: soft-target KL, logit MSE, hidden-state MSE, and their schedules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from pipeline.config import CLASS_WEIGHTS

NO_LABEL = -1

SOFT_LOSSES = ("kl", "logit_mse")


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
    Network". The T^2 factor keeps the gradient scale of the soft term
    independent of T. The reduction is `batchmean`: the sum over classes and
    examples divided by the batch size, which is the true KL per example
    (`mean` would also divide by the number of classes).
    """
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


def hard_label_cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor,
                             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged over the examples that have a hard label (label != -1).

    With per-class `weight` w, the average is weighted: sum(w_y * CE) / sum(w_y)
    over the labeled examples, as in torch's cross_entropy. Returns 0, still
    attached to the graph, for a batch with no labeled example.
    """
    labeled = labels != NO_LABEL
    if not labeled.any():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[labeled], labels[labeled], weight=weight)


def class_weights(rule: str | None, labels: Sequence[int], num_classes: int) -> torch.Tensor | None:
    """Compute per-class weights for the cross-entropy, or return None when `rule` is None.

    "balanced" is scikit-learn's rule, n_examples / (n_classes_present *
    n_examples_of_class): each class present in `labels` weighs the same in
    total, so rare accounts count as much as frequent ones, which is what
    macro-F1 measures. A class absent from `labels` is never a target, and
    gets weight 1.
    """
    if rule is None:
        return None
    if rule not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight={rule!r} is invalid: set null or one of {', '.join(CLASS_WEIGHTS)}")
    labels = np.asarray([label for label in labels if label != NO_LABEL], dtype=np.int64)
    weights = np.ones(num_classes, dtype=np.float32)
    present = np.unique(labels)
    weights[present] = compute_class_weight(rule, classes=present, y=labels)
    return torch.tensor(weights)


def prior_logit_adjustment(labels: Sequence[int], num_classes: int, tau: float) -> np.ndarray:
    """Compute tau * log(prior_y) per class y, to subtract from a teacher's logits.

    The post-hoc logit adjustment of Menon, Jayasumana, Rawat, Jain, Veit and
    Kumar, "Long-tail learning via logit adjustment" (ICLR 2021): a classifier
    trained on skewed labels scores f_y(x); f_y(x) - tau * log(prior_y) with
    tau = 1 estimates the class-balanced posterior, which suits macro-F1. The
    prior is the label frequency in `labels` with add-one smoothing, so that
    a class absent from them gets a finite, large adjustment.
    """
    labels = np.asarray([label for label in labels if label != NO_LABEL], dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64) + 1.0
    return (tau * np.log(counts / counts.sum())).astype(np.float32)


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """mean over examples and classes of (student_logit - teacher_logit)^2.

    Tang, Lu, Liu, Mou, Vechtomova and Lin 2019, "Distilling Task-Specific
    Knowledge from BERT into Simple Neural Networks": the student regresses
    the teacher's logits directly, without a temperature.
    """
    return F.mse_loss(student_logits, teacher_logits, reduction="mean")


def hidden_state_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, projection: torch.nn.Module,
                     attention_mask: torch.Tensor) -> torch.Tensor:
    """mean over real tokens and teacher dimensions of (W h_student + b - h_teacher)^2.

    The hidden-state loss of TinyBERT (Jiao et al. 2020, "TinyBERT:
    Distilling BERT for Natural Language Understanding"): a learned linear
    `projection` maps the student's width to the teacher's. Padding positions
    (attention_mask 0) do not count.
    """
    projected = projection(student_hidden)
    if projected.shape != teacher_hidden.shape:
        raise ValueError(f"projected student states have shape {tuple(projected.shape)}, teacher states "
                         f"{tuple(teacher_hidden.shape)}: set the projection's output size to the teacher's width")
    mask = attention_mask.unsqueeze(-1).to(projected.dtype)
    squared = (projected - teacher_hidden) ** 2 * mask
    return squared.sum() / (mask.sum() * projected.shape[-1]).clamp(min=1.0)


def scheduled_value(start: float, end: float | None, progress: float) -> float:
    """Interpolate linearly from `start` (progress 0) to `end` (progress 1); a fixed `start` when end is None."""
    if end is None:
        return start
    progress = min(max(progress, 0.0), 1.0)
    return start + (end - start) * progress


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float, soft_loss: str = "kl",
                      class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """alpha * soft + (1 - alpha) * CE(student, hard labels).

    soft is T^2 * KL(teacher_T || student_T) for soft_loss "kl" (Hinton et al.
    2015) or the logit MSE for "logit_mse" (Tang et al. 2019), which ignores
    the temperature. The soft term covers every example in the batch and the
    cross-entropy term only those with a hard label, so transfer-pool rows
    (label -1) teach through the teacher alone; `class_weight` weighs that
    cross-entropy per class. Returns the loss and its two terms for logging.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be above 0, got {temperature}")
    if soft_loss == "kl":
        soft = soft_target_kl(student_logits, teacher_logits, temperature)
    elif soft_loss == "logit_mse":
        soft = logit_mse(student_logits, teacher_logits)
    else:
        raise ValueError(f"soft_loss={soft_loss!r} is unknown: choose one of {', '.join(SOFT_LOSSES)}")
    hard = hard_label_cross_entropy(student_logits, labels, class_weight)
    loss = alpha * soft + (1.0 - alpha) * hard
    return loss, {"soft": soft.detach(), "hard_ce": hard.detach()}
