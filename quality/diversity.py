"""How varied a set of instructions is: task types, openings, n-grams, compression and clusters.

Near-duplicate removal catches copies; it does not see twenty questions of the form "What is
the X of Y in Python?". These measures do, for any set of texts (one language and domain at a
time reads best, as `synthmix eval` groups them):

- task types (quality/task_types.py) and the most common opening: the first two words, or the
  first three characters of Chinese ("what is", "什么是"), with its share of the set;
- distinct n-grams: distinct word (Han character) n-grams over all n-grams, for n = 1 and 2;
- compression ratio: the set's UTF-8 bytes over their zlib-compressed bytes (higher: more
  repeated); it grows with the set's size, so compare sets of like size;
- clusters: TF-IDF vectors of character 2-4-grams (they work across scripts), grouped by
  average-linkage agglomerative clustering at a cosine distance; how many clusters, the
  effective number (exp of the entropy of their sizes), evenness (effective over clusters: 1
  when every cluster is the same size) and the largest cluster's share.

Pure and deterministic; scikit-learn does the vectors and the clustering.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthmix.quality.instruction_checks import is_mostly_chinese, words
from synthmix.quality.task_types import classify_task_type

OPENING_WORDS = 2
OPENING_HAN = 3
# Two instructions whose character n-gram profiles are under this cosine distance share a
# cluster: calibrated on the quickstart's instructions (docs/recipe.md), where it joins
# questions of one template ("What is the purpose of X in Python?") and parts them from others.
CLUSTER_DISTANCE = 0.75
# Agglomerative clustering holds a square distance matrix: sets larger than this are measured
# on a sample (drawn by a hash of each text and `seed`, so the same set gives the same sample).
MAX_CLUSTERED = 1000


@dataclass(frozen=True)
class Clusters:
    clusters: int
    effective: float
    evenness: float
    largest_share: float
    clustered: int  # texts clustered: all, or the sample


@dataclass(frozen=True)
class Diversity:
    rows: int
    task_types: dict[str, int]
    openings: list[tuple[str, int]]  # the most common, most first
    top_opening_share: float
    distinct_1: float
    distinct_2: float
    compression_ratio: float
    clusters: Clusters | None


def opening(text: str) -> str:
    """The first two words, or the first three Han characters of a Chinese text, lower-cased."""
    tokens = words(text)
    chinese = is_mostly_chinese(text)
    head = tokens[: OPENING_HAN if chinese else OPENING_WORDS]
    return ("" if chinese else " ").join(head)


def count_openings(texts: Sequence[str]) -> Counter:
    return Counter(opening(text) for text in texts if text.strip())


def distinct_ngrams(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def compression_ratio(texts: Sequence[str]) -> float:
    """UTF-8 bytes of the texts (one per line) over their zlib-compressed bytes; 0 for no text."""
    raw = "\n".join(texts).encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def cluster_labels(texts: Sequence[str], *, distance: float = CLUSTER_DISTANCE) -> np.ndarray:
    """A cluster label per text: average-linkage clustering of TF-IDF character 2-4-gram vectors,
    cut at `distance` (cosine). Fewer than two texts are one cluster each."""
    if len(texts) < 2:
        return np.zeros(len(texts), dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=True).fit_transform(texts)
    # Rows are L2-normalised, so the cosine distance is one minus their dot product.
    distances = np.clip(1.0 - (vectors @ vectors.T).toarray(), 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average", distance_threshold=distance)
    return model.fit_predict(distances)


def describe_clusters(labels: np.ndarray) -> Clusters:
    """How many clusters, their effective number, evenness and the largest one's share."""
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    if not len(sizes):
        return Clusters(clusters=0, effective=0.0, evenness=0.0, largest_share=0.0, clustered=0)
    shares = sizes / sizes.sum()
    effective = math.exp(-float(np.sum(shares * np.log(shares))))
    return Clusters(
        clusters=len(sizes),
        effective=effective,
        evenness=effective / len(sizes),
        largest_share=float(shares.max()),
        clustered=int(sizes.sum()),
    )


def sample_texts(texts: Sequence[str], limit: int, *, seed: int = 0) -> list[str]:
    """At most `limit` texts, drawn by a hash of each text and `seed` (the same set, the same sample)."""
    if len(texts) <= limit:
        return list(texts)
    ranked = sorted(texts, key=lambda text: hashlib.sha256(f"{seed}\x1f{text}".encode()).digest())
    return ranked[:limit]


def measure_diversity(
    texts: Sequence[str], *, distance: float = CLUSTER_DISTANCE, max_clustered: int = MAX_CLUSTERED, seed: int = 0, top: int = 3
) -> Diversity:
    """Every measure of the module for one set of texts (blank texts are left out)."""
    texts = [text for text in texts if text and text.strip()]
    openings = count_openings(texts)
    clustered = sample_texts(texts, max_clustered, seed=seed)
    return Diversity(
        rows=len(texts),
        task_types=dict(Counter(classify_task_type(text) for text in texts).most_common()),
        openings=openings.most_common(top),
        top_opening_share=openings.most_common(1)[0][1] / len(texts) if texts else 0.0,
        distinct_1=distinct_ngrams(texts, 1),
        distinct_2=distinct_ngrams(texts, 2),
        compression_ratio=compression_ratio(texts),
        clusters=describe_clusters(cluster_labels(clustered, distance=distance)) if texts else None,
    )
