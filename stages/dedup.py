"""dedup: exact and near-duplicate removal with MinHash LSH, distributed over Ray Data.

A global stage, usable several times in one job under different names (`{name:
dedup_instructions, kind: dedup}` on `instruction`, `{name: dedup_samples, kind: dedup}` on
instruction + answer, or on seed `text` for natural data). Every phase runs on Ray workers;
the driver holds only per-block summaries, one chunk of verified pairs, and one int64 label
per document. Phases, each a Ray Data plan over the previous one's output:

  1. number:  sort rows by id; a summary row per block gives each block its first document
              number, so document k is the k-th smallest id (dense, and the same on any
              number of workers or blocks).
  2. sign:    per block, MinHash signatures (and, with `exact`, a digest of the normalised
              text) added to the rows; materialised once.
  3. band:    band-key rows (band, band_hash, doc); with `exact`, the digest is one more band,
              so exact duplicates become candidates too. Grouped by Ray Data's shuffle on a
              partition of the bucket key (every bucket whole in one group): candidate pairs.
  4. verify:  pairs meet the signatures of both their documents through two shuffles keyed by
              document range (left, then right); a pair stays if its estimated Jaccard reaches
              the verification threshold. No process holds more than one range's signatures.
  5. cluster: verified pairs stream to the driver in chunks of `max_pairs_in_memory` and merge
              into union-find labels: 8 bytes per document, plus one chunk, never all pairs.
  6. keep:    rows in clusters of two or more are shuffled by cluster; each cluster keeps its
              highest `score_column` row, ties broken by smallest id. The others are rejected,
              `exact_duplicate` when their normalised text equals the kept row's, else
              `near_duplicate`, with reject_detail JSON {kept_id, cluster_id (the cluster's
              smallest id), cluster_size, similarity_to_kept (estimated Jaccard)}.

Memory bound on the driver: about 32 bytes per document (labels, a copy while merging, cluster
sizes) plus ~100 bytes per pair of one chunk; documents must number below 2**32.
Reads: `id`, the `text_columns` (joined by newlines; null counts as empty), `score_column`.
Writes: every input row unchanged (no new columns); rejects as above.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline import columns
from pipeline.config import ConfigError
from pipeline.rejects import RejectReason
from pipeline.stage import GlobalStage, Resources
from quality.exact_dedup import DIGEST_BYTES, digest_texts
from quality.lsh import (
    BandRows,
    MinHashConfig,
    choose_representatives,
    compute_band_keys,
    flatten_band_keys,
    merge_pairs_into_labels,
    pair_bucket_members,
    unique_pairs,
)
from quality.minhash import compute_minhash_signatures, estimate_jaccard, has_shingles

# Columns that live only between phases; the runner never sees them.
DOC = "__doc"
SIGNATURE = "__signature"
DIGEST = "__digest"
PARTITION = "__partition"
CLUSTER = "__cluster"
# Pair rows and signature rows share one schema, so a shuffle can bring them together.
OTHER = "__other"  # the pair's other document; NO_OTHER on a signature row
NO_OTHER = -1
LEFT, RIGHT, SIMILARITY = "left", "right", "similarity"


class DedupParams(MinHashConfig):
    """MinHash settings (threshold, num_perm, bands, rows, verify_threshold, shingles with their
    normalization, seed) plus what to read and how to split the work."""

    text_columns: list[str] = Field(default_factory=lambda: [columns.TEXT], min_length=1)
    # Higher is kept (e.g. critique_score, quality_score); null: ties broken by smallest id.
    score_column: str | None = None
    # Label duplicates of the normalised text `exact_duplicate`, and find them even without shingles.
    exact: bool = True
    # Verified pairs the driver merges at once (~100 bytes each while merging).
    max_pairs_in_memory: int = Field(1_000_000, ge=1)
    # Documents per shuffle partition: a worker holds about this many signatures (512 bytes
    # each at 128 permutations) or bands x this many band rows at once.
    partition_rows: int = Field(20_000, ge=1)

    def partitions(self, documents: int) -> int:
        """Shuffle partitions (and input blocks) for `documents` rows: one per `partition_rows`."""
        return max(1, math.ceil(documents / self.partition_rows))


class Dedup(GlobalStage):
    name = "dedup"
    input_columns = (columns.ID,)
    params = DedupParams
    resources = Resources(num_cpus=0.5, batch_size=2048)

    def run(self, dataset):
        from ray.data.context import ShuffleStrategy

        params: DedupParams = self.params
        check_columns(self.context.input_schema, params, self.context.stage_name)
        # Every dataset below derives from this one and shares its context. Ray 2.60's default
        # hash shuffle failed at 100k documents (a reduce met an empty shard without columns:
        # pyarrow ArrowInvalid "Schema at index 1 was different"); the sort shuffle did not.
        dataset.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        bands, rows = params.band_split()
        num_cpus = self.resources.num_cpus
        self.extras: dict[str, Any] = {
            "shingles": params.shingles.model_dump(mode="json"),
            "seed": params.seed,
            "num_perm": params.num_perm,
            "bands": bands,
            "rows": rows,
            "threshold": params.threshold,
            "verify_threshold": params.verification_threshold(),
            "exact": params.exact,
            "phase_wall_s": {},
        }
        if self.context.input_rows:
            # A shuffle makes (input blocks x output blocks) objects. Input blocks are the upstream
            # part files (one per 2k rows of seeds): at 1M documents that was 489 x 489 pieces for
            # the sort alone, and the stage grew 21x from 100k to 1M rows. Blocks of
            # `partition_rows` keep every shuffle's object count linear in the documents.
            dataset = dataset.repartition(params.partitions(self.context.input_rows))
        with self.phase("sign"):
            signed, documents = sign_documents(dataset, params, num_cpus)
        partitions = params.partitions(documents)
        with self.phase("band"):
            candidates = find_candidate_pairs(signed, bands, rows, partitions, params.exact, num_cpus).materialize()
        with self.phase("verify"):
            verified = verify_pairs(signed, candidates, params, partitions, num_cpus).materialize()
        with self.phase("cluster"):
            clusters = label_clusters(verified, documents, params.max_pairs_in_memory)
        cluster_count = len(np.unique(clusters[clusters >= 0]))
        self.extras.update(
            documents=documents,
            partitions=partitions,
            candidate_pairs=candidates.count(),
            verified_pairs=verified.count(),
            clusters=cluster_count,
        )
        # Lazy: the runner executes it while committing, so its time counts in the stage's wall_s.
        return mark_duplicates(signed, clusters, cluster_count, params, partitions, num_cpus)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase into the manifest extras (phases are materialised, so wall time is theirs)."""
        started = time.perf_counter()
        yield
        self.extras["phase_wall_s"][name] = round(time.perf_counter() - started, 3)

    def finalize(self, stage_dir) -> dict[str, Any]:
        return getattr(self, "extras", {})


