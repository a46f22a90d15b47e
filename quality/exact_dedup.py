"""Exact duplicates: texts whose normalised forms are byte-for-byte equal.

A 128-bit BLAKE2b digest of the normalised UTF-8 is the group key where texts are grouped apart
from their text: a 64-bit key would not do (among a billion texts a 64-bit collision is a
few-percent event; at 128 bits it is not worth a thought). Where the texts are at hand,
text_groups compares the texts themselves; copy_keys is a cheap 64-bit key for routing
(bucketing), where a collision costs only work.
"""

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthmix.quality.duplicate_selection import choose_representatives
from synthmix.quality.normalize import TextNormalization, normalize_texts, string_buffers
from synthmix.quality.shingles import GOLDEN, LOW_BYTES_MASK, MIX_1, mix64

DIGEST_BYTES = 16


def digest_texts(texts: pa.Array | pa.ChunkedArray | Sequence[str], normalization: TextNormalization) -> pa.FixedSizeBinaryArray:
    """The digest of each text's normalised form; equal digests mean equal normalised texts."""
    return digest_normalized(normalize_texts(texts, normalization))


def digest_normalized(normalized: pa.LargeStringArray) -> pa.FixedSizeBinaryArray:
    """digest_texts for texts already normalised (normalize_texts)."""
    data, offsets = string_buffers(normalized)
    view = memoryview(data)
    digests = b"".join(hashlib.blake2b(view[start:end], digest_size=DIGEST_BYTES).digest() for start, end in itertools.pairwise(offsets.tolist()))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(DIGEST_BYTES), len(offsets) - 1, [None, pa.py_buffer(digests)])


def text_groups(normalized: pa.LargeStringArray) -> np.ndarray:
    """A label per text, equal exactly when the texts are equal (a hash table over the texts)."""
    return pc.dictionary_encode(normalized).indices.to_numpy(zero_copy_only=False).astype(np.int64)


def copy_keys(normalized: pa.LargeStringArray) -> np.ndarray:
    """A uint64 key per text: equal texts share it; two different texts do by a 2**-64 chance.

    Vectorised over the batch (BLAKE2b per text costs ~20 ns per byte in a Python loop): the
    sum, wrapping, of every 8-byte block mixed with its position, then mixed with the length.
    Two texts of one length that differ in a single block always get different keys."""
    data, offsets = string_buffers(normalized)
    lengths = np.diff(offsets)
    blocks_per_text = (lengths + 7) // 8
    first_block = np.cumsum(blocks_per_text) - blocks_per_text
    position = np.arange(int(blocks_per_text.sum())) - np.repeat(first_block, blocks_per_text)
    byte_start = np.repeat(offsets[:-1], blocks_per_text) + 8 * position
    remaining = np.repeat(lengths, blocks_per_text) - 8 * position
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    windows = np.ndarray(shape=(len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    blocks = windows[byte_start] & LOW_BYTES_MASK[np.minimum(remaining, 8)]
    mixed = mix64(blocks ^ (position.astype(np.uint64) * GOLDEN))
    sums = np.zeros(len(lengths), dtype=np.uint64)
    nonempty = blocks_per_text > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(mixed, first_block[nonempty])
    return mix64(sums ^ (lengths.astype(np.uint64) * MIX_1))


def digest_keys(digests: pa.FixedSizeBinaryArray) -> np.ndarray:
    """The digests as a numpy bytes array (dtype S16), zero-copy: sortable and comparable."""
    keys = np.frombuffer(digests.buffers()[1], dtype=f"S{DIGEST_BYTES}") if len(digests) else np.empty(0, f"S{DIGEST_BYTES}")
    return keys[digests.offset : digests.offset + len(digests)]


def label_exact_duplicates(digests: pa.FixedSizeBinaryArray) -> np.ndarray:
    """Group label of each text: the index of the first text with the same digest."""
    _, first_index, group = np.unique(digest_keys(digests), return_index=True, return_inverse=True)
    return first_index[group.reshape(-1)].astype(np.int64)


def find_exact_duplicates(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    ids: np.ndarray | Sequence[str],
    scores: np.ndarray | Sequence[float],
    normalization: TextNormalization,
) -> np.ndarray:
    """Index of the text kept for each text (itself if kept): highest score, then smallest id."""
    return choose_representatives(label_exact_duplicates(digest_texts(texts, normalization)), scores, ids)
