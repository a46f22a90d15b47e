"""Stable 64-bit hashes of strings, normalised words and word n-grams, computed in bulk with numpy.

Hashes are the same in every process (no salted `hash()`), so an index built once can be shipped to
workers and compared against hashes they compute. Collisions of 64-bit hashes are negligible at the
scale of a dataset shard (about n^2 / 2^65).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Scripts written without spaces between words: each character counts as one word, so Chinese and
# Japanese text gets n-grams (and lengths) comparable to space-separated languages.
_CHARACTER_WORD_SCRIPTS = r"(\p{Han}|\p{Hiragana}|\p{Katakana})"
_NON_WORD = r"[^\p{L}\p{N}]+"

_BYTE_MULTIPLIER = np.uint64(0x100000001B3)  # the FNV-64 prime: odd, so multiplication mod 2^64 is a bijection
_NGRAM_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class WordHashes:
    """The normalised words of a batch of texts, concatenated, with their hashes.

    Words of text `i` are `words[doc_offsets[i]:doc_offsets[i + 1]]`.
    """

    words: pa.StringArray
    hashes: np.ndarray  # uint64, one per word
    doc_offsets: np.ndarray  # int64, length = number of texts + 1


@dataclass(frozen=True)
class NgramHashes:
    """Hashes of every run of `n` consecutive words that lies inside one text."""

    hashes: np.ndarray  # uint64
    doc_ids: np.ndarray  # int64: which text each n-gram comes from
    starts: np.ndarray  # int64: index in `WordHashes.words` of the n-gram's first word


def as_string_array(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.StringArray:
    """One contiguous string array; nulls become empty strings so every text has a score."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(texts, type=pa.string())
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    return pc.fill_null(texts, "")


def _finalise(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads polynomial hashes over all 64 bits."""
    z = values.copy()
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def hash_strings(strings: pa.StringArray) -> np.ndarray:
    """A uint64 hash per string, from its UTF-8 bytes; equal strings hash equal in any process."""
    # Words follow Zipf's law: hashing each distinct string once and gathering is several times
    # cheaper than hashing every occurrence byte by byte.
    encoded = pc.dictionary_encode(as_string_array(strings))
    return _hash_distinct_strings(encoded.dictionary)[encoded.indices.to_numpy(zero_copy_only=False)]


def _hash_distinct_strings(strings: pa.StringArray) -> np.ndarray:
    count = len(strings)
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + count + 1]
    offsets = offsets.astype(np.int64)
    data_buffer = strings.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64)
    starts = offsets[:-1] - offsets[0]
    lengths = np.diff(offsets)
    position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    powers = np.cumprod(np.full(max(int(lengths.max()), 1), _BYTE_MULTIPLIER, dtype=np.uint64))
    # +1 so that zero bytes still change the sum; the length below separates prefixes of zeros.
    contributions = (data + np.uint64(1)) * powers[position]
    sums = np.zeros(count, dtype=np.uint64)
    nonempty = lengths > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(contributions, starts[nonempty])
    return _finalise(sums ^ (lengths.astype(np.uint64) * _NGRAM_MULTIPLIER))


def split_words(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """Lowercased words of each text: punctuation dropped, Han and kana characters one word each."""
    texts = pc.utf8_lower(as_string_array(texts))
    texts = pc.replace_substring_regex(texts, _CHARACTER_WORD_SCRIPTS, r" \1 ")
    texts = pc.replace_substring_regex(texts, _NON_WORD, " ")
    return pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts))


def hash_words(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> WordHashes:
    """Normalised words of every text (see `split_words`) and their hashes."""
    texts = as_string_array(texts)
    word_lists = split_words(texts)
    flat = word_lists.flatten()
    doc_of_word = pc.list_parent_indices(word_lists).to_numpy()
    # utf8_split_whitespace turns "" into [""]: drop those so an empty text has no words.
    keep = pc.greater(pc.utf8_length(flat), 0)
    words = pc.filter(flat, keep)
    doc_of_word = doc_of_word[keep.to_numpy(zero_copy_only=False)]
    counts = np.bincount(doc_of_word, minlength=len(texts))
    doc_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    words = words.combine_chunks() if isinstance(words, pa.ChunkedArray) else words
    return WordHashes(words=words, hashes=hash_strings(words), doc_offsets=doc_offsets)


def hash_ngrams(words: WordHashes, n: int) -> NgramHashes:
    """Hashes of all word n-grams that do not cross a text boundary; texts shorter than n give none."""
    return hash_ngram_sizes(words, [n])[n]


def hash_ngram_sizes(words: WordHashes, sizes: Sequence[int]) -> dict[int, NgramHashes]:
    """`hash_ngrams` for several sizes at once: the n-gram hash extends the (n-1)-gram hash by one word,
    so all sizes up to the largest cost one pass per word position, not one per size and position."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"n-gram sizes {list(sizes)} must be positive; use n >= 1 (13 words is usual for decontamination)")
    total = len(words.hashes)
    doc_of_word = np.repeat(np.arange(len(words.doc_offsets) - 1), np.diff(words.doc_offsets))
    wanted = set(sizes)
    result: dict[int, NgramHashes] = {}
    combined = np.zeros(total, dtype=np.uint64)
    for n in range(1, max(wanted) + 1):
        # combined[i] holds the hash of words i..i+n-1 (only the first total-n+1 entries are meaningful).
        count = max(total - n + 1, 0)
        combined = combined[:count] * _NGRAM_MULTIPLIER + words.hashes[n - 1 : n - 1 + count]
        if n in wanted:
            starts = np.flatnonzero(doc_of_word[:count] == doc_of_word[n - 1 : n - 1 + count])
            result[n] = NgramHashes(hashes=_finalise(combined[starts]), doc_ids=doc_of_word[starts], starts=starts)
    return result
