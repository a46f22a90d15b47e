"""Near-duplicate search over MinHash signatures: LSH banding, candidate pairs, an estimate
filter, and the components that group candidates for the true-similarity check.

Each phase is a plain function over numpy arrays, so a distributed job can run them apart:
  1. per batch: signatures -> band keys -> rows (band, band_hash, doc)   compute_band_keys, flatten_band_keys
  2. per (band, band_hash) group, after a shuffle: candidate pairs      drop_exact_copies, pair_bucket_members
  3. per pair chunk, joined with both signatures: estimate filter       estimate_jaccard
  4. components over likely pairs: in memory                            connect_components
     or in bounded chunks of pairs, merged one chunk at a time          merge_pairs_into_labels
  5. per component: true similarity and what to keep                    quality/duplicate_selection.py
find_near_duplicates composes them for one process.

Documents are dense integer indices (0..n-1) throughout: cheap to shuffle, sort and label.
"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synthmix.quality.duplicate_selection import Selection, exact_leaders, pair_jaccard, rank_documents, select_kept
from synthmix.quality.exact_dedup import text_groups
from synthmix.quality.minhash import estimate_jaccard, has_shingles, sign_units
from synthmix.quality.normalize import normalize_texts
from synthmix.quality.shingles import GOLDEN, ShingleSpec, cut_units, hash_unit_shingles, mix64

# Worst accepted chance that a pair exactly at the threshold shares no band (see choose_bands_rows).
MAX_MISS_AT_THRESHOLD = 0.01
# Standard errors below the threshold that the estimate filter still passes (see MinHashConfig).
VERIFY_MARGIN_SIGMAS = 3.0
# Bucket members paired with every later member; the rest of a bigger bucket pairs only with
# these, so a bucket of thousands of copies costs pairs linear in its size, not quadratic.
MAX_BUCKET_ANCHORS = 64
PAIRS_PER_CHUNK = 65536  # pairs compared at once: 64k x num_perm booleans


def candidate_probability(similarity: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Chance that a pair of this Jaccard similarity shares at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


@functools.cache
def choose_bands_rows(threshold: float, num_perm: int, *, max_miss_at_threshold: float = MAX_MISS_AT_THRESHOLD) -> tuple[int, int]:
    """Bands x rows for a Jaccard threshold, favouring recall.

    Misses fall as bands get shorter (more bands, fewer rows), and a pair at the threshold is
    the hardest pair above it, so: among the splits whose miss chance at the threshold is at
    most max_miss_at_threshold, take the one with the fewest candidates below the threshold
    (mean candidate probability over [0, threshold]); candidates are only work, since
    verification drops them, but a miss is lost for good. If no split is that safe, take the
    one that misses least. (datasketch weighs misses and false candidates equally and picks
    9x13 at 0.8, which found 74% of true pairs on planted duplicates.)
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold} must lie strictly between 0 and 1")
    below = np.linspace(0.0, threshold, 513)
    splits = [(num_perm // rows, rows) for rows in range(1, num_perm + 1)]
    misses = [1.0 - float(candidate_probability(np.array(threshold), b, r)) for b, r in splits]
    false_candidates = [float(candidate_probability(below, b, r).mean()) for b, r in splits]
    safe = [i for i, miss in enumerate(misses) if miss <= max_miss_at_threshold]
    if not safe:
        return splits[int(np.argmin(misses))]
    return splits[min(safe, key=lambda i: (false_candidates[i], splits[i][0]))]


def compute_band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): a hash of the band's rows of the signature."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(
            f"{bands} bands x {rows} rows need {bands * rows} signature slots, signatures have {signatures.shape[1]}; lower bands or rows or raise num_perm"
        )
    banded = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
    keys = np.full((len(signatures), bands), GOLDEN, dtype=np.uint64)
    for row in range(rows):
        keys *= GOLDEN
        keys += banded[:, :, row]  # widened to uint64 on the fly, no copy of the signatures
    return mix64(keys)


@dataclass(frozen=True)
class BandRows:
    """One row per (document, band): documents that share (band, band_hash) are candidates."""

    band: np.ndarray  # int32
    band_hash: np.ndarray  # uint64
    doc: np.ndarray  # int64


def flatten_band_keys(band_keys: np.ndarray, docs: np.ndarray) -> BandRows:
    """Rows for grouping by (band, band_hash); docs[i] is the document of band_keys[i]."""
    documents, bands = band_keys.shape
    return BandRows(
        band=np.tile(np.arange(bands, dtype=np.int32), documents),
        band_hash=band_keys.reshape(-1),
        doc=np.repeat(np.asarray(docs, dtype=np.int64), bands),
    )


