"""Decontamination: find samples that share a long word n-gram with a benchmark set.

Words are normalised (lowercase, punctuation dropped, Han/kana characters one word each; see
`synthmix.quality.ngram_hashes.split_words`), so reformatting or re-indenting a benchmark problem does not
hide it. N-grams are compared as stable 64-bit hashes in sorted numpy arrays, not Python sets.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from synthmix.quality.ngram_hashes import hash_ngrams, hash_words

DEFAULT_NGRAM_WORDS = 13  # the n-gram length GPT-3's contamination study used


@dataclass(frozen=True)
class NgramIndex:
    """Sorted n-gram hashes of benchmark texts, with the benchmark each came from."""

    n: int
    hashes: np.ndarray  # uint64, sorted, unique
    benchmark_ids: np.ndarray  # int32: index into benchmark_names, per hash
    benchmark_names: tuple[str, ...]


@dataclass(frozen=True)
class ContaminationMatch:
    benchmark: str
    ngram: str  # the shared n-gram, as normalised words of the sample joined by spaces


def build_ngram_index(benchmarks: Mapping[str, Sequence[str]], *, n: int = DEFAULT_NGRAM_WORDS) -> NgramIndex:
    """Index every n-gram of every text of each named benchmark. An n-gram in several benchmarks keeps the
    first name in `benchmarks` order. Benchmark texts shorter than n words add nothing."""
    names = tuple(benchmarks)
    hash_parts = []
    id_parts = []
    for benchmark_id, name in enumerate(names):
        ngrams = hash_ngrams(hash_words(list(benchmarks[name])), n)
        hash_parts.append(ngrams.hashes)
        id_parts.append(np.full(len(ngrams.hashes), benchmark_id, dtype=np.int32))
    hashes = np.concatenate(hash_parts) if hash_parts else np.zeros(0, dtype=np.uint64)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
    # A stable sort keeps, for each hash, its first benchmark in front; np.unique then takes that one.
    order = np.argsort(hashes, kind="stable")
    unique_hashes, first = np.unique(hashes[order], return_index=True)
    return NgramIndex(n=n, hashes=unique_hashes, benchmark_ids=ids[order][first], benchmark_names=names)


def find_contamination(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray, index: NgramIndex) -> list[ContaminationMatch | None]:
    """Per text, its first n-gram (in reading order) found in the index, or None for a clean text."""
    words = hash_words(texts)
    doc_count = len(words.doc_offsets) - 1
    ngrams = hash_ngrams(words, index.n)
    matches: list[ContaminationMatch | None] = [None] * doc_count
    if len(index.hashes) == 0 or len(ngrams.hashes) == 0:
        return matches
    positions = np.minimum(np.searchsorted(index.hashes, ngrams.hashes), len(index.hashes) - 1)
    found = np.flatnonzero(index.hashes[positions] == ngrams.hashes)
    # n-grams come in reading order, grouped by text: the first hit of each text is where its id changes.
    first_hits = found[np.unique(ngrams.doc_ids[found], return_index=True)[1]]
    for hit in first_hits:
        start = int(ngrams.starts[hit])
        matches[int(ngrams.doc_ids[hit])] = ContaminationMatch(
            benchmark=index.benchmark_names[index.benchmark_ids[positions[hit]]],
            ngram=" ".join(words.words[start : start + index.n].to_pylist()),
        )
    return matches
