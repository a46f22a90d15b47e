"""Near-duplicates in mixed Chinese-English technical text: recall per language and Han share,
precision, and speed against datasketch, side by side in one run.

    .venv/bin/python -m tests.benchmarks.bench_mixed_dedup [--docs 60000] [--chinese-share 0.1] [--cpus 2]

The corpus is tests/quality/mixed_script_corpus.build_mixed_corpus: Chinese translations of
technical documentation that quote commands and identifiers (Debian Reference, New Maintainers'
Guide, FAQ, the mixed paragraphs of the Chinese manual pages) and Python's English documentation;
copies planted by character edits, re-wrapping (at spaces, or anywhere at the width) and a moved
sentence. The truth is the edits: a copy with at most 0.3% of its characters changed is a
duplicate, one with 2% or more is not, whatever any shingling says.

Compared, all at threshold 0.8 and 128 permutations:
  - synthmix dedup stage: `Dedup.run` with its defaults (auto shingles) on an embedded Ray with
    --cpus CPUs, measured on its second run; wall x CPUs, and CPU seconds of all Ray processes;
  - synthmix core: synthmix.quality.lsh.find_near_duplicates in one process with each shingle kind
    (auto, the former default units, word, char), for quality;
  - datasketch: MinHash.bulk and MinHashLSH (its own bands) over the same normalisation and
    `units` shingles made in Python (one a word: the cheapest for it), one process, CPU seconds;
    and over the very shingles synthmix uses (the reference shingler's winnowed 9-character
    shingles) on the first --same-shingles-docs documents, its CPU seconds per MB scaled to the
    corpus.
Recall: duplicate pairs of which not both texts are kept, per group: English, and Chinese by the
base's Han share (0-20%, 20-50%, 50-100%); precision: removed texts removed for their own
duplicate partner. Then the mean exact Jaccard of the planted copies by edit and group under auto
and units shingles: the same edit should score the same in every group.
"""

import time
from pathlib import Path

import numpy as np
import psutil

from synthmix.quality.lsh import MinHashConfig
from synthmix.quality.shingles import ShingleSpec
from tests.benchmarks.bench_dedup_stage import cached_build, corpus_parser, run_core, run_datasketch, run_stage
from tests.quality import mixed_script_corpus, near_duplicate_fixture
from tests.quality.mixed_script_corpus import MixedCorpus, build_mixed_corpus, score_mixed_removals
from tests.quality.near_duplicate_fixture import exact_jaccard

GROUPS = ("en", "zh 0-20%", "zh 20-50%", "zh 50-100%", "all")


def cached_corpus(docs: int, seed: int, chinese_share: float) -> MixedCorpus:
    """build_mixed_corpus, cached (bench_dedup_stage.cached_build)."""
    build = lambda: build_mixed_corpus(docs, seed=seed, chinese_share=chinese_share)  # noqa: E731
    return cached_build("bench-mixed-corpus", (mixed_script_corpus, near_duplicate_fixture), f"{docs}:{seed}:{chinese_share}", build)


def cpu_flags() -> str:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[-1].split("\n", 1)[0].split()
    return " ".join(sorted({flag for flag in flags if flag.startswith(("avx512", "avx2", "amx"))})) or "no AVX2/AVX-512"


def quality_row(name: str, corpus: MixedCorpus, removed: dict[int, int]) -> str:
    scores = score_mixed_removals(corpus, removed)
    recalls = " ".join(f"{scores[group]['recall']:>10.4f}" for group in GROUPS)
    return f"{name:44} {recalls} {scores['all']['precision']:>10.4f} {scores['all']['removed']:>8}"


def jaccard_table(corpus: MixedCorpus) -> None:
    """Mean exact Jaccard of the planted copies, per edit and group, under auto and units shingles."""
    units = exact_jaccard(corpus.texts, corpus.pairs, ShingleSpec(kind="units"))
    groups = corpus.pair_groups()
    print(f"\n{'mean exact Jaccard of the copies (auto / units)':52} " + " ".join(f"{group:>13}" for group in GROUPS[:-1]))
    for edit in dict.fromkeys(corpus.pair_edit.tolist()):
        cells = []
        for group in GROUPS[:-1]:
            chosen = (corpus.pair_edit == edit) & (groups == group)
            cells.append(f"{corpus.jaccard[chosen].mean():.2f} / {units[chosen].mean():.2f}" if chosen.any() else "-")
        kind = "duplicate" if corpus.duplicate[corpus.pair_edit == edit][0] else "distinct"
        print(f"{edit + ' (' + kind + ')':52} " + " ".join(f"{cell:>13}" for cell in cells))


