"""dedup: exact and near-duplicate removal with MinHash LSH and a true-similarity check, on Ray.

A global stage, usable several times in one job under different names (`{name:
dedup_instructions, kind: dedup}` on `instruction`, `{name: dedup_samples, kind: dedup}` on
instruction + answer, or on seed `text` for natural data). The input blocks (the upstream part
files) are cut into `groups` of whole blocks, about `partition_rows` documents each; every phase
is a round of plain Ray tasks, one per group or partition (Ray Data's sort and groupby shuffles
cost more than the work at 50k documents, and their reduce tasks mapped up to 3 GiB of
object-store pages each at 1M). Document key = (group << 32) | row in group: unique, no sort needed. Phases:

  1. sign:    per group, texts normalised once: MinHash signatures (kept where they are, one
              object per group), the dominant script of each text, and band rows (band key,
              document, a hash of its id, a 64-bit key of its normalised text) cut into
              partitions by band key. The text key is one more band (with `exact`), so exact
              copies are candidates even without shingles.
  2. band:    per partition, the rows not alone in their bucket: each bucket's exact copies
              dropped but the first, then candidate pairs (copies paired through the text-key
              band as a star); pieces by left group.
  3. verify:  per left group, the left signatures attached (pieces by right group); per right
              group, the estimate: a pair goes on if it reaches `verify_threshold`, a filter
              set below the threshold (quality/lsh.py) so that few true pairs are lost here.
  4. cluster: the driver connects the likely pairs into components (memory: the pairs and the
              documents in them, never all documents).
  5. select:  per group, the members' rows (pieces by component partition); per partition,
              the members' true shingle sets and the greedy keep of
              quality/duplicate_selection.py: a document is removed only for a kept document
              whose true Jaccard reaches `threshold`. Decisions go back by group.
  6. mark:    per group, its rows with `reject_reason`/`reject_detail` set on the removed ones:
              `exact_duplicate` when the normalised text equals the kept row's, else
              `near_duplicate`; detail JSON {kept_id, kept_source_id (when the input has
              `source_id`), similarity_to_kept (true Jaccard of shingle sets), cluster_size
              (the kept row and all rows removed for it)}.

Reads: `id`, the `text_columns` (joined by newlines; null counts as empty), `score_column`,
`source_id` when present. Writes: every input row unchanged (no new columns); rejects as above.
Manifest extra `by_script`: per dominant script of the texts (quality/scripts.py), documents,
documents in likely pairs, exact and near rejects, and the true similarity of near rejects to
their kept rows (min and quartiles). Recall needs the truth, which only a test corpus has:
tests/stages/test_dedup.py and tests/benchmarks/bench_dedup_stage.py measure it per language.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.stage import GlobalStage, Resources
from synthmix.quality.duplicate_selection import exact_leaders, pair_jaccard, rank_documents, select_kept
from synthmix.quality.exact_dedup import copy_keys, text_groups
from synthmix.quality.lsh import (
    BandRows,
    MinHashConfig,
    compute_band_keys,
    connect_components,
    drop_exact_copies,
    flatten_band_keys,
    pair_bucket_members,
    shared_bucket_rows,
)
from synthmix.quality.minhash import estimate_jaccard, has_shingles, sign_units
from synthmix.quality.normalize import joined_texts, normalize_texts, string_buffers
from synthmix.quality.scripts import SCRIPTS, dominant_scripts
from synthmix.quality.shingles import cut_units, hash_normalized_shingles, hash_spans

# Every internal task is CPU-bound numpy: one per core, so groups can be sized to the cores.
TASK_CPUS = 1.0
ROW_BITS = 32  # document key = (group << ROW_BITS) | row
TEXT = "__text"
KEY = "__key"
SCRIPT = "__script"
SCORE = "__score"
COMPONENT = "__component"
# What selection decided for one removed row of a group.
DECISIONS = pa.schema([("row", pa.int64()), (contracts.REJECT_REASON, pa.string()), (contracts.REJECT_DETAIL, pa.string())])


class DedupParams(MinHashConfig):
    """MinHash settings (threshold, num_perm, bands, rows, verify_threshold, shingles with their
    normalization, seed) plus what to read and how to split the work."""

    text_columns: list[str] = Field(default_factory=lambda: [contracts.TEXT], min_length=1)
    # Higher is kept (e.g. critique_score, quality_score); null: ties broken by smallest id.
    score_column: str | None = None
    # Label copies of the normalised text `exact_duplicate` and pair them through their own band,
    # so they are found even without shingles; false: they are near duplicates like any other.
    exact: bool = True
    # Documents per group or partition: a task holds about this many documents' text, or
    # signatures (512 bytes each at 128 permutations), or bands x this many band rows.
    partition_rows: int = Field(20_000, ge=1)

    def partitions(self, documents: int, slots: int = 1) -> int:
        """Groups (and partitions) for `documents` rows: one per `partition_rows`, rounded up to
        a multiple of the task slots so that no round ends with one core working alone."""
        wanted = max(1, math.ceil(documents / self.partition_rows))
        return slots * math.ceil(wanted / slots)


class Dedup(GlobalStage):
    name = "dedup"
    input_columns = (contracts.ID,)
    params = DedupParams
    resources = Resources(num_cpus=0.5, batch_size=2048)

    def run(self, dataset):
        import ray
        import ray.data

        params: DedupParams = self.params
        check_columns(self.context.input_schema, params, self.context.stage_name)
        bands, rows = params.band_split()
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
        materialized = dataset.materialize()
        blocks = materialized.to_arrow_refs()
        if not blocks:
            return materialized
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // TASK_CPUS))
        count = min(len(blocks), params.partitions(materialized.count(), slots))
        groups = [[blocks[i] for i in part] for part in np.array_split(np.arange(len(blocks)), count)]
        with self.phase("sign"):
            signed = sign_groups(params, groups)
        with self.phase("band"):
            candidates, candidate_count = pair_candidates(params, signed)
        with self.phase("verify"):
            pairs = verify_candidates(params, signed, candidates)
        with self.phase("cluster"):
            members, labels = label_components(pairs)
        with self.phase("select"):
            with_source_id = self.context.input_schema is not None and contracts.SOURCE_ID in self.context.input_schema.names
            decisions, stats = select_duplicates(params, groups, signed, pairs, members, labels, slots, with_source_id)
        with self.phase("mark"):
            marked = [submit(mark_group, 1, len(group), *group, *decisions[g])[0] for g, group in enumerate(groups)]
            output = ray.data.from_arrow_refs(marked)
        document_scripts = np.concatenate(ray.get(signed.scripts))
        self.extras.update(
            documents=len(document_scripts),
            partitions=len(groups),
            candidate_pairs=candidate_count,
            likely_pairs=len(pairs),
            similar_pairs=stats.similar_pairs,
            components=len(np.unique(labels)),
            by_script=stats.by_script(document_scripts),
        )
        return output

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase into the manifest extras (each phase waits for its tasks)."""
        started = time.perf_counter()
        yield
        self.extras["phase_wall_s"][name] = round(time.perf_counter() - started, 3)

    def finalize(self, stage_dir) -> dict[str, Any]:
        return getattr(self, "extras", {})


