"""Cheap text heuristics: length, repetition, refusals, boilerplate. Scores are kept apart from decisions.

`score_heuristics` computes every score for a batch as numpy arrays (vectorised over the batch with
pyarrow compute and numpy, no per-text Python loop); `evaluate_heuristics` applies a
`HeuristicThresholds` and names the first failed rule. A stage can store the scores and retune
thresholds without recomputing them.

Repetition follows Gopher (Rae et al., 2021): the share of lines and paragraphs that repeat an earlier
one, the share of word n-gram occurrences that repeat an earlier one (n = 5..10), and the share taken by
the most frequent n-gram (n = 2..4). Shares count occurrences, not characters.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.ngram_hashes import WordHashes, as_string_array, hash_ngram_sizes, hash_strings, hash_words

# Refusals are looked for near the start: a long answer that later says "I cannot help but notice" is
# not a refusal, a reply that opens with "I'm sorry, but I can't" is.
_REFUSAL_WINDOW_CHARS = 300
_REFUSAL_PATTERN = (
    "(?i)(?:"
    + "|".join(
        [
            r"\bas an ai(?: language)? model\b",
            r"\bas a (?:large )?language model\b",
            r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:not|'t)|am unable|won't)\b",
            # "I cannot help but notice" is no refusal: help/assist count only before whom or what is helped.
            r"\bi (?:can(?:not|'t)|am unable to|won't) (?:help|assist)(?:\s+(?:you|with|me|this|that|it)\b|[.,!]|$)",
            r"\bi (?:can(?:not|'t)|am unable to|won't) (?:provide|comply|fulfill|answer|do that|create)\b",
            r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply|fulfill|answer)\b",
            r"\bi must (?:decline|refuse)\b",
            r"\bagainst my (?:guidelines|programming|policy|policies)\b",
            r"(?:抱歉|对不起|很遗憾)[,，]?\s*我(?:无法|不能|没办法|不可以)",
            r"作为(?:一个)?(?:AI|人工智能)(?:语言模型|助手|模型)?[,，]?\s*我(?:无法|不能)",
            r"我(?:无法|不能)(?:提供|回答|协助|帮助|满足|完成)(?:你|您|这)",
        ]
    )
    + ")"
)
# Web and template leftovers that make a sample worthless as training text.
_BOILERPLATE_PATTERN = (
    "(?i)(?:"
    + "|".join(
        [
            r"\blorem ipsum\b",
            r"\ball rights reserved\b",
            r"\b(?:click|tap) here\b",
            r"\bsubscribe to (?:our|the) newsletter\b",
            r"\b(?:enable|turn on) javascript\b",
            r"\bjavascript is (?:disabled|required)\b",
            r"\bcookie (?:policy|settings|consent)\b",
            r"\bwe use cookies\b",
            r"\b(?:privacy policy|terms of (?:use|service))\b",
            r"\bsign up for (?:our|free)\b",
            r"\[(?:your|insert) [^\]]{1,40}\]",  # unfilled placeholders: "[Your Name]"
            r"<insert [^>]{1,40}>",
            r"版权所有|点击(?:这里|此处)|免责声明",
        ]
    )
    + ")"
)

_PARAGRAPH_BREAK = r"\n\s*\n"
_DOCUMENT_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)  # odd, so distinct document ids stay distinct


class HeuristicThresholds(BaseModel):
    """Bounds for `evaluate_heuristics`; each rule rejects with its own reason. None switches a bound off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int | None = Field(1, ge=0)
    max_chars: int | None = Field(100_000, ge=1)
    min_words: int | None = Field(1, ge=0)
    max_words: int | None = Field(None, ge=1)
    max_refusal_matches: int | None = Field(0, ge=0, description="refusal phrases allowed near the start")
    max_boilerplate_matches: int | None = Field(0, ge=0)
    # Repetition shares of a few words are noise ("of the" twice in ten words is 22% of the 2-grams).
    repetition_min_words: int = Field(20, ge=0, description="repetition rules apply from this many words")
    # Gopher's published thresholds (they measure characters; these measure occurrences).
    max_dup_line_frac: float | None = Field(0.30, ge=0, le=1)
    max_dup_paragraph_frac: float | None = Field(0.30, ge=0, le=1)
    max_top_ngram_frac: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_frac: dict[int, float] = Field(default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})


@dataclass(frozen=True)
class HeuristicScores:
    """Per-text scores of a batch; every array has one entry per text."""

    chars: np.ndarray
    words: np.ndarray
    refusal_matches: np.ndarray
    boilerplate_matches: np.ndarray
    dup_line_frac: np.ndarray
    dup_paragraph_frac: np.ndarray
    top_ngram_frac: dict[int, np.ndarray]
    dup_ngram_frac: dict[int, np.ndarray]

    def to_table(self) -> pa.Table:
        """The scores as columns (`top_2gram_frac`, `dup_5gram_frac`, ...), e.g. to keep beside the rows."""
        columns = {
            "chars": self.chars,
            "words": self.words,
            "refusal_matches": self.refusal_matches,
            "boilerplate_matches": self.boilerplate_matches,
            "dup_line_frac": self.dup_line_frac,
            "dup_paragraph_frac": self.dup_paragraph_frac,
        }
        columns |= {f"top_{n}gram_frac": values for n, values in sorted(self.top_ngram_frac.items())}
        columns |= {f"dup_{n}gram_frac": values for n, values in sorted(self.dup_ngram_frac.items())}
        return pa.table(columns)


