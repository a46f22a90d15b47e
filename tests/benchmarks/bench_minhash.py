"""MinHash near-duplicate search against datasketch, side by side, on >= 100k real-text documents.

    .venv/bin/python -m tests.benchmarks.bench_minhash [--docs 100000] [--baseline-docs 10000]

Documents are 1-4 random pieces (pydoc topic paragraphs, stdlib source blocks) drawn with a
seeded generator; 10% are edited copies of others, so clustering has real work. Rates are per
core: bytes or documents over the process's CPU seconds (everything here is single-threaded),
which other jobs on the machine disturb less than wall time. datasketch runs on the first
--baseline-docs documents only and its rates are extrapolated linearly to the full corpus.
"""

import argparse
import random
import resource
import sysconfig
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from datasketch import MinHash, MinHashLSH

from synthmix.quality.duplicate_selection import choose_representatives
from synthmix.quality.lsh import (
    MinHashConfig,
    compute_band_keys,
    connect_components,
    estimate_pair_jaccard,
    flatten_band_keys,
    merge_pairs_into_labels,
    pair_bucket_members,
)
from synthmix.quality.minhash import has_shingles, sign_shingles
from synthmix.quality.normalize import normalize_texts
from synthmix.quality.shingles import hash_shingles
from tests.quality.near_duplicate_fixture import edit_units, pydoc_sections

BATCH_DOCS = 2_000  # documents per signature batch, as a Ray Data map batch would hold
COPY_SHARE = 0.1
COPY_EDIT_RATES = (0.0, 0.005, 0.01, 0.05)
PAIRS_PER_MERGE = 100_000

Result = TypeVar("Result")


