"""Tolerant JSON parsing of model output, and schema validation."""

from synthmix.pipeline.llm.llm_output import parse_llm_json

QUESTIONS = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["questions"],
}
ITEMS = {"type": "array", "items": {"type": "object", "required": ["q"]}}


def test_plain_json_parses():
    assert parse_llm_json('{"questions": ["Why?"]}', QUESTIONS) == ({"questions": ["Why?"]}, None)


def test_code_fence_and_prose_around_it_are_ignored():
    text = 'Sure! Here it is:\n```json\n{"questions": ["Why?"]}\n```\nHope this helps.'
    assert parse_llm_json(text, QUESTIONS) == ({"questions": ["Why?"]}, None)


def test_leading_and_trailing_prose_without_fence_is_ignored():
    assert parse_llm_json('Answer: {"questions": ["How?"]} -- done', QUESTIONS)[0] == {"questions": ["How?"]}


def test_trailing_commas_are_repaired():
    assert parse_llm_json('{"questions": ["a", "b",],}', QUESTIONS)[0] == {"questions": ["a", "b"]}


def test_single_object_is_wrapped_where_a_list_is_expected():
    assert parse_llm_json('{"q": "x"}', ITEMS)[0] == [{"q": "x"}]


def test_one_item_list_is_unwrapped_where_an_object_is_expected():
    assert parse_llm_json('[{"questions": ["x"]}]', QUESTIONS)[0] == {"questions": ["x"]}


def test_schema_violation_names_the_path():
    value, error = parse_llm_json('{"questions": [1]}', QUESTIONS)
    assert value is None
    assert error.startswith("schema violation at questions/0")


def test_text_without_json_is_an_error_quoting_it():
    value, error = parse_llm_json("I cannot help with that.", QUESTIONS)
    assert value is None
    assert "no JSON object or array" in error and "I cannot help" in error


def test_truncated_json_is_an_error():
    value, error = parse_llm_json('{"questions": ["Wh', QUESTIONS)
    assert value is None and error.startswith("invalid JSON")


def test_empty_and_null_output_are_errors():
    assert parse_llm_json(None) == (None, "empty output")
    assert parse_llm_json("  ") == (None, "empty output")


def test_without_schema_any_json_value_is_returned():
    assert parse_llm_json("[1, 2]") == ([1, 2], None)
