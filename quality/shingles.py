"""Shingle hashes in bulk: word or character n-grams of a whole batch as one flat uint64 array.

No Python set per document: words are cut and hashed over the batch's UTF-8 buffer with numpy,
and n-grams are rolling combinations of unit hashes, so the cost is a few vectorised passes
over the bytes. Hashes depend only on the text and the spec (no seed, no process state), so
every worker of a distributed job computes the same ones.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from quality.normalize import SPACE, TextNormalization, normalize_texts, string_buffers, utf8_code_points

# Odd 64-bit constants (golden ratio, and splitmix64's) for polynomial combination and mixing.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)
# LOW_BYTES_MASK[k] keeps the k low bytes of a little-endian uint64.
LOW_BYTES_MASK = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


class ShingleSpec(BaseModel):
    """What a shingle is. Record it with signatures: other specs give incomparable hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Words for space-separated languages; characters for Chinese, Japanese, Thai and other
    # unsegmented text, where a whole sentence is one "word".
    kind: Literal["word", "char"] = "word"
    n: int = Field(5, ge=1, le=64)
    normalization: TextNormalization = TextNormalization()


@dataclass(frozen=True)
class ShingleHashes:
    """Document i owns hashes[offsets[i]:offsets[i + 1]]; a text shorter than n units is one
    shingle of all its units, and an empty text has none."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, one more than the number of documents

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all output bits (in place)."""
    values ^= values >> np.uint64(30)
    values *= MIX_1
    values ^= values >> np.uint64(27)
    values *= MIX_2
    values ^= values >> np.uint64(31)
    return values


def hash_shingles(texts: pa.Array | pa.ChunkedArray | Sequence[str], spec: ShingleSpec) -> ShingleHashes:
    """Normalise the texts, cut them into units (words or code points) and hash their n-grams."""
    normalized = normalize_texts(texts, spec.normalization)
    if spec.kind == "word":
        units, unit_offsets = hash_words(normalized)
    else:
        units, unit_offsets = code_points(normalized)
    return hash_ngrams(units, unit_offsets, spec.n)


def hash_words(normalized: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Hash every space-separated word of normalised texts: (word hashes, per-text word offsets).

    Relies on normalize_texts' guarantee: words are separated by exactly one space, with none at
    either end of a text. A word is read 8 bytes at a time through an unaligned uint64 view.
    """
    data, offsets = string_buffers(normalized)
    nonempty = offsets[:-1] < offsets[1:]
    is_space = np.append(data == SPACE, False)
    is_start = np.empty_like(is_space)
    is_start[1:] = is_space[:-1]
    is_start[0] = False
    is_start[offsets[:-1][nonempty]] = True
    is_space[offsets[1:][nonempty]] = True  # now marks every word's end: a space or a text's end
    starts = np.flatnonzero(is_start)
    lengths = np.flatnonzero(is_space) - starts
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    windows = np.ndarray(shape=(len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))

    # Pass k reads bytes 8k..8k+7 of the words longer than 8k bytes; most words need one pass.
    block = windows[starts] & LOW_BYTES_MASK[np.minimum(lengths, 8)]  # drop bytes past the word's end
    hashes = mix64((lengths.astype(np.uint64) * GOLDEN ^ block) * GOLDEN)
    words = np.flatnonzero(lengths > 8)
    passes = 1
    while len(words):
        remaining = lengths[words] - 8 * passes
        block = windows[starts[words] + 8 * passes] & LOW_BYTES_MASK[np.minimum(remaining, 8)]
        hashes[words] = mix64((hashes[words] ^ block) * GOLDEN)
        passes += 1
        words = words[remaining > 8]
    word_offsets = np.searchsorted(starts, offsets).astype(np.int64)
    return hashes, word_offsets


def code_points(normalized: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Every text's Unicode code points as uint64, with per-text offsets."""
    data, offsets = string_buffers(normalized)
    starts = np.flatnonzero((data & 0xC0) != 0x80)  # every byte but UTF-8 continuation bytes
    points = data[starts].astype(np.uint64)
    multi_byte = np.flatnonzero(points >= 0xC0)
    points[multi_byte] = utf8_code_points(data, starts[multi_byte])
    return points, np.searchsorted(starts, offsets).astype(np.int64)


def hash_ngrams(units: np.ndarray, unit_offsets: np.ndarray, n: int) -> ShingleHashes:
    """Hash every window of n consecutive units that stays inside one text."""
    lengths = np.diff(unit_offsets)
    per_text = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
    first_unit = np.repeat(unit_offsets[:-1] - offsets[:-1], per_text) + np.arange(int(offsets[-1]))
    # Hash the window at every position of the flat unit array with contiguous slices, then keep
    # the windows that start a shingle; texts shorter than n are hashed apart, over their units only.
    padded = np.concatenate([units, np.zeros(n, dtype=np.uint64)])
    windows = np.full(len(units), (n * int(GOLDEN)) % 2**64, dtype=np.uint64)
    for position in range(n):
        windows *= GOLDEN
        windows += padded[position : position + len(units)]
    hashes = windows[first_unit]
    short = np.flatnonzero(np.repeat((lengths > 0) & (lengths < n), per_text))
    if len(short):
        widths = np.repeat(lengths, per_text)[short]
        hashes[short] = widths.astype(np.uint64) * GOLDEN
        for position in range(n):
            hashes[short] *= GOLDEN
            hashes[short] += np.where(widths > position, padded[first_unit[short] + position], np.uint64(0))
    return ShingleHashes(hashes=mix64(hashes), offsets=offsets)