def check_columns(schema: pa.Schema | None, params: DedupParams, stage_name: str) -> None:
    """Fail before any task when a configured column is not in the input."""
    wanted = [*params.text_columns, *([params.score_column] if params.score_column else [])]
    missing = [name for name in wanted if schema is not None and name not in schema.names]
    if missing:
        raise ConfigError(
            f"stage '{stage_name}' reads column(s) {missing}, which its input lacks (it has {schema.names}); "
            f"fix text_columns/score_column in its section or put it after the stage that writes them"
        )


# --- plain Ray tasks -----------------------------------------------------------------------
def submit(function, returns: int, *args) -> list:
    """Run function(*args) as a Ray task of TASK_CPUS; its tuple result becomes `returns` objects.
    ObjectRefs among args arrive as their values."""
    # Named for the function, so process listings and the dashboard show the phase.
    refs = remote_task().options(num_returns=returns, name=function.__name__).remote(function, returns, *args)
    return [refs] if returns == 1 else list(refs)


@functools.cache
def remote_task():
    """run_task as a Ray remote function, made once per process (each new one is exported anew)."""
    import ray

    return ray.remote(num_cpus=TASK_CPUS)(run_task)


def run_task(function, returns: int, *args):
    result = function(*args)
    return result[0] if returns == 1 else result


