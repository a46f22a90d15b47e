"""Near-duplicate search over MinHash signatures: LSH banding, candidate pairs, verification,
connected components and one representative per cluster.

Each phase is a plain function over numpy arrays, so a distributed job can run them apart:
  1. per batch: signatures -> band keys -> rows (band, band_hash, doc)   compute_band_keys, flatten_band_keys
  2. per (band, band_hash) group, after a shuffle: candidate pairs      pair_bucket_members
  3. per pair chunk, joined with both signatures: verification          estimate_jaccard
  4. components over verified pairs: in memory                          connect_components
     or in bounded chunks of pairs, merged one chunk at a time          merge_pairs_into_labels
  5. per cluster: the document to keep                                  choose_representatives
find_near_duplicates composes them for one process.

Documents are dense integer indices (0..n-1) throughout: cheap to shuffle, sort and label.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from quality.minhash import estimate_jaccard, has_shingles, sign_shingles
from quality.shingles import GOLDEN, ShingleSpec, hash_shingles, mix64

# Worst accepted chance that a pair exactly at the threshold shares no band (see choose_bands_rows).
MAX_MISS_AT_THRESHOLD = 0.01
# Standard errors below the threshold that verification still accepts (see MinHashConfig).
VERIFY_MARGIN_SIGMAS = 2.0
# Bucket members paired with every later member; the rest of a bigger bucket pairs only with
# these, so a bucket of thousands of copies costs pairs linear in its size, not quadratic.
MAX_BUCKET_ANCHORS = 64
PAIRS_PER_CHUNK = 65536  # pairs compared at once: 64k x num_perm booleans


def candidate_probability(similarity: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Chance that a pair of this Jaccard similarity shares at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def choose_bands_rows(
    threshold: float, num_perm: int, *, max_miss_at_threshold: float = MAX_MISS_AT_THRESHOLD
) -> tuple[int, int]:
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
            f"{bands} bands x {rows} rows need {bands * rows} signature slots, signatures have "
            f"{signatures.shape[1]}; lower bands or rows or raise num_perm"
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
    # One 64-bit key per (band, band_hash) (band hashes are already mixed; a collision between
    # bands only adds candidates, which verification drops).
    key = rows.band_hash ^ (rows.band.astype(np.uint64) * GOLDEN)
    shared, bucket = find_shared_buckets(key)
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
        raise ValueError(
            f"document indices span {pairs.min()}..{pairs.max()}; pairs need dense indices in [0, 2**32), "
            "number the documents 0..n-1 first"
        )
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
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(num_docs, num_docs)
    )
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


def choose_representatives(
    clusters: np.ndarray, scores: np.ndarray, ids: np.ndarray | Sequence[str]
) -> np.ndarray:
    """Index of the document kept for each document's cluster: highest score, then smallest id.

    NaN scores rank below every number. Ties resolve by id, not position, so reruns and
    reorderings of the input keep the same documents.
    """
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.asarray(ids)
    order = np.argsort(ids, kind="stable")
    order = order[np.argsort(-scores[order], kind="stable")]  # NaN sorts last
    order = order[np.argsort(clusters[order], kind="stable")]
    sorted_clusters = clusters[order]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = sorted_clusters[1:] != sorted_clusters[:-1]
    keeper_of_cluster = order[is_first]
    return keeper_of_cluster[np.searchsorted(sorted_clusters[is_first], clusters)]


class MinHashConfig(BaseModel):
    """Near-duplicate search settings. Bands, rows and the verification threshold are derived
    from the Jaccard threshold unless set; permutations are derived from (num_perm, seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.8, gt=0.0, lt=1.0)  # Jaccard similarity at which texts are duplicates
    num_perm: int = Field(128, ge=2, le=1024)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    # Candidates are kept if their estimated Jaccard reaches this. Default: threshold minus
    # VERIFY_MARGIN_SIGMAS standard errors of the estimate at the threshold (0.729 at 0.8 and
    # 128 permutations), so a pair at the threshold is lost ~2% of the time instead of ~50%.
    verify_threshold: float | None = Field(None, ge=0.0, le=1.0)
    shingles: ShingleSpec = ShingleSpec()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def check_bands_rows(self) -> "MinHashConfig":
        if (self.bands is None) != (self.rows is None):
            raise ValueError(f"bands={self.bands}, rows={self.rows}: set both or neither (then both are derived)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands*rows = {self.bands * self.rows} exceeds num_perm={self.num_perm}; lower them or raise num_perm"
            )
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
    """Per document: its cluster, the document kept for it, and their estimated similarity."""

    cluster: np.ndarray  # int64: smallest document index of the cluster
    kept: np.ndarray  # int64: index of the cluster's representative (the document itself if kept)
    similarity_to_kept: np.ndarray  # float64: signature-estimated Jaccard to the kept document
    candidate_pairs: int
    verified_pairs: int

    def is_duplicate(self) -> np.ndarray:
        return self.kept != np.arange(len(self.kept))


def find_near_duplicates(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    ids: np.ndarray | Sequence[str],
    scores: np.ndarray | Sequence[float],
    config: MinHashConfig,
) -> NearDuplicates:
    """Near-duplicate clusters of texts in one process, and which document each cluster keeps."""
    bands, rows = config.band_split()
    signatures = sign_shingles(hash_shingles(texts, config.shingles), num_perm=config.num_perm, seed=config.seed)
    searchable = np.flatnonzero(has_shingles(signatures))
    band_rows = flatten_band_keys(compute_band_keys(signatures[searchable], bands, rows), searchable)
    candidates = pair_bucket_members(band_rows)
    verified = candidates[estimate_pair_jaccard(signatures, candidates) >= config.verification_threshold()]
    clusters = connect_components(verified, len(signatures))
    kept = choose_representatives(clusters, scores, ids)
    similarity = estimate_pair_jaccard(signatures, np.stack([np.arange(len(kept)), kept], axis=1))
    return NearDuplicates(
        cluster=clusters,
        kept=kept,
        similarity_to_kept=similarity,
        candidate_pairs=len(candidates),
        verified_pairs=len(verified),
    )