def main() -> None:
    parser = corpus_parser(__doc__, docs=60_000, chinese_share=0.1)
    parser.add_argument("--same-shingles-docs", type=int, default=5_000, help="documents datasketch signs with synthmix's own shingles")
    args = parser.parse_args()
    started = time.perf_counter()
    corpus = cached_corpus(args.docs, args.seed, args.chinese_share)
    texts = corpus.texts
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    config = MinHashConfig()
    groups = corpus.pair_groups()
    planted = ", ".join(f"{group} {int((corpus.duplicate & (groups == group)).sum())}" for group in GROUPS[:-1])
    print(
        f"corpus: {len(texts)} documents ({args.chinese_share:.0%} Chinese technical text), {megabytes:.1f} MB, built in "
        f"{time.perf_counter() - started:.0f} s; duplicate pairs planted: {planted}; distinct copies {int((~corpus.duplicate).sum())}"
    )
    print(
        f"config: shingles {config.shingles.kind} n={config.shingles.n} winnow={config.shingles.winnow}, {config.num_perm} permutations, bands x rows "
        f"{config.band_split()}; CPU {psutil.cpu_count()} cores ({cpu_flags()}); load average now {psutil.getloadavg()[0]:.1f}"
    )

    stage = run_stage(texts, args.cpus)
    core = {kind: run_core(texts, ShingleSpec(kind=kind)) for kind in ("auto", "units", "word", "char")}
    theirs_removed, theirs_cpu = run_datasketch(texts, MinHashConfig(shingles=ShingleSpec(kind="units")))
    subset = texts[: args.same_shingles_docs]
    _, same_cpu = run_datasketch(subset, config)
    same_cpu *= megabytes / (sum(len(text.encode()) for text in subset) / 1e6)

    print(f"\n{'recall at threshold 0.8; precision':44} " + " ".join(f"{group:>10}" for group in GROUPS) + f" {'precision':>10} {'removed':>8}")
    print(quality_row("synthmix dedup stage (defaults: auto)", corpus, stage["removed"]))
    for kind, (removed, _) in core.items():
        print(quality_row(f"synthmix core, shingles.kind: {kind}", corpus, removed))
    print(quality_row("datasketch MinHashLSH (units, its own bands)", corpus, theirs_removed))

    jaccard_table(corpus)

    print(f"\n{'speed, end to end':44} {'CPU seconds':>12} {'MB/s':>8} {'docs/s':>9} | vs datasketch")
    for name, seconds in (
        ("datasketch bulk + MinHashLSH (units), one process", theirs_cpu),
        (f"  same, synthmix's shingles (x{len(texts) / len(subset):.0f} of {len(subset)} docs)", same_cpu),
        ("synthmix quality/ core (auto), one process", core["auto"][1]),
        (f"synthmix dedup stage on Ray, wall x {args.cpus} CPUs", stage["wall"] * args.cpus),
        ("  same, CPU seconds of all Ray processes", stage["cpu"]),
    ):
        print(f"{name:44} {seconds:>12.2f} {megabytes / seconds:>8.2f} {len(texts) / seconds:>9.0f} | {theirs_cpu / seconds:5.2f}x")
    print(
        f"\nstage wall {stage['wall']:.2f} s on the second run (the first, starting the Ray workers, took {stage['warm_up_wall']:.2f} s): "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in stage["phase_wall"].items())
    )
    extras = stage["extras"]
    print(
        f"pairs: {extras['candidate_pairs']} candidates, {extras['likely_pairs']} past the estimate, {extras['similar_pairs']} truly >= 0.8; "
        f"peak memory: driver {stage['driver_peak_mb']:.0f} MiB, largest Ray worker {stage['worker_peak_mb']:.0f} MiB; "
        f"load average at the end {psutil.getloadavg()[0]:.1f}"
    )
    duplicate, distinct = corpus.jaccard[corpus.duplicate], corpus.jaccard[~corpus.duplicate]
    print(
        f"the default shingles against the planted truth: {np.mean(duplicate >= 0.8):.4f} of duplicate pairs have exact "
        f"Jaccard >= 0.8 (lowest {duplicate.min():.3f}), {np.mean(distinct < 0.8):.4f} of distinct copies < 0.8 (highest {distinct.max():.3f})"
    )


if __name__ == "__main__":
    main()
