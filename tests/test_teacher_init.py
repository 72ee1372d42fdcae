"""DistilBERT-style students: layers copied from the teacher, and the hidden-state loss in training."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from pipeline.config import ConfigError
from pipeline.distill import DistillationModule, LossSettings
from pipeline.losses import distillation_loss, hidden_state_mse
from pipeline.students import build_student
from pipeline.teacher_init import copy_teacher_weights, student_settings, teacher_layers

LABELS = 3
TEACHER_SETTINGS = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2,
                    "intermediate_size": 32, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
                    "attention_probs_dropout_prob": 0.0}


def _teacher(classifier: bool = True):
    torch.manual_seed(0)
    config = BertConfig(num_labels=LABELS, **TEACHER_SETTINGS)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    return model.eval()


def _student(teacher, layers: int = 2):
    settings = student_settings(teacher.config, {"num_hidden_layers": layers})
    return build_student("bert", settings, TEACHER_SETTINGS["vocab_size"], LABELS, 16, 0)


@pytest.mark.parametrize(("teacher", "student", "expected"),
                         [(6, 3, [0, 2, 4]), (4, 2, [0, 2]), (12, 6, [0, 2, 4, 6, 8, 10]), (6, 6, list(range(6))),
                          (6, 1, [0])])
def test_every_other_teacher_layer(teacher, student, expected):
    assert teacher_layers(teacher, student) == expected


def test_more_student_layers_than_teacher_rejected():
    with pytest.raises(ConfigError, match="num_hidden_layers=7"):
        teacher_layers(6, 7)


def test_student_copies_embeddings_and_every_other_layer():
    teacher = _teacher()
    student = _student(teacher)

    assert copy_teacher_weights(teacher, student, copy_classifier=True) == [0, 2]

    own, source = student.model.state_dict(), teacher.state_dict()
    torch.testing.assert_close(own["bert.embeddings.word_embeddings.weight"],
                               source["bert.embeddings.word_embeddings.weight"])
    for student_layer, teacher_layer in ((0, 0), (1, 2)):
        for suffix in ("attention.self.query.weight", "output.dense.weight", "output.LayerNorm.bias"):
            torch.testing.assert_close(own[f"bert.encoder.layer.{student_layer}.{suffix}"],
                                       source[f"bert.encoder.layer.{teacher_layer}.{suffix}"])
    torch.testing.assert_close(own["classifier.weight"], source["classifier.weight"])
    assert not torch.equal(own["bert.encoder.layer.1.output.dense.weight"],
                           source["bert.encoder.layer.1.output.dense.weight"])


def test_full_depth_copy_reproduces_the_teacher():
    teacher = _teacher()
    student = _student(teacher, layers=4)
    copy_teacher_weights(teacher, student, copy_classifier=True)
    ids = torch.tensor([[2, 7, 9, 3, 0]])
    mask = (ids != 0).long()

    torch.testing.assert_close(student.eval()(ids, mask), teacher(input_ids=ids, attention_mask=mask).logits)


def test_pretrained_source_keeps_the_students_own_classifier():
    teacher = _teacher(classifier=False)
    student = _student(teacher)
    before = student.model.classifier.weight.clone()

    copy_teacher_weights(teacher, student, copy_classifier=False)

    torch.testing.assert_close(student.model.classifier.weight, before)
    torch.testing.assert_close(student.model.bert.encoder.layer[1].output.dense.weight,
                               teacher.encoder.layer[2].output.dense.weight)


def test_student_may_not_change_the_teachers_width():
    with pytest.raises(ConfigError, match="hidden_size=32 \\(teacher: 16\\)"):
        student_settings(_teacher().config, {"num_hidden_layers": 2, "hidden_size": 32})


def test_student_may_change_dropout():
    settings = student_settings(_teacher().config, {"num_hidden_layers": 2, "hidden_dropout_prob": 0.3})

    assert settings["hidden_dropout_prob"] == 0.3
    assert settings["hidden_size"] == 16


def test_training_step_adds_the_hidden_state_loss():
    teacher = _teacher()
    student = _student(teacher)
    copy_teacher_weights(teacher, student, copy_classifier=True)
    losses = LossSettings(temperature=2.0, alpha=0.5, hidden_weight=0.25)
    module = DistillationModule(student, LABELS, losses, 1e-3, 0.0, hidden_teacher=teacher)
    module.trainer = type("Trainer", (), {"estimated_stepping_batches": 10, "global_step": 0})()
    module.log = lambda *args, **kwargs: None
    batch = {"input_ids": torch.tensor([[2, 7, 9, 3], [5, 6, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
             "labels": torch.tensor([1, -1]), "teacher_logits": torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])}

    loss = module.training_step(batch, 0)

    logits, student_hidden = student.logits_and_hidden(batch["input_ids"], batch["attention_mask"])
    teacher_hidden = teacher.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    expected, _ = distillation_loss(logits, batch["teacher_logits"], batch["labels"], 2.0, 0.5)
    hidden = hidden_state_mse(student_hidden, teacher_hidden, module.projection, batch["attention_mask"])
    assert hidden.item() > 0
    torch.testing.assert_close(loss, expected + 0.25 * hidden)


def test_teacher_stays_out_of_the_trained_parameters():
    teacher = _teacher()
    module = DistillationModule(_student(teacher), LABELS, LossSettings(hidden_weight=1.0), 1e-3, 0.0,
                                hidden_teacher=teacher)

    names = [name for name, _ in module.named_parameters()]

    assert any(name.startswith("projection.") for name in names)
    assert not any("hidden_teacher" in name for name in names)
    assert len(names) == len(list(module.student.parameters())) + 2
