"""Which near-duplicates to remove: candidate pairs are checked on their true shingle sets, and
documents are kept greedily in rank order, each removed only for a kept document it truly resembles.

Candidate pairs (LSH over MinHash signatures, quality/lsh.py) are estimates. Two errors follow if
they are trusted: a pair estimated at 0.8 may truly be 0.75, and connected components drift
(A~B and B~C put A and C in one cluster although A and C differ). So here:

  1. exact copies (equal normalised text) collapse onto their best-ranked copy, the leader;
  2. each candidate pair's Jaccard similarity is measured on the two documents' shingle-hash
     sets (hashes of every n-gram: the true sets up to a 2**-40 collision chance, pair_jaccard);
  3. leaders are visited in rank order (best first); a leader is removed when a kept leader it
     shares a candidate pair with reaches the threshold on that true similarity (the most
     similar one is named), else it is kept. Copies follow their leader.

Every removed document then names a kept document of true similarity >= threshold, and C is
never removed for A through B: it is only ever compared with documents that are kept.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthmix.quality.shingles import ShingleHashes

# pair_jaccard's sort key: a document number in the top DOC_BITS, a shingle hash's top bits below.
DOC_BITS = 24
HASH_BITS = 64 - DOC_BITS


def rank_documents(scores: np.ndarray | Sequence[float], ids: np.ndarray | Sequence[str]) -> np.ndarray:
    """Rank of each document in keep order (0 = kept first): highest score, then smallest id.

    NaN scores rank below every number. Ties resolve by id, not position, so reruns and
    reorderings of the input keep the same documents."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(np.asarray(ids), kind="stable")
    order = order[np.argsort(-scores[order], kind="stable")]  # NaN sorts last
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def choose_representatives(clusters: np.ndarray, scores: np.ndarray | Sequence[float], ids: np.ndarray | Sequence[str]) -> np.ndarray:
    """Index of the document kept for each document's cluster: the best-ranked member (rank_documents)."""
    rank = rank_documents(scores, ids)
    order = np.lexsort((rank, clusters))
    sorted_clusters = clusters[order]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = sorted_clusters[1:] != sorted_clusters[:-1]
    return order[is_first][np.searchsorted(sorted_clusters[is_first], clusters)]


def exact_leaders(digest_keys: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per document, the best-ranked document with the same digest key (itself if it leads)."""
    order = np.argsort(rank)
    _, first, group = np.unique(digest_keys[order], return_index=True, return_inverse=True, axis=0)
    leaders = np.empty(len(order), dtype=np.int64)
    leaders[order] = order[first][group.reshape(-1)]
    return leaders


def pair_jaccard(shingles: ShingleHashes, pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the shingle-hash sets of each pair of documents (0 if both are empty).

    One sort orders every involved document's set: each shingle becomes (document number, top
    HASH_BITS of its hash) in one uint64. Each pair then probes that sorted array with the
    distinct shingles of its smaller set; the probes of a pair are sorted and land in one
    document's run of keys, so the search stays in cache. Two different shingles of 64-bit
    hashes agree on 40 bits by a 2**-40 chance: about one false shared shingle in a million pairs
    of 1,000-shingle documents."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0)
    involved, local = np.unique(pairs, return_inverse=True)
    if len(involved) >= 2**DOC_BITS:
        raise ValueError(f"{len(involved)} documents in one call; pair_jaccard takes fewer than {2**DOC_BITS}, split the pairs")
    local = local.reshape(-1, 2)
    subset = shingles.take(involved)
    owner = np.repeat(np.arange(len(involved), dtype=np.uint64), subset.counts())
    keys = np.sort((owner << np.uint64(HASH_BITS)) | (subset.hashes >> np.uint64(DOC_BITS)))
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys  # np.unique hashes: slower
    sizes = np.bincount((keys >> np.uint64(HASH_BITS)).astype(np.int64), minlength=len(involved))
    starts = np.cumsum(sizes) - sizes
    left, right = local[:, 0], local[:, 1]
    probing = np.where(sizes[left] <= sizes[right], left, right)
    target = np.where(probing == left, right, left)
    probe_counts = sizes[probing]
    pair_of_probe = np.repeat(np.arange(len(pairs)), probe_counts)
    within = np.arange(int(probe_counts.sum())) - np.repeat(np.cumsum(probe_counts) - probe_counts, probe_counts)
    hash_part = keys[np.repeat(starts[probing], probe_counts) + within] & np.uint64((1 << HASH_BITS) - 1)
    probes = hash_part | (target[pair_of_probe].astype(np.uint64) << np.uint64(HASH_BITS))
    found = keys[np.minimum(np.searchsorted(keys, probes), max(len(keys) - 1, 0))] == probes
    shared = np.bincount(pair_of_probe, weights=found, minlength=len(pairs))
    union = sizes[left] + sizes[right] - shared
    return np.divide(shared, union, out=np.zeros(len(pairs)), where=union > 0)


@dataclass(frozen=True)
class Selection:
    """Per document: the document kept for it (itself if kept), their true Jaccard similarity
    (1.0 for an exact copy, NaN for a kept document), and whether it is an exact copy of it."""

    kept: np.ndarray  # int64
    similarity: np.ndarray  # float64
    exact: np.ndarray  # bool

    def is_duplicate(self) -> np.ndarray:
        return self.kept != np.arange(len(self.kept))

    def group_sizes(self) -> np.ndarray:
        """Per document: how many documents its kept document stands for, itself included."""
        return np.bincount(self.kept, minlength=len(self.kept))[self.kept]


def select_kept(pairs: np.ndarray, similarity: np.ndarray, *, rank: np.ndarray, leaders: np.ndarray, threshold: float) -> Selection:
    """Greedy keep in rank order over true similarities (see the module docstring).

    pairs index documents 0..len(rank)-1; similarity[k] is pairs[k]'s true Jaccard; leaders
    from exact_leaders. A pair below the threshold never removes anything, so only the pairs
    at or above it are walked, in Python, once each."""
    documents = len(rank)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    strong = similarity >= threshold
    first, second = leaders[pairs[strong, 0]], leaders[pairs[strong, 1]]
    values = similarity[strong]
    distinct = first != second
    first, second, values = first[distinct], second[distinct], values[distinct]
    # Orient each pair: `later` may be removed for `earlier`, which is decided before it.
    earlier = np.where(rank[first] < rank[second], first, second)
    later = np.where(earlier == first, second, first)
    order = np.lexsort((rank[earlier], -values, rank[later]))  # by later's rank; best candidate first
    kept_for = np.arange(documents)
    removed_for: dict[int, tuple[int, float]] = {}
    for doc, candidate, value in zip(later[order].tolist(), earlier[order].tolist(), values[order].tolist()):
        if doc not in removed_for and candidate not in removed_for:
            removed_for[doc] = (candidate, value)
    leader_similarity = np.full(documents, np.nan)
    for doc, (candidate, value) in removed_for.items():
        kept_for[doc] = candidate
        leader_similarity[doc] = value
    # A copy follows its leader: an exact copy of a kept leader, else removed for the same document.
    leader_kept = kept_for[leaders] == leaders
    kept = np.where(leader_kept, leaders, kept_for[leaders])
    exact = leader_kept & (kept != np.arange(documents))
    similarity_to_kept = np.where(exact, 1.0, leader_similarity[leaders])
    similarity_to_kept[kept == np.arange(documents)] = np.nan
    return Selection(kept=kept, similarity=similarity_to_kept, exact=exact)