def split_by(part: np.ndarray, parts: int, **arrays: np.ndarray) -> tuple[dict[str, np.ndarray], ...]:
    """The arrays' rows cut into `parts` pieces by `part` (row order kept within a piece)."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    return tuple({name: values[order[bounds[p] : bounds[p + 1]]] for name, values in arrays.items()} for p in range(parts))


def concat_pieces(pieces: tuple[dict[str, np.ndarray], ...]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}


def concat_blocks(blocks: tuple[pa.Table, ...]) -> pa.Table:
    """The group's blocks as one table (chunks kept, nothing copied)."""
    return pa.concat_tables([block for block in blocks if block.num_rows] or list(blocks[:1]), promote_options="default")


def document_keys(group: int, count: int) -> np.ndarray:
    """Keys of a group's documents: (group << ROW_BITS) | row, unique without any numbering pass."""
    return (np.uint64(group) << np.uint64(ROW_BITS)) | np.arange(count, dtype=np.uint64)


def group_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(ROW_BITS)).astype(np.int64)


def row_of(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64)


# --- 1. sign -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedGroups:
    """Object refs, one per group: its signatures, its texts' dominant scripts, and its band-row
    pieces (band_pieces[group][partition])."""

    signatures: list
    scripts: list
    band_pieces: list[list]


def sign_groups(params: DedupParams, groups: list[list]) -> SignedGroups:
    import ray

    parts = len(groups)
    signed = [submit(sign_group, 2 + parts, params, index, parts, *group) for index, group in enumerate(groups)]
    signatures = [refs[0] for refs in signed]
    ray.wait(signatures, num_returns=len(signatures), fetch_local=False)
    return SignedGroups(signatures=signatures, scripts=[refs[1] for refs in signed], band_pieces=[refs[2:] for refs in signed])


def sign_group(params: DedupParams, group: int, parts: int, *blocks: pa.Table) -> tuple:
    """(signatures, dominant scripts, one band-row piece per partition) of one group's documents."""
    table = concat_blocks(blocks)
    normalized = normalize_texts(joined_texts(table, params.text_columns), params.shingles.normalization)
    units = cut_units(normalized, params.shingles.kind)
    signatures = sign_units(units, params.shingles, num_perm=params.num_perm, seed=params.seed)
    bands, rows = params.band_split()
    searchable = np.flatnonzero(has_shingles(signatures))
    banded = flatten_band_keys(compute_band_keys(signatures[searchable], bands, rows), searchable)
    copy_key = copy_keys(normalized)
    band, band_hash, doc = [banded.band], [banded.band_hash], [banded.doc]
    if params.exact:
        band.append(np.full(table.num_rows, bands, np.int32))
        band_hash.append(copy_key)
        doc.append(np.arange(table.num_rows))
    band_hash, doc = np.concatenate(band_hash), np.concatenate(doc)
    pieces = split_by(
        (band_hash % np.uint64(parts)).astype(np.int64), parts,
        band=np.concatenate(band), band_hash=band_hash, key=document_keys(group, table.num_rows)[doc],
        order=id_hashes(table[contracts.ID])[doc], copy=copy_key[doc],
    )  # fmt: skip
    return (signatures, dominant_scripts(units.data, units.starts, units.offsets), *pieces)


def id_hashes(ids: pa.ChunkedArray) -> np.ndarray:
    """A uint64 hash of each id: orders a bucket's documents the same way however the input is grouped."""
    data, offsets = string_buffers(ids.combine_chunks().cast(pa.large_string()))
    return hash_spans(data, offsets[:-1], np.diff(offsets))


# --- 2. band -------------------------------------------------------------------------------
def pair_candidates(params: DedupParams, signed: SignedGroups) -> tuple[list[list], int]:
    """(pair pieces by partition, then by left group; the number of candidate pairs)."""
    import ray

    parts = len(signed.signatures)
    digest_band = params.band_split()[0] if params.exact else None
    bucketed = [submit(pair_partition, 1 + parts, parts, digest_band, *[pieces[part] for pieces in signed.band_pieces]) for part in range(parts)]
    return [refs[1:] for refs in bucketed], int(sum(ray.get([refs[0] for refs in bucketed])))