Texts = Sequence[str | None] | pa.Array | pa.ChunkedArray


def count_chars(texts: Texts) -> np.ndarray:
    """Unicode code points per text (null counts as empty)."""
    return pc.utf8_length(as_string_array(texts)).to_numpy().astype(np.int64)


def count_words(texts: Texts) -> np.ndarray:
    """Words per text: whitespace-separated, with each Han or kana character counting as one word."""
    return np.diff(hash_words(texts).doc_offsets)


def count_refusals(texts: Texts) -> np.ndarray:
    """Refusal phrases (English and Chinese) within the first 300 characters of each text."""
    heads = pc.utf8_slice_codeunits(as_string_array(texts), 0, _REFUSAL_WINDOW_CHARS)
    return pc.count_substring_regex(heads, _REFUSAL_PATTERN).to_numpy().astype(np.int64)


def count_boilerplate(texts: Texts) -> np.ndarray:
    """Web boilerplate and unfilled template placeholders anywhere in each text."""
    return pc.count_substring_regex(as_string_array(texts), _BOILERPLATE_PATTERN).to_numpy().astype(np.int64)


def score_duplicate_lines(texts: Texts) -> np.ndarray:
    """Share of a text's lines with a letter or digit that repeat an earlier such line of it."""
    texts = as_string_array(texts)
    return _duplicate_piece_share(pc.split_pattern(texts, "\n"), len(texts))


def score_duplicate_paragraphs(texts: Texts) -> np.ndarray:
    """Share of a text's paragraphs (split at blank lines) that repeat an earlier paragraph of it."""
    texts = as_string_array(texts)
    return _duplicate_piece_share(pc.split_pattern_regex(texts, _PARAGRAPH_BREAK), len(texts))


RepetitionShares = tuple[dict[int, np.ndarray], dict[int, np.ndarray]]


def score_ngram_repetition(texts: Texts, *, ngram_sizes: Sequence[int]) -> RepetitionShares:
    """For each n: (share of n-gram occurrences repeating an earlier one, share of the most frequent n-gram)."""
    return _ngram_repetition(hash_words(texts), ngram_sizes)


def score_heuristics(
    texts: Texts,
    *,
    top_ngram_sizes: Sequence[int] = (2, 3, 4),
    dup_ngram_sizes: Sequence[int] = (5, 6, 7, 8, 9, 10),
) -> HeuristicScores:
    """Every heuristic score of every text; pick n-gram sizes to match the thresholds you will apply."""
    texts = as_string_array(texts)
    words = hash_words(texts)
    dup_frac, top_frac = _ngram_repetition(words, sorted({*top_ngram_sizes, *dup_ngram_sizes}))
    return HeuristicScores(
        chars=count_chars(texts),
        words=np.diff(words.doc_offsets),
        refusal_matches=count_refusals(texts),
        boilerplate_matches=count_boilerplate(texts),
        dup_line_frac=score_duplicate_lines(texts),
        dup_paragraph_frac=score_duplicate_paragraphs(texts),
        top_ngram_frac={n: top_frac[n] for n in top_ngram_sizes},
        dup_ngram_frac={n: dup_frac[n] for n in dup_ngram_sizes},
    )


