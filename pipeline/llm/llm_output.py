"""Tolerant parsing of a model's JSON output, then validation against the expected schema.

Small models wrap JSON in code fences, prefix it with prose ("Sure! Here is..."), leave
trailing commas, or return one object where a list was asked for (and the reverse). These are
repaired; anything else is a parse error with a reason, so the stage can reject the row with
`parse_error` and keep the raw text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_ERROR_TEXT_CHARS = 120


def parse_llm_json(text: str | None, schema: dict[str, Any] | None = None) -> tuple[Any | None, str | None]:
    """Parse `text` as JSON, repairing common model slips, and check it against `schema`.

    Returns `(value, None)` on success and `(None, reason)` otherwise; never raises on bad text.
    """
    if text is None or not text.strip():
        return None, "empty output"
    value, error = _decode_tolerantly(text)
    if error is not None:
        return None, error
    if schema is not None:
        value = _match_container(value, schema)
        error = validate_against_schema(value, schema)
        if error is not None:
            return None, error
    return value, None


def validate_against_schema(value: Any, schema: dict[str, Any]) -> str | None:
    """None if `value` satisfies `schema`, else the first violation with its JSON path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"schema violation at {where}: {error.message}"


def _decode_tolerantly(text: str) -> tuple[Any | None, str | None]:
    candidates = [match.group(1) for match in _FENCE.finditer(text)] or [text]
    first_error = None
    for candidate in candidates:
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            value, error = _decode_first_value(attempt)
            if error is None:
                return value, None
            first_error = first_error or error
    return None, first_error


def _decode_first_value(text: str) -> tuple[Any | None, str | None]:
    """Decode the first JSON object or array in `text`, ignoring prose before and after it."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None, f"no JSON object or array in output: {text.strip()[:_ERROR_TEXT_CHARS]!r}"
    start = min(starts)
    try:
        value, _end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON ({error.msg} at char {error.pos}): {text[start:][:_ERROR_TEXT_CHARS]!r}"
    return value, None


def _match_container(value: Any, schema: dict[str, Any]) -> Any:
    """Wrap a lone object where the schema wants an array; unwrap a one-item array where it wants an object."""
    expected = schema.get("type")
    if expected == "array" and isinstance(value, dict):
        return [value]
    if expected == "object" and isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    return value