def check_columns(schema: pa.Schema | None, params: DedupParams, stage_name: str) -> None:
    """Fail before any shuffle when a configured column is not in the input."""
    wanted = [*params.text_columns, *([params.score_column] if params.score_column else [])]
    missing = [name for name in wanted if schema is not None and name not in schema.names]
    if missing:
        raise ConfigError(
            f"stage '{stage_name}' reads column(s) {missing}, which its input lacks (it has {schema.names}); "
            f"fix text_columns/score_column in its section or put it after the stage that writes them"
        )


# --- 1-2. number and sign ------------------------------------------------------------------
def sign_documents(dataset, params: DedupParams, num_cpus: float):
    """Rows sorted by id with their document number, signature and digest; and the row count."""
    ordered = dataset.sort(columns.ID).materialize()
    summaries = ordered.select_columns([columns.ID]).map_batches(
        summarize_block, batch_size=None, batch_format="pyarrow", num_cpus=num_cpus
    )
    first_ids, offsets, sizes = block_offsets(summaries.take_all())
    signed = ordered.map_batches(
        number_and_sign,
        fn_kwargs={"first_ids": first_ids, "offsets": offsets, "sizes": sizes, "params": params},
        batch_size=None,
        batch_format="pyarrow",
        num_cpus=num_cpus,
    ).materialize()
    return signed, int(sizes.sum())