def evaluate_heuristics(scores: HeuristicScores, thresholds: HeuristicThresholds) -> list[tuple[RejectReason | None, str]]:
    """Per text: (None, "") to keep, or (reason, detail) for the first failed rule, e.g.
    (RejectReason.REPETITIVE, "dup_line_frac=0.52 > 0.30"). Rules run in order: length, refusal,
    boilerplate, repetition; repetition rules skip texts under `repetition_min_words` words.
    """
    missing = sorted({*thresholds.max_top_ngram_frac} - {*scores.top_ngram_frac} | {*thresholds.max_dup_ngram_frac} - {*scores.dup_ngram_frac})
    if missing:
        raise ValueError(
            f"thresholds bound {missing}-gram repetition but the scores lack those sizes; "
            "pass them to score_heuristics(top_ngram_sizes=..., dup_ngram_sizes=...)"
        )
    long_enough = scores.words >= thresholds.repetition_min_words
    rules: list[tuple[RejectReason, str, np.ndarray, float | None, bool]] = [
        (RejectReason.TOO_SHORT, "chars", scores.chars, thresholds.min_chars, False),
        (RejectReason.TOO_SHORT, "words", scores.words, thresholds.min_words, False),
        (RejectReason.TOO_LARGE, "chars", scores.chars, thresholds.max_chars, True),
        (RejectReason.TOO_LARGE, "words", scores.words, thresholds.max_words, True),
        (RejectReason.REFUSAL, "refusal_matches", scores.refusal_matches, thresholds.max_refusal_matches, True),
        (RejectReason.BOILERPLATE, "boilerplate_matches", scores.boilerplate_matches, thresholds.max_boilerplate_matches, True),
        (RejectReason.REPETITIVE, "dup_line_frac", scores.dup_line_frac, thresholds.max_dup_line_frac, True),
        (RejectReason.REPETITIVE, "dup_paragraph_frac", scores.dup_paragraph_frac, thresholds.max_dup_paragraph_frac, True),
    ]
    rules += [
        (RejectReason.REPETITIVE, f"top_{n}gram_frac", scores.top_ngram_frac[n], bound, True) for n, bound in sorted(thresholds.max_top_ngram_frac.items())
    ]
    rules += [
        (RejectReason.REPETITIVE, f"dup_{n}gram_frac", scores.dup_ngram_frac[n], bound, True) for n, bound in sorted(thresholds.max_dup_ngram_frac.items())
    ]
    count = len(scores.chars)
    decided = np.zeros(count, dtype=bool)
    outcomes: list[tuple[RejectReason | None, str]] = [(None, "")] * count
    for reason, name, values, bound, is_maximum in rules:
        if bound is None:
            continue
        failed = (values > bound) if is_maximum else (values < bound)
        if reason is RejectReason.REPETITIVE:
            failed &= long_enough
        for index in np.flatnonzero(failed & ~decided):
            value = values[index]
            shown = f"{value:.2f}" if isinstance(bound, float) else f"{value}"
            outcomes[index] = (reason, f"{name}={shown} {'>' if is_maximum else '<'} {bound}")
        decided |= failed
    return outcomes


def _ngram_repetition(words: WordHashes, ngram_sizes: Sequence[int]) -> RepetitionShares:
    doc_count = len(words.doc_offsets) - 1
    dup_frac: dict[int, np.ndarray] = {}
    top_frac: dict[int, np.ndarray] = {}
    for n, ngrams in hash_ngram_sizes(words, ngram_sizes).items():
        dup_frac[n], top_frac[n] = _repeat_shares(ngrams.hashes, ngrams.doc_ids, doc_count)
    return dup_frac, top_frac


def _duplicate_piece_share(pieces: pa.ListArray, doc_count: int) -> np.ndarray:
    """Pieces without a letter or digit (blank, or markup alone: a worked answer's `\\[` and
    `\\]` around each formula, a code block's `}`) carry nothing to repeat, so they are not
    counted: with them, right GSM8K answers in LaTeX scored 0.31-0.38 and were rejected."""
    doc_ids = pc.list_parent_indices(pieces).to_numpy()
    flat = pc.utf8_trim_whitespace(pieces.flatten())
    nonblank = pc.match_substring_regex(flat, r"[\pL\pN]")
    keys = hash_strings(pc.filter(flat, nonblank))
    dup_frac, _ = _repeat_shares(keys, doc_ids[nonblank.to_numpy(zero_copy_only=False)], doc_count)
    return dup_frac


def _repeat_shares(keys: np.ndarray, doc_ids: np.ndarray, doc_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: share of keys that repeat an earlier key, and share of the most frequent key when it
    occurs more than once (a text whose n-grams are all distinct has top share 0, however short).

    Sorting (document, key) pairs once replaces a Python set per document. Keys are uniform 64-bit
    hashes, so xor-ing in a multiple of the document id keeps pairs apart (collisions ~ n^2 / 2^65).
    """
    totals = np.bincount(doc_ids, minlength=doc_count)
    dup_frac = np.zeros(doc_count, dtype=np.float64)
    top_frac = np.zeros(doc_count, dtype=np.float64)
    if len(keys) == 0:
        return dup_frac, top_frac
    # One sort of a combined (document, key) hash is several times faster than a two-key lexsort.
    combined = keys ^ (doc_ids.astype(np.uint64) * _DOCUMENT_MULTIPLIER)
    order = np.argsort(combined)
    sorted_combined = combined[order]
    group_starts = np.flatnonzero(np.concatenate([[True], sorted_combined[1:] != sorted_combined[:-1]]))
    group_sizes = np.diff(np.append(group_starts, len(keys)))
    group_docs = doc_ids[order[group_starts]]
    distinct = np.bincount(group_docs, minlength=doc_count)
    largest = np.zeros(doc_count, dtype=np.int64)
    np.maximum.at(largest, group_docs, group_sizes)
    present = totals > 0
    dup_frac[present] = (totals[present] - distinct[present]) / totals[present]
    repeated = present & (largest > 1)
    top_frac[repeated] = largest[repeated] / totals[repeated]
    return dup_frac, top_frac