def pair_bucket_members(rows: BandRows, *, max_anchors: int = MAX_BUCKET_ANCHORS) -> np.ndarray:
    """Unique candidate pairs (smaller doc first) of documents sharing a bucket, shape (k, 2).

    In a bucket of up to max_anchors + 1 documents every pair is produced, so the result does
    not depend on the order of the input rows. In a bigger bucket the max_anchors smallest
    documents pair with all members. The rows must hold whole buckets (all rows of a
    (band, band_hash)); a distributed caller gets that by grouping on the two columns.
    """
    shared, bucket = find_shared_buckets(bucket_keys(rows))
    # Order the shared rows by (bucket, doc) with one integer sort.
    doc = rows.doc[shared]
    order = np.argsort(bucket * (int(doc.max(initial=0)) + 1) + doc)
    bucket, doc = bucket[order], doc[order]
    new_bucket = np.ones(len(doc), dtype=bool)
    new_bucket[1:] = bucket[1:] != bucket[:-1]
    bucket_starts = np.flatnonzero(new_bucket)
    bucket_sizes = np.diff(np.append(bucket_starts, len(doc)))
    pairs = []
    for anchor in range(max_anchors):
        # Members at position `anchor` of their bucket pair with every member after them.
        has_partners = bucket_sizes > anchor + 1
        bucket_starts, bucket_sizes = bucket_starts[has_partners], bucket_sizes[has_partners]
        if not len(bucket_starts):
            break
        anchors = bucket_starts + anchor
        counts = bucket_sizes - anchor - 1
        partner_rank = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        anchor_positions = np.repeat(anchors, counts)
        pairs.append(np.stack([doc[anchor_positions], doc[anchor_positions + 1 + partner_rank]], axis=1))
    return unique_pairs(np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64))


def bucket_keys(rows: BandRows) -> np.ndarray:
    """One 64-bit key per (band, band_hash) (band hashes are already mixed; a collision between
    bands only adds candidates, which verification drops)."""
    return rows.band_hash ^ (rows.band.astype(np.uint64) * GOLDEN)


def shared_bucket_rows(rows: BandRows) -> np.ndarray:
    """Indices of the rows whose bucket holds another row: the only ones that can make pairs."""
    return np.sort(find_shared_buckets(bucket_keys(rows))[0])


def drop_exact_copies(rows: BandRows, copy_keys: np.ndarray) -> BandRows:
    """Each bucket's rows less those of exact copies of an earlier (smaller) document in it.

    copy_keys[i] identifies row i's normalised text (a digest prefix). Copies of one text share
    every band, so a bucket holding k copies would pair them k*(k-1)/2 times in each band; the
    digest band pairs them instead (as a star, pair_bucket_members with max_anchors=1), and each
    bucket pairs distinct texts only."""
    order = np.lexsort((rows.doc, copy_keys, rows.band_hash, rows.band))
    band, band_hash, copy_key = rows.band[order], rows.band_hash[order], copy_keys[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (band[1:] != band[:-1]) | (band_hash[1:] != band_hash[:-1]) | (copy_key[1:] != copy_key[:-1])
    kept = order[first]
    return BandRows(band=rows.band[kept], band_hash=rows.band_hash[kept], doc=rows.doc[kept])


def find_shared_buckets(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, bucket) for the rows whose key occurs more than once, bucket numbering their keys;
    most rows are alone in their bucket and are left out.

    Sorting values (SIMD) is several times faster than argsort, so each key's high bits and its
    row index are packed in one uint64 and sorted; rows that share high bits with another row
    are kept, a superset that np.unique on the exact keys then cuts down to the shared ones.
    """
    index_bits = max(1, len(key).bit_length())
    packed = (key >> np.uint64(index_bits) << np.uint64(index_bits)) | np.arange(len(key), dtype=np.uint64)
    packed.sort()
    prefix = packed >> np.uint64(index_bits)
    repeated = np.zeros(len(key), dtype=bool)
    same_as_next = prefix[1:] == prefix[:-1]
    repeated[1:] |= same_as_next
    repeated[:-1] |= same_as_next
    candidates = (packed[repeated] & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    _, bucket, counts = np.unique(key[candidates], return_inverse=True, return_counts=True)
    bucket = bucket.reshape(-1)
    shared = counts[bucket] > 1
    return candidates[shared], bucket[shared].astype(np.int64)


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """Pairs as (smaller, larger), sorted, each once; self-pairs dropped."""
    pairs = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    if len(pairs) and (pairs[:, 0].min() < 0 or pairs[:, 1].max() >= 2**32):
        raise ValueError(f"document indices span {pairs.min()}..{pairs.max()}; pairs need dense indices in [0, 2**32), number the documents 0..n-1 first")
    # Both indices packed in one uint64 make the deduplication a single sort.
    packed = np.sort((pairs[:, 0].astype(np.uint64) << np.uint64(32)) | pairs[:, 1].astype(np.uint64))
    packed = packed[np.concatenate([[True], packed[1:] != packed[:-1]])] if len(packed) else packed
    smaller, larger = (packed >> np.uint64(32)).astype(np.int64), (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    distinct = smaller != larger
    return np.stack([smaller[distinct], larger[distinct]], axis=1)


def estimate_pair_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each pair of rows of `signatures`, in chunks of PAIRS_PER_CHUNK."""
    estimates = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), PAIRS_PER_CHUNK):
        chunk = pairs[start : start + PAIRS_PER_CHUNK]
        estimates[start : start + len(chunk)] = estimate_jaccard(signatures[chunk[:, 0]], signatures[chunk[:, 1]])
    return estimates


