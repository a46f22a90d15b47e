"""Why a row was dropped: machine-readable reasons, named by the fault."""

from enum import StrEnum


class RejectReason(StrEnum):
    # input
    EMPTY = "empty"  # no text after normalisation
    NOT_UTF8 = "not_utf8"  # bytes that are not valid UTF-8
    TOO_LARGE = "too_large"  # over the configured size limit
    PARSE_ERROR = "parse_error"  # a line/record or an LLM output that does not parse
    MISSING_FIELD = "missing_field"  # a record without the configured text field
    EXACT_DUPLICATE = "exact_duplicate"  # same normalised text as a row kept elsewhere
    # generation
    LLM_ERROR = "llm_error"  # the request failed (engine error, timeout, 5xx, context overflow)
    COPIES_SEED = "copies_seed"  # an instruction that repeats its seed text
    NOT_A_REQUEST = "not_a_request"  # an instruction that asks for nothing
    NO_INFORMATION_GAIN = "no_information_gain"  # an evolution that adds nothing over its parent
    TEMPLATE_LEAK = "template_leak"  # prompt-template words copied into the output
    REFUSAL = "refusal"  # the model declined
    TOO_SHORT = "too_short"
    # filtering
    CRITIQUE_LOW = "critique_low"
    INCONSISTENT = "inconsistent"  # self-consistency vote below the agreement threshold
    NEAR_DUPLICATE = "near_duplicate"
    LANG = "lang"  # language not wanted, or instruction/answer languages differ
    QUALITY_LOW = "quality_low"
    REPETITIVE = "repetitive"
    BOILERPLATE = "boilerplate"
    CONTAMINATED = "contaminated"  # shares a long n-gram with a benchmark