def pair_partition(parts: int, digest_band: int | None, *pieces: dict[str, np.ndarray]) -> tuple:
    """(candidate count, one pair piece per left group) of one partition of whole buckets.

    Documents are ranked by (id hash, key), so which documents anchor a big bucket and which
    copy stands for its text do not depend on how the input was grouped. Rows alone in their
    bucket (most of them) are set aside first."""
    rows = concat_pieces(pieces)
    shared = shared_bucket_rows(BandRows(rows["band"], rows["band_hash"], rows["key"]))
    rows = {name: values[shared] for name, values in rows.items()}
    keys, inverse = np.unique(rows["key"], return_inverse=True)
    id_hash = np.zeros(len(keys), dtype=np.uint64)
    id_hash[inverse] = rows["order"]
    ranked = np.lexsort((keys, id_hash))  # keys in rank order
    rank = np.empty(len(keys), dtype=np.int64)
    rank[ranked] = np.arange(len(keys))
    local = rank[inverse]
    exact = rows["band"] == digest_band if digest_band is not None else np.zeros(len(local), dtype=bool)
    signature_rows = BandRows(rows["band"][~exact], rows["band_hash"][~exact], local[~exact])
    copy_rows = BandRows(rows["band"][exact], rows["band_hash"][exact], local[exact])
    if digest_band is not None:  # copies are paired through their own band: each bucket needs one
        signature_rows = drop_exact_copies(signature_rows, rows["copy"][~exact])
    pairs = np.concatenate([
        pair_bucket_members(signature_rows),
        pair_bucket_members(copy_rows, max_anchors=1),  # copies of one text: a star, linear in their number
    ])  # fmt: skip
    pairs = np.sort(keys[ranked][pairs], axis=1)
    return (len(pairs), *split_by(group_of(pairs[:, 0]), parts, left=pairs[:, 0], right=pairs[:, 1]))


# --- 3. verify -----------------------------------------------------------------------------
def verify_candidates(params: DedupParams, signed: SignedGroups, candidates: list[list]) -> np.ndarray:
    """Distinct candidate pairs (document keys, shape (k, 2)) whose estimate passes the filter."""
    import ray

    parts = len(signed.signatures)
    with_left = [submit(attach_left_signatures, parts, parts, signed.signatures[group], *[pieces[group] for pieces in candidates]) for group in range(parts)]
    threshold = params.verification_threshold()
    compared = [submit(compare_signatures, 1, threshold, signed.signatures[group], *[pieces[group] for pieces in with_left])[0] for group in range(parts)]
    return np.concatenate(ray.get(compared))


def attach_left_signatures(parts: int, signatures: np.ndarray, *pieces: dict[str, np.ndarray]) -> tuple:
    """One left group's distinct pairs with the left document's signature, one piece per right group."""
    pairs = concat_pieces(pieces)
    distinct = np.unique(np.stack([pairs["left"], pairs["right"]], axis=1), axis=0)
    left, right = distinct[:, 0], distinct[:, 1]
    return split_by(group_of(right), parts, left=left, right=right, signature=signatures[row_of(left)])


def compare_signatures(verify_threshold: float, signatures: np.ndarray, *pieces: dict[str, np.ndarray]) -> tuple:
    """(pairs of one right group whose estimated Jaccard reaches verify_threshold, shape (k, 2),)."""
    pairs = concat_pieces(pieces)
    likely = estimate_jaccard(pairs["signature"], signatures[row_of(pairs["right"])]) >= verify_threshold
    return (np.stack([pairs["left"][likely], pairs["right"][likely]], axis=1),)


# --- 4. cluster ----------------------------------------------------------------------------
def label_components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys of the documents in pairs, sorted; their component: its smallest member's index)."""
    if not len(pairs):
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    members, local = np.unique(pairs, return_inverse=True)
    return members, connect_components(local.reshape(-1, 2).astype(np.int64), len(members))


