"""The QA tables every demo prints: the rows per question type, and the rows that do not beat their prior."""

from __future__ import annotations

from hf_videolang.demos.common import print_qa_table, qa_below_prior, qa_table_rows

STAGE = {
    "test_questions": 10,
    "test_questions_multi_frame": 6,
    "metrics": {"accuracy": 50.0, "accuracy_multi_frame": 40.0, "accuracy_type_colour": 70.0,
                "accuracy_type_shape": 30.0, "mc_accuracy": 25.0},  # fmt: skip
    "chance": {"accuracy": 10.0, "accuracy_multi_frame": 10.0, "accuracy_type_colour": 10.0,
               "accuracy_type_shape": 10.0, "mc_accuracy": 20.0},  # fmt: skip
    "prior": {"accuracy": 35.0, "accuracy_multi_frame": 40.0, "accuracy_type_colour": 20.0,
              "accuracy_type_shape": 35.0},  # fmt: skip
}


def test_rows_list_overall_multi_frame_then_each_question_type():
    assert qa_table_rows(STAGE) == [
        ("QA accuracy", "accuracy"), ("QA multi-frame", "accuracy_multi_frame"),
        ("  colour", "accuracy_type_colour"), ("  shape", "accuracy_type_shape"),
    ]  # fmt: skip


def test_rows_equal_to_their_prior_count_as_not_beating_it():
    assert qa_below_prior(STAGE["metrics"], STAGE["prior"]) == ["accuracy_multi_frame", "accuracy_type_shape"]


def test_the_table_prints_every_row_and_names_the_ones_below_the_prior(capsys):
    print_qa_table("QA", STAGE, extra_rows=(("MC", "mc_accuracy"),))
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert ["colour", "70.00", "10.00", "20.00"] in rows and ["MC", "25.00", "20.00", "-"] in rows
    assert "at or below the prior: accuracy_multi_frame, accuracy_type_shape" in out
