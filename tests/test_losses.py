"""The distillation loss against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from pipeline.losses import (NO_LABEL, class_weights, distillation_loss, hard_label_cross_entropy, hidden_state_mse,
                             logit_mse, prior_logit_adjustment, scheduled_value, soft_target_kl)

# Example 0: teacher uniform over two classes; the student puts 1:3 odds on
# class 1 at T=2, because its logits are [0, 2 ln 3] and 2 ln 3 / 2 = ln 3.
#   KL(teacher || student) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
# Example 1: student equals teacher, so its KL is 0.
TEACHER = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
STUDENT = torch.tensor([[0.0, 2 * math.log(3)], [1.0, -1.0]])
KL_EXAMPLE_0 = 0.5 * math.log(4 / 3)  # 0.1438410362


def test_soft_term_scales_by_t_squared():
    loss = soft_target_kl(STUDENT[:1], TEACHER[:1], temperature=2.0)

    assert loss.item() == pytest.approx(4 * KL_EXAMPLE_0, rel=1e-6)


def test_soft_term_uses_batchmean():
    loss = soft_target_kl(STUDENT, TEACHER, temperature=2.0)

    # batchmean: summed KL over the batch divided by 2 examples, not by 2 x 2 elements.
    assert loss.item() == pytest.approx(4 * KL_EXAMPLE_0 / 2, rel=1e-6)
    assert loss.item() != pytest.approx(4 * KL_EXAMPLE_0 / 4, rel=1e-3)


def test_soft_term_zero_for_equal_logits():
    logits = torch.randn(5, 7)

    assert soft_target_kl(logits, logits.clone(), temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_cross_entropy_skips_unlabeled_rows():
    labels = torch.tensor([1, -1])

    # Softmax of [0, 2 ln 3] is [1/10, 9/10]: the loss of label 1 is -ln(0.9).
    assert hard_label_cross_entropy(STUDENT, labels).item() == pytest.approx(-math.log(0.9), rel=1e-6)


def test_cross_entropy_zero_without_labels():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = hard_label_cross_entropy(logits, torch.tensor([-1, -1, -1]))
    loss.backward()

    assert loss.item() == 0.0
    assert logits.grad is not None


def test_combined_loss_by_hand():
    labels = torch.tensor([1, -1])
    loss, terms = distillation_loss(STUDENT, TEACHER, labels, temperature=2.0, alpha=0.5)

    soft = 4 * KL_EXAMPLE_0 / 2
    hard = -math.log(0.9)
    assert terms["soft"].item() == pytest.approx(soft, rel=1e-6)
    assert terms["hard_ce"].item() == pytest.approx(hard, rel=1e-6)
    assert loss.item() == pytest.approx(0.5 * soft + 0.5 * hard, rel=1e-6)  # 0.1965


def test_alpha_one_ignores_hard_labels():
    loss, _ = distillation_loss(STUDENT, TEACHER, torch.tensor([0, 0]), temperature=2.0, alpha=1.0)

    assert loss.item() == pytest.approx(4 * KL_EXAMPLE_0 / 2, rel=1e-6)


def test_zero_temperature_rejected():
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(STUDENT, TEACHER, torch.tensor([0, 0]), temperature=0.0, alpha=0.5)


def test_logit_mse_by_hand():
    # Differences: example 0 is [0, 2 ln 3], example 1 is [0, 0]; mean over 4 elements.
    expected = (2 * math.log(3)) ** 2 / 4  # 1.2069

    assert logit_mse(STUDENT, TEACHER).item() == pytest.approx(expected, rel=1e-6)


def test_combined_logit_mse_ignores_temperature():
    labels = torch.tensor([1, -1])
    at_one, _ = distillation_loss(STUDENT, TEACHER, labels, temperature=1.0, alpha=0.5, soft_loss="logit_mse")
    at_four, _ = distillation_loss(STUDENT, TEACHER, labels, temperature=4.0, alpha=0.5, soft_loss="logit_mse")

    expected = 0.5 * (2 * math.log(3)) ** 2 / 4 + 0.5 * -math.log(0.9)
    assert at_one.item() == pytest.approx(expected, rel=1e-6)
    assert at_four.item() == pytest.approx(expected, rel=1e-6)


def test_unknown_soft_loss_rejected():
    with pytest.raises(ValueError, match="soft_loss"):
        distillation_loss(STUDENT, TEACHER, torch.tensor([0, 0]), temperature=1.0, alpha=0.5, soft_loss="l1")


def test_hidden_state_mse_by_hand():
    projection = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1.0], [2.0]]))
    student = torch.tensor([[[1.0], [3.0], [9.0]]])  # projected: [1, 2], [3, 6], [9, 18]
    teacher = torch.tensor([[[0.0, 2.0], [3.0, 4.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])

    # Real tokens only: squared errors 1, 0, 0, 4 over 2 tokens x 2 dimensions.
    assert hidden_state_mse(student, teacher, projection, mask).item() == pytest.approx(5 / 4, rel=1e-6)


def test_hidden_state_mse_checks_width():
    projection = torch.nn.Linear(1, 3)
    with pytest.raises(ValueError, match="teacher's width"):
        hidden_state_mse(torch.zeros(1, 2, 1), torch.zeros(1, 2, 2), projection, torch.ones(1, 2))


@pytest.mark.parametrize(("progress", "expected"), [(0.0, 1.0), (0.5, 2.5), (1.0, 4.0), (1.5, 4.0)])
def test_linear_schedule(progress, expected):
    assert scheduled_value(1.0, 4.0, progress) == pytest.approx(expected)


def test_schedule_fixed_without_end():
    assert scheduled_value(0.7, None, 0.9) == 0.7


def test_balanced_class_weights_by_hand():
    # 4 labeled rows over 2 present classes of 3 give n / (2 * count). Class 2 is absent and weighs 1.
    weights = class_weights("balanced", [0, 0, 0, 1, NO_LABEL], num_classes=3)

    assert weights.tolist() == pytest.approx([4 / 6, 4 / 2, 1.0])


def test_class_weights_off_and_unknown():
    assert class_weights(None, [0, 1], num_classes=2) is None
    with pytest.raises(ValueError, match="class_weight='inverse' is invalid"):
        class_weights("inverse", [0, 1], num_classes=2)


def test_prior_logit_adjustment_by_hand():
    # Counts 2, 1, 0 plus one each give the prior 3/6, 2/6, 1/6. Unlabeled rows do not count.
    adjustment = prior_logit_adjustment([0, 0, 1, NO_LABEL], num_classes=3, tau=0.5)

    assert adjustment.tolist() == pytest.approx([0.5 * math.log(3 / 6), 0.5 * math.log(2 / 6),
                                                 0.5 * math.log(1 / 6)], rel=1e-6)


def test_prior_logit_adjustment_raises_rare_classes():
    teacher = np.array([[2.0, 1.0, 0.0]], dtype=np.float32)
    adjusted = teacher - prior_logit_adjustment([0] * 8 + [1] * 2, num_classes=3, tau=1.0)

    # The frequent class loses its lead once its prior is taken out.
    assert adjusted.argmax() != teacher.argmax()


def test_cross_entropy_weighted_per_class():
    # CE is ln 2 for row 0 (uniform) and ln(4/3) for row 1 (3:1 odds on its class). Class 1 weighs 3.
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3)], [5.0, 0.0]])
    labels = torch.tensor([0, 1, NO_LABEL])

    loss = hard_label_cross_entropy(logits, labels, weight=torch.tensor([1.0, 3.0]))

    assert loss.item() == pytest.approx((math.log(2) + 3 * math.log(4 / 3)) / 4, rel=1e-6)
