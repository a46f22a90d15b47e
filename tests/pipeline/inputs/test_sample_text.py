"""Which text of a row the quality filters and the classifier trainer read."""

import pyarrow as pa
import pytest

from synthmix.pipeline.inputs.sample_text import choose_text_source, row_texts


def test_pairs_are_read_as_instruction_then_answer_with_nulls_as_empty():
    table = pa.table({"instruction": ["Why?", None], "answer": ["Because.", "Yes."], "text": ["seed", "seed"]})
    assert row_texts(table, None).to_pylist() == ["Why?\n\nBecause.", "\n\nYes."]


def test_seed_rows_are_read_from_text():
    table = pa.table({"text": ["a document", None]})
    assert choose_text_source(table.column_names, None) == "text"
    assert row_texts(table, None).to_pylist() == ["a document", ""]


def test_a_configured_column_wins_over_the_pair():
    table = pa.table({"instruction": ["Why?"], "answer": ["Because."], "summary": ["short"]})
    assert row_texts(table, "summary").to_pylist() == ["short"]


def test_missing_columns_name_what_the_rows_have():
    with pytest.raises(ValueError, match="text_column 'body' is not a column of the rows \\(id, text\\)"):
        choose_text_source(["id", "text"], "body")
    with pytest.raises(ValueError, match="set text_column"):
        choose_text_source(["id", "answer"], None)
