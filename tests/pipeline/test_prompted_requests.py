"""Reading a row's reply: a value, or the reason there is none."""

from __future__ import annotations

import json

import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.prompted_requests import read_reply

SCHEMA = json.dumps({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})


def row(text, *, error=None, error_reason=None, schema=None, tokens=3):
    return {
        contracts.GENERATED_TEXT: text,
        contracts.LLM_ERROR: error,
        contracts.LLM_ERROR_REASON: error_reason,
        contracts.JSON_SCHEMA: schema,
        contracts.GENERATED_TOKENS: tokens,
    }


def test_a_prompt_counted_too_long_is_its_own_reason_with_the_count_and_limit():
    reply = read_reply(row(None, error="the prompt has 9000 tokens; model 'm' takes at most 2047", error_reason="prompt_too_long"))
    assert reply.reason is RejectReason.PROMPT_TOO_LONG and "9000 tokens" in reply.detail


def test_any_other_failed_request_is_an_llm_error():
    assert read_reply(row(None, error="HTTP 400: too long", error_reason="llm_error")).reason is RejectReason.LLM_ERROR
    # Rows written before llm_error_reason existed carry only the error.
    assert read_reply(row(None, error="engine error")).reason is RejectReason.LLM_ERROR


@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["text", "json"])
@pytest.mark.parametrize("text", [None, "", " \n\t"], ids=["none", "empty", "blank"])
def test_a_reply_without_text_is_empty_whatever_was_asked_for(text, schema):
    reply = read_reply(row(text, schema=schema, tokens=0))
    assert reply.reason is RejectReason.EMPTY and reply.value is None
    assert "no text (0 tokens generated)" in reply.detail


def test_text_that_does_not_fit_the_schema_is_a_parse_error_keeping_the_raw_text():
    reply = read_reply(row("Sure! The answer is 4.", schema=SCHEMA))
    assert reply.reason is RejectReason.PARSE_ERROR and "The answer is 4" in json.loads(reply.detail)["raw"]
    assert read_reply(row('{"answer": "4"}', schema=SCHEMA)).value == {"answer": "4"}