def connect_components(pairs: np.ndarray, num_docs: int) -> np.ndarray:
    """Cluster label of each document: the smallest document index in its connected component."""
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(num_docs, num_docs))
    _, component = connected_components(graph, directed=False)
    # scipy numbers components by discovery; the smallest member is a label that order cannot change.
    smallest = np.full(int(component.max(initial=-1)) + 1, num_docs, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(num_docs))
    return smallest[component]


def merge_pairs_into_labels(labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Union-find over one chunk of pairs, vectorised: returns the labels with the chunk merged.

    Start from np.arange(num_docs) and feed verified pairs chunk by chunk, in any order and any
    chunking: the final labels equal connect_components' (the smallest index of each component),
    while only labels and one chunk are held. Each round hooks the larger root of every unmerged
    pair under the smaller, then compresses paths until every label is a root.
    """
    labels = labels.copy()
    left, right = pairs[:, 0], pairs[:, 1]
    while True:
        left_root, right_root = labels[left], labels[right]
        unmerged = left_root != right_root
        if not unmerged.any():
            return labels
        low = np.minimum(left_root[unmerged], right_root[unmerged])
        high = np.maximum(left_root[unmerged], right_root[unmerged])
        np.minimum.at(labels, high, low)
        while True:
            compressed = labels[labels]
            if np.array_equal(compressed, labels):
                break
            labels = compressed


class MinHashConfig(BaseModel):
    """Near-duplicate search settings. Bands, rows and the verification threshold are derived
    from the Jaccard threshold unless set; permutations are derived from (num_perm, seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.8, gt=0.0, lt=1.0)  # Jaccard similarity at which texts are duplicates
    num_perm: int = Field(128, ge=2, le=1024)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    # Candidates go on to the true-similarity check if their estimated Jaccard reaches this: a
    # filter that spares the check most false candidates, never the final word (that is the
    # true similarity against `threshold`). Default: threshold minus VERIFY_MARGIN_SIGMAS
    # standard errors of the estimate at the threshold (0.694 at 0.8 and 128 permutations), so
    # a pair at the threshold is lost ~0.1% of the time.
    verify_threshold: float | None = Field(None, ge=0.0, le=1.0)
    shingles: ShingleSpec = ShingleSpec()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def check_bands_rows(self) -> "MinHashConfig":
        if (self.bands is None) != (self.rows is None):
            raise ValueError(f"bands={self.bands}, rows={self.rows}: set both or neither (then both are derived)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm={self.num_perm}; lower them or raise num_perm")
        return self

    def band_split(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return choose_bands_rows(self.threshold, self.num_perm)

    def verification_threshold(self) -> float:
        if self.verify_threshold is not None:
            return self.verify_threshold
        standard_error = math.sqrt(self.threshold * (1.0 - self.threshold) / self.num_perm)
        return max(0.0, self.threshold - VERIFY_MARGIN_SIGMAS * standard_error)


@dataclass(frozen=True)
class NearDuplicates:
    """Per document, what to keep (quality/duplicate_selection.Selection), and the pair counts of
    each filter: LSH candidates, pairs whose estimate passed, pairs truly at the threshold."""

    selection: Selection
    candidate_pairs: int
    likely_pairs: int
    similar_pairs: int

    def is_duplicate(self) -> np.ndarray:
        return self.selection.is_duplicate()


def find_near_duplicates(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    ids: np.ndarray | Sequence[str],
    scores: np.ndarray | Sequence[float],
    config: MinHashConfig,
) -> NearDuplicates:
    """Exact and near duplicates of texts in one process, and which document each one is removed for.

    Exact copies collapse onto their best-ranked copy before banding, so only distinct texts are
    banded; the candidates that pass the estimate are checked on their true shingle sets."""
    normalized = normalize_texts(texts, config.shingles.normalization)
    rank = rank_documents(scores, ids)
    leaders = exact_leaders(text_groups(normalized), rank)
    units = cut_units(normalized, config.shingles.kind)
    signatures = sign_units(units, config.shingles, num_perm=config.num_perm, seed=config.seed)
    bands, rows = config.band_split()
    searchable = np.flatnonzero(has_shingles(signatures) & (leaders == np.arange(len(leaders))))
    candidates = pair_bucket_members(flatten_band_keys(compute_band_keys(signatures[searchable], bands, rows), searchable))
    likely = candidates[estimate_pair_jaccard(signatures, candidates) >= config.verification_threshold()]
    similarity = pair_jaccard(hash_unit_shingles(units, config.shingles), likely)
    selection = select_kept(likely, similarity, rank=rank, leaders=leaders, threshold=config.threshold)
    return NearDuplicates(
        selection=selection,
        candidate_pairs=len(candidates),
        likely_pairs=len(likely),
        similar_pairs=int(np.count_nonzero(similarity >= config.threshold)),
    )