# --- 5. select -----------------------------------------------------------------------------
def select_duplicates(
    params: DedupParams,
    groups: list,
    signed: SignedGroups,
    pairs: np.ndarray,
    members: np.ndarray,
    labels: np.ndarray,
    slots: int,
    with_source_id: bool,
):
    """(decision pieces of each group, SelectionStats): members' rows travel to the partition
    of their component, where the keep decisions are made."""
    import ray

    if not len(members):
        return [[] for _ in groups], SelectionStats.empty()
    scripts = signed.scripts
    parts = params.partitions(len(members), slots)
    bounds = np.searchsorted(group_of(members), np.arange(len(groups) + 1))
    extracted = []
    for g, group in enumerate(groups):
        chosen = slice(bounds[g], bounds[g + 1])
        extracted.append(submit(extract_members, parts, params, parts, members[chosen], labels[chosen], scripts[g], len(group), *group))
    component = labels[np.searchsorted(members, pairs[:, 0])]
    edges = split_by(component % parts, parts, left=pairs[:, 0], right=pairs[:, 1])
    selected = [
        submit(select_partition, 1 + len(groups), params, with_source_id, len(groups), edges[part], *[refs[part] for refs in extracted])
        for part in range(parts)
    ]
    stats = SelectionStats.merge(ray.get([refs[0] for refs in selected]))
    return [[refs[1 + g] for refs in selected] for g in range(len(groups))], stats


def extract_members(
    params: DedupParams,
    parts: int,
    keys: np.ndarray,
    labels: np.ndarray,
    scripts: np.ndarray,
    block_count: int,
    *blocks: pa.Table,
) -> tuple:
    """The rows of one group's members (id, source id, score, joined text, key, script, component),
    one table per selecting partition."""
    table = concat_blocks(blocks[:block_count])
    rows = table.take(pa.array(row_of(keys)))
    score = rows[params.score_column].cast(pa.float64()) if params.score_column else pa.nulls(len(keys), pa.float64())
    source_id = rows[contracts.SOURCE_ID].cast(pa.string()) if contracts.SOURCE_ID in rows.column_names else pa.nulls(len(keys), pa.string())
    selected = pa.table({
        contracts.ID: rows[contracts.ID], contracts.SOURCE_ID: source_id, SCORE: score, TEXT: joined_texts(rows, params.text_columns),
        KEY: keys, SCRIPT: scripts[row_of(keys)], COMPONENT: labels,
    })  # fmt: skip
    part = labels % parts
    return tuple(selected.filter(pa.array(part == p)) for p in range(parts))


@dataclass
class SelectionStats:
    """Counts of one or more selecting partitions, per script id."""

    similar_pairs: int
    members: np.ndarray
    exact: np.ndarray
    near: np.ndarray
    near_similarity: list[np.ndarray]  # per script id

    @classmethod
    def empty(cls) -> SelectionStats:
        nothing = np.zeros(len(SCRIPTS), dtype=np.int64)
        return cls(0, nothing, nothing, nothing, [np.zeros(0)] * len(SCRIPTS))

    @classmethod
    def merge(cls, parts: list[SelectionStats]) -> SelectionStats:
        return cls(
            similar_pairs=sum(part.similar_pairs for part in parts),
            members=sum(part.members for part in parts),
            exact=sum(part.exact for part in parts),
            near=sum(part.near for part in parts),
            near_similarity=[np.concatenate([part.near_similarity[i] for part in parts]) for i in range(len(SCRIPTS))],
        )

    def by_script(self, document_scripts: np.ndarray) -> dict[str, dict]:
        """The manifest's `by_script`: per script that has documents, the counts and the spread
        of near rejects' true similarity to their kept rows."""
        documents = np.bincount(document_scripts, minlength=len(SCRIPTS))
        summary = {}
        for script_id in np.flatnonzero(documents):
            similarity = self.near_similarity[script_id]
            quartiles = np.quantile(similarity, [0, 0.25, 0.5, 0.75]).round(4).tolist() if len(similarity) else []
            summary[SCRIPTS[script_id]] = {
                "documents": int(documents[script_id]),
                "in_likely_pairs": int(self.members[script_id]),
                "exact_duplicates": int(self.exact[script_id]),
                "near_duplicates": int(self.near[script_id]),
                "near_similarity": dict(zip(("min", "p25", "median", "p75"), quartiles, strict=True)) if quartiles else None,
            }
        return summary


