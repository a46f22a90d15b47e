"""Exact duplicates: texts whose normalised forms are byte-for-byte equal.

A 128-bit BLAKE2b digest of the normalised UTF-8 is the group key: a distributed job groups on
it, and a 64-bit key would not do (among a billion texts a 64-bit collision is a few-percent
event; at 128 bits it is not worth a thought).
"""

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from quality.duplicate_selection import choose_representatives
from quality.normalize import TextNormalization, normalize_texts, string_buffers

DIGEST_BYTES = 16


def digest_texts(
    texts: pa.Array | pa.ChunkedArray | Sequence[str], normalization: TextNormalization
) -> pa.FixedSizeBinaryArray:
    """The digest of each text's normalised form; equal digests mean equal normalised texts."""
    return digest_normalized(normalize_texts(texts, normalization))


def digest_normalized(normalized: pa.LargeStringArray) -> pa.FixedSizeBinaryArray:
    """digest_texts for texts already normalised (normalize_texts)."""
    data, offsets = string_buffers(normalized)
    view = memoryview(data)
    digests = b"".join(
        hashlib.blake2b(view[start:end], digest_size=DIGEST_BYTES).digest()
        for start, end in itertools.pairwise(offsets.tolist())
    )
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(DIGEST_BYTES), len(offsets) - 1, [None, pa.py_buffer(digests)])


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
