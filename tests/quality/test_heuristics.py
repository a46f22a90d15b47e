from pydoc_data.topics import topics

import numpy as np
import pyarrow as pa
import pytest

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.heuristics import (
    HeuristicThresholds,
    count_boilerplate,
    count_chars,
    count_refusals,
    count_words,
    evaluate_heuristics,
    score_duplicate_lines,
    score_duplicate_paragraphs,
    score_heuristics,
    score_ngram_repetition,
)


def _prose_paragraphs() -> list[str]:
    """Real English prose: pydoc topic paragraphs that are sentences, not grammar or code listings."""
    paragraphs = [p.strip() for topic in topics.values() for p in topic.split("\n\n")]
    return [p for p in paragraphs if len(p.split()) >= 40 and not p.startswith((" ", ">>>")) and "::=" not in p]


def test_real_prose_passes_every_default_rule() -> None:
    prose = _prose_paragraphs()[:300]
    outcomes = evaluate_heuristics(score_heuristics(prose), HeuristicThresholds())
    rejected = [(reason, detail) for reason, detail in outcomes if reason is not None]
    assert len(prose) == 300
    assert len(rejected) <= 6, rejected  # a few real paragraphs do repeat themselves


def test_planted_faults_are_rejected_with_their_own_reason() -> None:
    prose = _prose_paragraphs()[0]
    texts = [
        prose,
        "ok",
        "I'm sorry, but I can't help with that request. " + prose,
        "As an AI language model, I do not have opinions. " + prose,
        "抱歉，我无法回答这个问题。",
        prose + " Click here to subscribe to our newsletter.",
        "Dear [Your Name], " + prose,
        " ".join([prose.split(".")[0]] * 8),
        "\n".join(["Buy the best widgets today from our store"] * 6 + [prose]),
    ]
    thresholds = HeuristicThresholds(min_chars=10)
    reasons = [reason for reason, _ in evaluate_heuristics(score_heuristics(texts), thresholds)]
    assert reasons == [
        None,
        "too_short",
        "refusal",
        "refusal",
        "refusal",
        "boilerplate",
        "boilerplate",
        "repetitive",
        "repetitive",
    ]


def test_reasons_are_pipeline_reject_reasons() -> None:
    texts = ["ok", "spam " * 100, "As an AI language model, I cannot.", "lorem ipsum dolor sit amet", "spam eggs " * 15]
    thresholds = HeuristicThresholds(min_chars=3, max_chars=None, max_words=60)
    reasons = {reason for reason, _ in evaluate_heuristics(score_heuristics(texts), thresholds)}
    assert reasons == {"too_short", "too_large", "refusal", "boilerplate", "repetitive"}
    assert all(RejectReason(reason) == reason for reason in reasons)


def test_detail_names_the_score_and_the_bound() -> None:
    lines = "\n".join(["same line here"] * 30)
    [(reason, detail)] = evaluate_heuristics(score_heuristics([lines]), HeuristicThresholds())
    assert reason == "repetitive"
    assert detail == "dup_line_frac=0.97 > 0.3"


def test_a_bound_set_to_none_is_not_applied() -> None:
    scores = score_heuristics(["ok"])
    assert evaluate_heuristics(scores, HeuristicThresholds(min_chars=5))[0][0] == "too_short"
    assert evaluate_heuristics(scores, HeuristicThresholds(min_chars=None)) == [(None, "")]


def test_repetition_rules_skip_texts_shorter_than_the_minimum_words() -> None:
    short = "yes yes yes yes yes yes"
    assert evaluate_heuristics(score_heuristics([short]), HeuristicThresholds())[0] == (None, "")
    reason, _ = evaluate_heuristics(score_heuristics([short]), HeuristicThresholds(repetition_min_words=5))[0]
    assert reason == "repetitive"


def test_thresholds_for_unscored_ngram_sizes_are_a_config_error() -> None:
    scores = score_heuristics(["some text"], top_ngram_sizes=(2,), dup_ngram_sizes=(5,))
    with pytest.raises(ValueError, match=r"\[3, 4, 6, 7, 8, 9, 10\]-gram"):
        evaluate_heuristics(scores, HeuristicThresholds())


def test_lengths_count_code_points_and_cjk_characters_as_words() -> None:
    texts = pa.array(["Hello, wide world!", "你好世界", None, ""])
    assert count_chars(texts).tolist() == [18, 4, 0, 0]
    assert count_words(texts).tolist() == [3, 4, 0, 0]


def test_refusals_are_found_only_near_the_start() -> None:
    late = "x " * 400 + "I cannot help with that."
    counts = count_refusals(["I cannot help with that.", late, "I cannot help but notice the pattern."])
    assert counts.tolist() == [1, 0, 0]


def test_boilerplate_counts_every_match() -> None:
    text = "All rights reserved. We use cookies. Read our Privacy Policy. Dear [Your Name],"
    assert count_boilerplate([text, "Lists like [1, 2] and JavaScript code are fine."]).tolist() == [4, 0]


def test_duplicate_line_and_paragraph_shares_ignore_blank_pieces() -> None:
    text = "a\n\nb\n\na\n\na"
    assert score_duplicate_lines([text]).tolist() == [0.5]
    assert score_duplicate_paragraphs([text, ""]).tolist() == [0.5, 0.0]


def test_lines_of_markup_alone_are_not_repeats() -> None:
    # A right GSM8K answer by Qwen2.5-Coder-0.5B (eval run): every formula between \\[ and \\].
    worked = (
        "To determine the total, we need to follow these steps:\n\n"
        "1. Identify the number of friends Lily made.\n   \\[\n   \\text{Lily's friends} = 50\n   \\]\n\n"
        "2. Determine the number of friends Amy made.\n   \\[\n   \\text{Amy's friends} = 20 + 50 = 70\n   \\]\n\n"
        "3. Add them.\n   \\[\n   50 + 70 = 120\n   \\]\n\n"
        "The answer is 120."
    )
    assert score_duplicate_lines([worked, "}\n}\nx = 1\nx = 1"]).tolist() == [0.0, 0.5]


def test_ngram_repetition_shares_count_occurrences() -> None:
    dup, top = score_ngram_repetition(["a b a b a b", "a b c d"], ngram_sizes=(2,))
    # 2-grams of the first text: ab ba ab ba ab -> 3 of 5 repeat; "ab" is 3 of 5.
    np.testing.assert_allclose(dup[2], [0.6, 0.0])
    np.testing.assert_allclose(top[2], [0.6, 0.0])


def test_scores_table_has_one_column_per_score() -> None:
    table = score_heuristics(["one two three"], top_ngram_sizes=(2,), dup_ngram_sizes=(5,)).to_table()
    assert table.column_names == [
        "chars",
        "words",
        "refusal_matches",
        "boilerplate_matches",
        "dup_line_frac",
        "dup_paragraph_frac",
        "top_2gram_frac",
        "dup_5gram_frac",
    ]