def select_partition(params: DedupParams, with_source_id: bool, group_count: int, edges: dict[str, np.ndarray], *pieces: pa.Table) -> tuple:
    """(SelectionStats, one decision table per group) for the members of whole components."""
    members = pa.concat_tables(pieces).combine_chunks()
    if not members.num_rows:
        return (SelectionStats.empty(), *(DECISIONS.empty_table() for _ in range(group_count)))
    keys = members[KEY].to_numpy()
    order = np.argsort(keys)
    members = members.take(pa.array(order))
    keys = keys[order]
    normalized = normalize_texts(members[TEXT], params.shingles.normalization)
    shingles = hash_normalized_shingles(normalized, params.shingles)
    texts = text_groups(normalized)
    scores = pc.fill_null(members[SCORE], math.nan).to_numpy(zero_copy_only=False)
    ids = np.asarray(members[contracts.ID].to_pylist(), dtype=object).astype(str)
    rank = rank_documents(scores, ids)
    leaders = exact_leaders(texts, rank)
    pairs = np.stack([np.searchsorted(keys, edges["left"]), np.searchsorted(keys, edges["right"])], axis=1)
    similarity = pair_jaccard(shingles, pairs)
    similarity[texts[pairs[:, 0]] == texts[pairs[:, 1]]] = 1.0  # also for two texts without shingles
    selection = select_kept(pairs, similarity, rank=rank, leaders=leaders, threshold=params.threshold)
    removed = np.flatnonzero(selection.is_duplicate())
    kept = selection.kept[removed]
    source_ids = members[contracts.SOURCE_ID].to_pylist()
    sizes = selection.group_sizes()
    details = []
    for index, keeper in zip(removed.tolist(), kept.tolist()):
        detail = {"kept_id": ids[keeper]}
        if with_source_id:
            detail["kept_source_id"] = source_ids[keeper]
        detail["similarity_to_kept"] = round(float(selection.similarity[index]), 4)
        detail["cluster_size"] = int(sizes[index])
        details.append(json.dumps(detail))
    exact = selection.exact[removed] & params.exact
    reasons = np.where(exact, RejectReason.EXACT_DUPLICATE.value, RejectReason.NEAR_DUPLICATE.value)
    decisions = pa.table([row_of(keys[removed]), pa.array(reasons, pa.string()), pa.array(details, pa.string())], schema=DECISIONS)
    scripts = members[SCRIPT].to_numpy()

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(scripts[mask], minlength=len(SCRIPTS))

    near = removed[~exact]
    stats = SelectionStats(
        similar_pairs=int(np.count_nonzero(similarity >= params.threshold)),
        members=count(np.ones(len(keys), dtype=bool)),
        exact=count(removed[exact]),
        near=count(near),
        near_similarity=[selection.similarity[near][scripts[near] == s] for s in range(len(SCRIPTS))],
    )
    groups = group_of(keys[removed])
    return (stats, *(decisions.filter(pa.array(groups == g)) for g in range(group_count)))


# --- 6. mark -------------------------------------------------------------------------------
def mark_group(block_count: int, *blocks_and_decisions: pa.Table) -> tuple:
    """(the group's rows with reject_reason and reject_detail, set on the removed rows,)."""
    table = concat_blocks(blocks_and_decisions[:block_count])
    decisions = pa.concat_tables([DECISIONS.empty_table(), *blocks_and_decisions[block_count:]])
    rows = decisions["row"].to_numpy()
    reasons = np.full(table.num_rows, None, dtype=object)
    details = np.full(table.num_rows, None, dtype=object)
    reasons[rows] = decisions[contracts.REJECT_REASON].to_numpy(zero_copy_only=False)
    details[rows] = decisions[contracts.REJECT_DETAIL].to_numpy(zero_copy_only=False)
    table = table.append_column(contracts.REJECT_REASON, pa.array(reasons, pa.string()))
    return (table.append_column(contracts.REJECT_DETAIL, pa.array(details, pa.string())),)