def summarize_block(block: pa.Table) -> pa.Table:
    """One row per non-empty batch of whole blocks: its smallest id and its row count."""
    if not block.num_rows:
        return pa.table({"first_id": pa.array([], pa.string()), "rows": pa.array([], pa.int64())})
    return pa.table({"first_id": [pc.min(block[columns.ID]).as_py()], "rows": [block.num_rows]})


def block_offsets(summaries: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first ids, first document numbers, row counts) of the summarised id ranges, in id order.

    A sort's blocks are disjoint id ranges, so the ranges are too."""
    summaries = sorted(summaries, key=lambda row: row["first_id"])
    sizes = np.array([row["rows"] for row in summaries], dtype=np.int64)
    first_ids = np.array([row["first_id"] for row in summaries], dtype=object)
    return first_ids, np.cumsum(sizes) - sizes, sizes


def number_and_sign(
    block: pa.Table, *, first_ids: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, params: DedupParams
) -> pa.Table:
    """The rows in id order with DOC, SIGNATURE and (with params.exact) DIGEST columns.

    Document number = the first number of the row's id range + its rank there. Ray Data may
    batch whole blocks differently than in the summary pass; a range found incomplete here
    means it split one, and numbers would collide, so that is an error, never a silent clash."""
    block = block.take(pc.sort_indices(block[columns.ID]))
    ids = block[columns.ID].to_numpy(zero_copy_only=False)
    ranges = np.searchsorted(first_ids, ids, side="right") - 1
    position = np.arange(len(ids))
    starts_range = np.ones(len(ids), dtype=bool)
    starts_range[1:] = ranges[1:] != ranges[:-1]
    rank = position - np.maximum.accumulate(np.where(starts_range, position, 0))
    present, counts = np.unique(ranges, return_counts=True)
    if len(ids) and (present.min() < 0 or not np.array_equal(counts, sizes[present])):
        raise RuntimeError(
            f"a batch of {len(ids)} sorted rows holds part of an id range summarised earlier; Ray Data re-cut "
            f"the blocks of one materialised dataset between two passes, which this stage relies on not happening"
        )
    texts = joined_texts(block, params.text_columns)
    signatures = compute_minhash_signatures(texts, num_perm=params.num_perm, seed=params.seed, shingle=params.shingles)
    block = block.append_column(DOC, pa.array((offsets[ranges] + rank).astype(np.int64), pa.int64()))
    block = block.append_column(SIGNATURE, signatures_to_arrow(signatures))
    if params.exact:
        block = block.append_column(DIGEST, digest_texts(texts, params.shingles.normalization))
    return block


def joined_texts(block: pa.Table, text_columns: list[str]) -> pa.Array:
    """The text columns joined by newlines, nulls as empty strings."""
    parts = [pc.fill_null(block[name].cast(pa.large_string()), "") for name in text_columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, pa.scalar("\n", pa.large_string()))


def signatures_to_arrow(signatures: np.ndarray) -> pa.FixedSizeBinaryArray:
    width = signatures.shape[1] * signatures.itemsize
    data = pa.py_buffer(np.ascontiguousarray(signatures).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(signatures), [None, data])