def stdlib_source_blocks(min_words: int) -> list[str]:
    """Blank-line separated blocks of every stdlib module's source, in path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    blocks = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        blocks.extend(block for block in text.split("\n\n") if len(block.split()) >= min_words)
    return blocks


def build_corpus(documents: int, seed: int) -> list[str]:
    """Documents of 1-4 real pieces each; COPY_SHARE of them are edited copies of earlier ones."""
    rng = random.Random(seed)
    pieces = [p for section in pydoc_sections() for p in section if len(p.split()) >= 20]
    pieces += stdlib_source_blocks(min_words=20)
    vocabulary = sorted({word for piece in rng.sample(pieces, 2000) for word in piece.split()})
    texts: list[str] = []
    for _ in range(documents):
        if texts and rng.random() < COPY_SHARE:
            texts.append(edit_units(rng.choice(texts), rng.choice(COPY_EDIT_RATES), vocabulary, rng))
        else:
            texts.append("\n\n".join(rng.sample(pieces, rng.randint(1, 4))))
    return texts


def timed(step: Callable[[], Result]) -> tuple[Result, float, float]:
    """(result, CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = step()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def sign_in_batches(texts: list[str], config: MinHashConfig) -> np.ndarray:
    return np.concatenate(
        [
            sign_shingles(hash_shingles(batch, config.shingles), num_perm=config.num_perm, seed=config.seed)
            for batch in (texts[i : i + BATCH_DOCS] for i in range(0, len(texts), BATCH_DOCS))
        ]
    )


def band(signatures: np.ndarray, config: MinHashConfig) -> np.ndarray:
    bands, rows = config.band_split()
    searchable = np.flatnonzero(has_shingles(signatures))
    return pair_bucket_members(flatten_band_keys(compute_band_keys(signatures[searchable], bands, rows), searchable))


def cluster(signatures: np.ndarray, candidates: np.ndarray, config: MinHashConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    verified = candidates[estimate_pair_jaccard(signatures, candidates) >= config.verification_threshold()]
    clusters = connect_components(verified, len(signatures))
    ids = np.arange(len(signatures))  # the stage passes string ids; positions keep the timing about the algorithm
    return verified, clusters, choose_representatives(clusters, np.zeros(len(signatures)), ids)


def merge_in_chunks(verified: np.ndarray, num_docs: int) -> np.ndarray:
    labels = np.arange(num_docs)
    for start in range(0, len(verified), PAIRS_PER_MERGE):
        labels = merge_pairs_into_labels(labels, verified[start : start + PAIRS_PER_MERGE])
    return labels


def traced_peak_mb(step: Callable[[], object]) -> float:
    """Peak bytes numpy and Python allocated during step (run untimed: tracing slows Python code)."""
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run_ours(texts: list[str], config: MinHashConfig) -> dict[str, float]:
    signatures, sign_cpu, sign_wall = timed(lambda: sign_in_batches(texts, config))
    candidates, band_cpu, band_wall = timed(lambda: band(signatures, config))
    (verified, clusters, kept), cluster_cpu, cluster_wall = timed(lambda: cluster(signatures, candidates, config))
    merged, merge_cpu, _ = timed(lambda: merge_in_chunks(verified, len(texts)))
    if not np.array_equal(merged, clusters):
        raise AssertionError("chunked union-find disagrees with scipy's connected components")
    batch = texts[:BATCH_DOCS]
    return {
        "sign_cpu": sign_cpu, "sign_wall": sign_wall, "band_cpu": band_cpu, "band_wall": band_wall,
        "cluster_cpu": cluster_cpu, "cluster_wall": cluster_wall, "merge_cpu": merge_cpu,
        "batch_peak_mb": traced_peak_mb(lambda: sign_in_batches(batch, config)),
        "band_cluster_peak_mb": traced_peak_mb(lambda: cluster(signatures, band(signatures, config), config)),
        "signature_mb": signatures.nbytes / 2**20, "candidates": len(candidates), "verified": len(verified),
        "removed": int((kept != np.arange(len(texts))).sum()),
    }  # fmt: skip


def datasketch_shingles(texts: list[str], config: MinHashConfig) -> list[list[bytes]]:
    """Per-document shingle sets the usual Python way, after the same normalisation."""
    n = config.shingles.n
    shingle_sets = []
    for text in normalize_texts(texts, config.shingles.normalization).to_pylist():
        words = text.split()
        shingle_sets.append([" ".join(words[i : i + n]).encode() for i in range(max(1, len(words) - n + 1))])
    return shingle_sets


def similar_lsh_pairs(lsh: MinHashLSH, sketches: list[MinHash], threshold: float) -> np.ndarray:
    """Every sketch inserted, then queried: pairs (i < j) whose estimated Jaccard reaches threshold."""
    for index, sketch in enumerate(sketches):
        lsh.insert(index, sketch)
    pairs = [
        (index, other) for index, sketch in enumerate(sketches) for other in lsh.query(sketch) if other > index and sketch.jaccard(sketches[other]) >= threshold
    ]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def run_datasketch(texts: list[str], config: MinHashConfig) -> dict[str, float]:
    bands, rows = config.band_split()
    shingle_sets, shingle_cpu, _ = timed(lambda: datasketch_shingles(texts, config))
    sketches, bulk_cpu, _ = timed(lambda: MinHash.bulk(shingle_sets, num_perm=config.num_perm, seed=config.seed))

    def band_and_cluster() -> int:
        lsh = MinHashLSH(num_perm=config.num_perm, params=(bands, rows))
        pairs = similar_lsh_pairs(lsh, sketches, config.verification_threshold())
        clusters = connect_components(pairs, len(texts))
        return int((clusters != np.arange(len(texts))).sum())

    removed, lsh_cpu, _ = timed(band_and_cluster)
    return {"shingle_cpu": shingle_cpu, "bulk_cpu": bulk_cpu, "lsh_cpu": lsh_cpu, "removed": removed}


def rates(cpu_seconds: float, megabytes: float, docs: int) -> str:
    return f"{megabytes / cpu_seconds:9.1f} MB/s {docs / cpu_seconds:10.0f} docs/s"


def print_table(ours: dict[str, float], theirs: dict[str, float], corpus: tuple[float, int], subset: tuple[float, int]) -> None:
    """Per-core rates side by side; datasketch's are rates over its subset, i.e. extrapolated."""
    (megabytes, docs), (subset_mb, subset_docs) = corpus, subset
    phases = [
        ("signatures (normalise+shingle+MinHash)", ours["sign_cpu"], theirs["shingle_cpu"] + theirs["bulk_cpu"]),
        ("  MinHash only, shingles given", None, theirs["bulk_cpu"]),
        ("banding (band keys + bucket pairs)", ours["band_cpu"], None),
        ("clustering (verify + components + keep)", ours["cluster_cpu"], None),
        ("banding + clustering", ours["band_cpu"] + ours["cluster_cpu"], theirs["lsh_cpu"]),
    ]
    print(f"{'phase':42} {'ours':>33} | {'datasketch MinHash.bulk + MinHashLSH':>35} | ratio")
    for name, our_cpu, their_cpu in phases:
        our_text = rates(our_cpu, megabytes, docs) if our_cpu is not None else ""
        their_text = rates(their_cpu, subset_mb, subset_docs) if their_cpu is not None else ""
        ratio = ""
        if our_cpu is not None and their_cpu is not None:
            ratio = f"{(megabytes / our_cpu) / (subset_mb / their_cpu):5.1f}x"
        print(f"{name:42} {our_text:>33} | {their_text:>35} | {ratio}")
    bulk_ratio = (megabytes / ours["sign_cpu"]) / (subset_mb / theirs["bulk_cpu"])
    print(f"signatures, ours end to end vs MinHash.bulk alone (its shingling not counted): {bulk_ratio:.1f}x")
    share = (ours["band_cpu"] + ours["cluster_cpu"]) / ours["sign_cpu"]
    print(f"banding + clustering take {share:.3f} of signature time (target < 0.1)")
    merge_cpu = ours["merge_cpu"]
    print(f"chunked union-find ({PAIRS_PER_MERGE} pairs a chunk) instead of scipy: {merge_cpu:.3f} s, same labels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--baseline-docs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = MinHashConfig()
    texts, build_cpu, _ = timed(lambda: build_corpus(args.docs, args.seed))
    # Lazy imports inside pyarrow and the Unicode separator table: once per process (per Ray worker).
    _, start_up_cpu, _ = timed(lambda: sign_in_batches(texts[:10], config))
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    print(f"corpus: {len(texts)} documents, {megabytes:.1f} MB of real text (built in {build_cpu:.1f} s)")
    print(
        f"config: {config.num_perm} permutations, bands x rows {config.band_split()}, "
        f"word {config.shingles.n}-grams, verified at estimated Jaccard >= {config.verification_threshold():.3f}"
    )
    print(f"one-time start-up (lazy imports, Unicode table): {start_up_cpu:.2f} s CPU, not counted below")

    ours = run_ours(texts, config)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    subset = texts[: args.baseline_docs]
    subset_mb = sum(len(text.encode()) for text in subset) / 1e6
    theirs = run_datasketch(subset, config)

    print(
        f"\nper core (CPU seconds); datasketch measured on {len(subset)} docs ({subset_mb:.1f} MB), "
        f"its rates extrapolated x{len(texts) / len(subset):.0f} to the corpus"
    )
    print_table(ours, theirs, (megabytes, len(texts)), (subset_mb, len(subset)))
    print(f"\nwall seconds, ours: signatures {ours['sign_wall']:.1f}, banding {ours['band_wall']:.2f}, clustering {ours['cluster_wall']:.2f}")
    print(
        f"pairs: {ours['candidates']} candidates, {ours['verified']} verified; "
        f"{ours['removed']} of {len(texts)} documents removed "
        f"(datasketch on its subset: {theirs['removed']} of {len(subset)})"
    )
    print(
        f"memory: signatures {ours['signature_mb']:.0f} MiB; traced peak {ours['batch_peak_mb']:.0f} MiB signing "
        f"one batch of {BATCH_DOCS} docs, {ours['band_cluster_peak_mb']:.0f} MiB banding and clustering all; "
        f"process peak RSS {peak_rss:.0f} MiB before datasketch ran (the corpus: ~{2 * megabytes:.0f} MB of str)"
    )


if __name__ == "__main__":
    main()
