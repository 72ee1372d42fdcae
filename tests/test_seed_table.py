"""The table over seeds: means, spread and medians from compare.json files."""

from __future__ import annotations

import json

import pytest

from pipeline.seed_table import load_runs, seed_table, to_markdown


def _run(folder, teacher_f1: float, student_f1: float):
    (folder / "reports" / "gl_account").mkdir(parents=True)
    report = {"teacher": {"test/macro_f1": teacher_f1, "test/accuracy": 0.9, "size/params": 10.0,
                          "size/bytes": 4e6, "latency/b1_p50_ms": 10.0},
              "bilstm": {"test/macro_f1": student_f1, "test/accuracy": 0.8, "retention/macro_f1": student_f1 / teacher_f1,
                         "size/params": 2.0, "size/bytes": 1e6, "latency/b1_p50_ms": 1.0}}
    (folder / "reports" / "gl_account" / "compare.json").write_text(json.dumps(report))
    return folder


def test_mean_and_spread(tmp_path):
    runs = [_run(tmp_path / "1", 0.8, 0.6), _run(tmp_path / "2", 0.8, 0.8)]

    table = seed_table(load_runs(runs, "gl_account"))

    assert table.loc["bilstm", "macro_f1_mean"] == pytest.approx(0.7)
    # Sample standard deviation of 0.6 and 0.8: sqrt(2 * 0.1^2 / 1).
    assert table.loc["bilstm", "macro_f1_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert table.loc["bilstm", "runs"] == 2
    assert list(table.index) == ["teacher", "bilstm"]


def test_markdown_row(tmp_path):
    table = seed_table(load_runs([_run(tmp_path / "1", 0.8, 0.6), _run(tmp_path / "2", 0.8, 0.8)], "gl_account"))

    assert "| bilstm | 2 | 0.700 ± 0.141 | 0.800 | 87.5% | 0.00 M | 1.0 | 1.00 |" in to_markdown(table)


def test_missing_report_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="compare stage"):
        load_runs([tmp_path], "gl_account")
