"""Exact duplicates: texts whose normalised forms are byte-for-byte equal.

A 128-bit BLAKE2b digest of the normalised UTF-8 is the group key: a distributed job groups on
it, and a 64-bit key would not do (among a billion texts a 64-bit collision is a few-percent
event; at 128 bits it is not worth a thought).
"""

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from quality.lsh import choose_representatives
from quality.normalize import TextNormalization, normalize_texts

DIGEST_BYTES = 16


def digest_texts(
    texts: pa.Array | pa.ChunkedArray | Sequence[str], normalization: TextNormalization
) -> pa.FixedSizeBinaryArray:
    """The digest of each text's normalised form; equal digests mean equal normalised texts."""
    normalized = normalize_texts(texts, normalization)
    digests = [
        hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_BYTES).digest() for text in normalized.to_pylist()
    ]
    return pa.array(digests, type=pa.binary(DIGEST_BYTES))


def label_exact_duplicates(digests: pa.FixedSizeBinaryArray) -> np.ndarray:
    """Group label of each text: the index of the first text with the same digest."""
    keys = np.frombuffer(digests.buffers()[1], dtype=f"S{DIGEST_BYTES}")[digests.offset : digests.offset + len(digests)]
    _, first_index, group = np.unique(keys, return_index=True, return_inverse=True)
    return first_index[group.reshape(-1)].astype(np.int64)


def find_exact_duplicates(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    ids: np.ndarray | Sequence[str],
    scores: np.ndarray | Sequence[float],
    normalization: TextNormalization,
) -> np.ndarray:
    """Index of the text kept for each text (itself if kept): highest score, then smallest id."""
    return choose_representatives(label_exact_duplicates(digest_texts(texts, normalization)), scores, ids)
