"""Distillation losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NO_LABEL = -1


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


def hard_label_cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the examples that have a hard label (label != -1).

    Returns 0, still attached to the graph, for a batch with no labeled example.
    """
    labeled = labels != NO_LABEL
    if not labeled.any():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[labeled], labels[labeled])


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, hard labels).

    The KL term covers every example in the batch; the cross-entropy term only
    those with a hard label, so transfer-pool rows (label -1) teach through the
    teacher alone. Returns the loss and its two terms for logging.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be above 0, got {temperature}")
    soft = soft_target_kl(student_logits, teacher_logits, temperature)
    hard = hard_label_cross_entropy(student_logits, labels)
    loss = alpha * soft + (1.0 - alpha) * hard
    return loss, {"soft_kl": soft.detach(), "hard_ce": hard.detach()}