def signatures_from_arrow(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(rows, num_perm) uint32 view of a fixed-size binary signature column without nulls."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    num_perm = array.type.byte_width // 4
    values = np.frombuffer(array.buffers()[1], dtype=np.uint32) if len(array) else np.empty(0, np.uint32)
    return values[array.offset * num_perm : (array.offset + len(array)) * num_perm].reshape(-1, num_perm)


# --- 3. band -------------------------------------------------------------------------------
def find_candidate_pairs(signed, bands: int, rows: int, partitions: int, exact: bool, num_cpus: float):
    """Unverified pairs (LEFT < RIGHT) of documents sharing a band bucket; may repeat a pair."""
    band_rows = signed.select_columns([DOC, SIGNATURE, *([DIGEST] if exact else [])]).map_batches(
        emit_band_rows,
        fn_kwargs={"bands": bands, "rows": rows, "partitions": partitions},
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )
    return band_rows.groupby(PARTITION, num_partitions=partitions).map_groups(
        pair_partition, batch_format="pyarrow", num_cpus=num_cpus
    )


def emit_band_rows(batch: pa.Table, *, bands: int, rows: int, partitions: int) -> pa.Table:
    """(PARTITION, band, band_hash, DOC) per searchable document and band; the digest is band `bands`."""
    docs = batch[DOC].to_numpy()
    signatures = signatures_from_arrow(batch[SIGNATURE])
    searchable = has_shingles(signatures)
    keyed = flatten_band_keys(compute_band_keys(signatures[searchable], bands, rows), docs[searchable])
    parts = [keyed]
    if DIGEST in batch.column_names:
        digests = batch[DIGEST].combine_chunks()
        # The digest's first 8 bytes: a collision only adds a candidate, which verification drops.
        words = np.frombuffer(digests.buffers()[1], dtype="<u8").reshape(-1, DIGEST_BYTES // 8)
        digest_keys = words[digests.offset : digests.offset + len(digests), 0].copy()
        parts.append(BandRows(np.full(len(docs), bands, np.int32), digest_keys, docs.astype(np.int64)))
    band_hash = np.concatenate([part.band_hash for part in parts])
    return pa.table({
        PARTITION: (band_hash % np.uint64(partitions)).astype(np.int64),
        "band": np.concatenate([part.band for part in parts]),
        "band_hash": band_hash,
        DOC: np.concatenate([part.doc for part in parts]),
    })  # fmt: skip


def pair_partition(group: pa.Table) -> pa.Table:
    """Candidate pairs of one partition of whole buckets."""
    rows = BandRows(group["band"].to_numpy(), group["band_hash"].to_numpy(), group[DOC].to_numpy())
    pairs = pair_bucket_members(rows)
    return pa.table({LEFT: pairs[:, 0], RIGHT: pairs[:, 1]})


# --- 4. verify -----------------------------------------------------------------------------
def verify_pairs(signed, candidates, params: DedupParams, partitions: int, num_cpus: float):
    """Candidate pairs whose estimated Jaccard reaches the verification threshold, each once."""
    range_docs = params.partition_rows
    signature_rows = signed.select_columns([DOC, SIGNATURE]).map_batches(
        as_signature_rows, fn_kwargs={"range_docs": range_docs}, batch_format="pyarrow", num_cpus=num_cpus
    )
    left_rows = candidates.map_batches(
        as_pair_rows, fn_kwargs={"range_docs": range_docs, "signature_type": signature_type(params)},
        batch_format="pyarrow", num_cpus=num_cpus,
    )  # fmt: skip
    # Materialised: two hash shuffles in one plan stalled on 2 CPUs (the second's map tasks took
    # every CPU while waiting on the first).
    with_left = left_rows.union(signature_rows).groupby(PARTITION, num_partitions=partitions).map_groups(
        attach_left_signatures, fn_kwargs={"range_docs": range_docs}, batch_format="pyarrow", num_cpus=num_cpus
    ).materialize()
    return with_left.union(signature_rows).groupby(PARTITION, num_partitions=partitions).map_groups(
        compare_signatures,
        fn_kwargs={"verify_threshold": params.verification_threshold()},
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )


def signature_type(params: DedupParams) -> pa.DataType:
    return pa.binary(4 * params.num_perm)


def as_signature_rows(batch: pa.Table, *, range_docs: int) -> pa.Table:
    docs = batch[DOC].to_numpy()
    return pa.table({
        PARTITION: docs // range_docs,
        DOC: docs,
        OTHER: np.full(len(docs), NO_OTHER, np.int64),
        SIGNATURE: batch[SIGNATURE],
    })  # fmt: skip


def as_pair_rows(batch: pa.Table, *, range_docs: int, signature_type: pa.DataType) -> pa.Table:
    """Pair rows keyed by their left document's range, without a signature yet."""
    left = batch[LEFT].to_numpy()
    return pa.table({
        PARTITION: left // range_docs,
        DOC: left,
        OTHER: batch[RIGHT].to_numpy(),
        SIGNATURE: pa.nulls(len(left), signature_type),
    })  # fmt: skip


def split_signature_rows(group: pa.Table) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """(sorted docs, their signatures, the pair rows) of one document range."""
    is_signature = pc.equal(group[OTHER], NO_OTHER)
    signature_rows = group.filter(is_signature)
    order = pc.sort_indices(signature_rows[DOC]).to_numpy()
    docs = signature_rows[DOC].to_numpy()[order]
    signatures = signatures_from_arrow(signature_rows[SIGNATURE])[order]
    return docs, signatures, group.filter(pc.invert(is_signature))


def lookup_signatures(docs: np.ndarray, signatures: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(docs, wanted)
    if len(wanted) and (positions.max() >= len(docs) or not np.array_equal(docs[positions], wanted)):
        raise RuntimeError("a candidate pair names a document without a signature row; the numbering phase is broken")
    return signatures[positions]


def attach_left_signatures(group: pa.Table, *, range_docs: int) -> pa.Table:
    """Each distinct pair of one left-document range, re-keyed by its right document and carrying
    the left document's signature."""
    docs, signatures, pair_rows = split_signature_rows(group)
    pairs = unique_pairs(np.stack([pair_rows[DOC].to_numpy(), pair_rows[OTHER].to_numpy()], axis=1))
    left_signatures = lookup_signatures(docs, signatures, pairs[:, 0])
    return pa.table({
        PARTITION: pairs[:, 1] // range_docs,
        DOC: pairs[:, 1],
        OTHER: pairs[:, 0],
        SIGNATURE: signatures_to_arrow(left_signatures),
    })  # fmt: skip


def compare_signatures(group: pa.Table, *, verify_threshold: float) -> pa.Table:
    """Pairs of one right-document range whose estimated Jaccard reaches verify_threshold."""
    docs, signatures, pair_rows = split_signature_rows(group)
    right = pair_rows[DOC].to_numpy()
    left_signatures = signatures_from_arrow(pair_rows[SIGNATURE])
    similarity = estimate_jaccard(left_signatures, lookup_signatures(docs, signatures, right))
    kept = similarity >= verify_threshold
    return pa.table({LEFT: pair_rows[OTHER].to_numpy()[kept], RIGHT: right[kept], SIMILARITY: similarity[kept]})


# --- 5. cluster ----------------------------------------------------------------------------
def label_clusters(verified, documents: int, max_pairs: int) -> np.ndarray:
    """Per document: the smallest document number of its cluster, or -1 when it is alone."""
    labels = np.arange(documents, dtype=np.int64)
    for chunk in verified.iter_batches(batch_size=max_pairs, batch_format="pyarrow"):
        pairs = np.stack([chunk[LEFT].to_numpy(), chunk[RIGHT].to_numpy()], axis=1)
        labels = merge_pairs_into_labels(labels, pairs)
    sizes = np.bincount(labels, minlength=documents)
    labels[sizes[labels] == 1] = -1
    return labels


# --- 6. keep -------------------------------------------------------------------------------
def mark_duplicates(
    signed, clusters: np.ndarray, cluster_count: int, params: DedupParams, partitions: int, num_cpus: float
):
    """Every row once, internal columns dropped: lone rows as they are, cluster members marked."""
    import ray

    clusters_ref = ray.put(clusters)
    alone = signed.map_batches(
        select_rows, fn_kwargs={"clusters_ref": clusters_ref, "in_cluster": False, "range_docs": params.partition_rows},
        batch_format="pyarrow", num_cpus=num_cpus,
    )  # fmt: skip
    if not cluster_count:
        return alone
    members = signed.map_batches(
        select_rows, fn_kwargs={"clusters_ref": clusters_ref, "in_cluster": True, "range_docs": params.partition_rows},
        batch_format="pyarrow", num_cpus=num_cpus,
    )  # fmt: skip
    marked = members.groupby(PARTITION, num_partitions=partitions).map_groups(
        keep_representatives, fn_kwargs={"params": params}, batch_format="pyarrow", num_cpus=num_cpus
    )
    return alone.union(marked)


def select_rows(batch: pa.Table, *, clusters_ref, in_cluster: bool, range_docs: int) -> pa.Table:
    """Lone rows (ready for output) or cluster members (with CLUSTER and PARTITION) of a batch."""
    import ray

    cluster = ray.get(clusters_ref)[batch[DOC].to_numpy()]
    if not in_cluster:
        return without_internal_columns(batch.filter(pa.array(cluster < 0)), rejects=None)
    chosen = cluster >= 0
    members = batch.filter(pa.array(chosen))
    members = members.append_column(CLUSTER, pa.array(cluster[chosen]))
    return members.append_column(PARTITION, pa.array(cluster[chosen] // range_docs))


def keep_representatives(group: pa.Table, *, params: DedupParams) -> pa.Table:
    """The members of whole clusters, each but the kept one per cluster rejected."""
    clusters = group[CLUSTER].to_numpy()
    ids = np.asarray(group[columns.ID].to_pylist(), dtype=object)
    if params.score_column:
        scores = pc.fill_null(group[params.score_column].cast(pa.float64()), math.nan).to_numpy()
    else:
        scores = np.zeros(group.num_rows)
    kept = choose_representatives(clusters, scores, ids.astype(str))
    signatures = signatures_from_arrow(group[SIGNATURE])
    similarity = estimate_jaccard(signatures, signatures[kept])
    docs = group[DOC].to_numpy()
    smallest_id = {int(cluster): ids[index] for index, cluster in enumerate(clusters) if docs[index] == cluster}
    sizes = dict(zip(*np.unique(clusters, return_counts=True)))
    digests = group[DIGEST].to_pylist() if params.exact else None
    reasons, details = [], []
    for index, keeper in enumerate(kept.tolist()):
        if keeper == index:
            reasons.append(None)
            details.append(None)
            continue
        exact = digests is not None and digests[index] == digests[keeper]
        reasons.append((RejectReason.EXACT_DUPLICATE if exact else RejectReason.NEAR_DUPLICATE).value)
        details.append(json.dumps({
            "kept_id": ids[keeper],
            "cluster_id": smallest_id[int(clusters[index])],
            "cluster_size": int(sizes[clusters[index]]),
            "similarity_to_kept": round(float(similarity[index]), 4),
        }))  # fmt: skip
    return without_internal_columns(group, rejects=(reasons, details))


def without_internal_columns(table: pa.Table, rejects: tuple[list, list] | None) -> pa.Table:
    """The input's own columns plus reject_reason and reject_detail (null unless given)."""
    table = table.select([name for name in table.column_names if not name.startswith("__")])
    reasons, details = rejects if rejects is not None else ([None] * table.num_rows, [None] * table.num_rows)
    table = table.append_column(columns.REJECT_REASON, pa.array(reasons, pa.string()))
    return table.append_column(columns.REJECT_DETAIL, pa.array(details, pa.string()))
