"""MinHash signatures: for each of num_perm random permutations of the shingle-hash space, the
smallest permuted hash of a document's shingles. The share of equal positions in two signatures
estimates the Jaccard similarity of their shingle sets.

Each permutation is x -> a*x + b mod 2**32 (a odd) over the top 32 bits of the shingle hashes:
a bijection of 32-bit values, so a true permutation of the already well-mixed hashes, computed
with wrapping uint32 arithmetic that numpy vectorises (8 lanes per AVX2 instruction). Reducing
mod the Mersenne prime 2**61 - 1, as datasketch does, needs 128-bit products that numpy lacks
(datasketch's uint64 products silently wrap), and 64-bit lanes halve the throughput. The accuracy
this buys back is tested against datasketch (tests/quality/test_minhash.py). 32-bit values make
a false equal slot between different shingles a 1-in-4-billion event, as in datasketch.
"""

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from synthmix.quality.normalize import normalize_texts
from synthmix.quality.shingles import ShingleHashes, ShingleSpec, TextUnits, cut_units, hash_chunk_shingles, text_chunks

# Shingles permuted per block: num_perm x 8192 uint32 values (4 MiB at 128) stay cache-sized.
SHINGLES_PER_BLOCK = 8192
EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # a signature slot of a text without shingles


def draw_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) coefficients of num_perm permutations, a function of (num_perm, seed) only."""
    if num_perm < 1:
        raise ValueError(f"num_perm={num_perm} must be at least 1; 128 is the usual choice")
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32, endpoint=False) | np.uint32(1)
    increments = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32, endpoint=False)
    return multipliers, increments


def compute_minhash_signatures(texts: pa.Array | pa.ChunkedArray | Sequence[str], *, num_perm: int, seed: int, shingle: ShingleSpec) -> np.ndarray:
    """Signatures of the texts, shape (len(texts), num_perm), uint32.

    A text without shingles (empty after normalisation) gets EMPTY_SLOT in every position;
    callers leave such rows out of near-duplicate search (see has_shingles).
    """
    return sign_units(cut_units(normalize_texts(texts, shingle.normalization), shingle.kind), shingle, num_perm=num_perm, seed=seed)


def sign_units(units: TextUnits, shingle: ShingleSpec, *, num_perm: int, seed: int) -> np.ndarray:
    """Signatures of the shingles of each text's units, shape (texts, num_perm), uint32: the same as
    sign_shingles(hash_unit_shingles(units, shingle)), but hashed and signed one chunk of texts at
    a time (quality/shingles.py text_chunks), so a chunk's shingles are signed while in cache and
    the batch's shingles are never all held."""
    chunks = text_chunks(units.offsets)
    return np.concatenate([sign_shingles(hash_chunk_shingles(units, first, last, shingle), num_perm=num_perm, seed=seed) for first, last in chunks])


def sign_shingles(shingles: ShingleHashes, *, num_perm: int, seed: int) -> np.ndarray:
    """Signatures of already hashed shingles, shape (documents, num_perm), uint32."""
    multipliers, increments = draw_permutations(num_perm, seed)
    multipliers, increments = multipliers[:, None], increments[:, None]
    offsets = shingles.offsets
    hashes = (shingles.hashes >> np.uint64(32)).astype(np.uint32)
    # Permutation-major layout: the per-document minimum then runs along contiguous memory.
    minima = np.full((num_perm, len(offsets) - 1), EMPTY_SLOT, dtype=np.uint32)
    for block_start in range(0, int(offsets[-1]), SHINGLES_PER_BLOCK):
        block_end = min(block_start + SHINGLES_PER_BLOCK, int(offsets[-1]))
        permuted = multipliers * hashes[block_start:block_end]
        permuted += increments
        # Documents with shingles in this block; one may straddle its edges, hence the np.minimum.
        first = np.searchsorted(offsets, block_start, side="right") - 1
        last = np.searchsorted(offsets, block_end, side="left")
        segment_starts = np.clip(offsets[first:last], block_start, block_end) - block_start
        documents = np.arange(first, last)
        nonempty = segment_starts < np.append(segment_starts[1:], block_end - block_start)
        documents, segment_starts = documents[nonempty], segment_starts[nonempty]
        block_minima = np.minimum.reduceat(permuted, segment_starts, axis=1)
        minima[:, documents] = np.minimum(minima[:, documents], block_minima)
    return np.ascontiguousarray(minima.T)


def has_shingles(signatures: np.ndarray) -> np.ndarray:
    """Rows that came from a text with at least one shingle."""
    return ~(signatures == EMPTY_SLOT).all(axis=1)


def estimate_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of row-aligned signature pairs: the share of equal slots."""
    if left.shape != right.shape:
        raise ValueError(f"signature shapes differ: {left.shape} vs {right.shape}; pass row-aligned pairs")
    return np.count_nonzero(left == right, axis=1) / left.shape[1]
