"""Near-duplicate removal on a bilingual real-text corpus: quality and speed, side by side in one run.

    .venv/bin/python -m tests.benchmarks.bench_dedup_stage [--docs 50000] [--cpus 2] [--chinese-share 0.15] [--stage-only]

The corpus is tests/quality/near_duplicate_fixture.build_bilingual_corpus: real technical text
(Python's documentation, sources and package docstrings; Debian's Chinese manual pages), 20% of
each language planted as edited copies of known exact Jaccard (reference shingler, default shingles).
tests/benchmarks/bench_mixed_dedup.py measures mixed Chinese-English text by Han share.
Compared, all at threshold 0.8 and 128 permutations:
  - datasketch: the same normalisation, word units (`units` shingles: one a word, its cheapest) in
    Python, MinHash.bulk, MinHashLSH with its own band choice for the threshold, pairs accepted on
    the estimate, connected components, the smallest document of each kept; one process, CPU
    seconds.
  - synthmix core: synthmix.quality.lsh.find_near_duplicates in one process (CPU seconds); also with
    `units`, `word` and `char` shingles, for quality only.
  - synthmix stage: `Dedup.run` on an embedded Ray with --cpus CPUs, output consumed; wall x CPUs,
    so idle cores count (CPU seconds of all Ray processes, sampled, shown too).
Quality: recall per language (planted pairs of exact Jaccard >= 0.8 not both kept) and precision
(removed documents whose kept document is kept and truly >= 0.8). Speed: per-core MB/s end to end
and the ratio to datasketch. Peak memory: the driver and the largest Ray worker (RSS, and its
heap: RssAnon, without the object-store pages a worker maps).
"""

import argparse
import hashlib
import os
import pickle
import re
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil
import pyarrow as pa
from datasketch import MinHash, MinHashLSH

from synthmix.pipeline import contracts
from synthmix.pipeline.stage import StageContext
from synthmix.quality.lsh import MinHashConfig, connect_components, find_near_duplicates
from synthmix.quality.shingles import ShingleSpec
from synthmix.stages.dedup import Dedup, DedupParams
from tests.benchmarks.bench_minhash import similar_lsh_pairs
from tests.benchmarks.bench_scale import anonymous_rss
from tests.quality import near_duplicate_fixture
from tests.quality.near_duplicate_fixture import build_bilingual_corpus, reference_shingles, score_removals

BLOCKS = 16  # input blocks, as part files of an upstream stage would give
T = TypeVar("T")


def ray_processes() -> list[psutil.Process]:
    """This process and every process it started (Ray's GCS, raylet and workers)."""
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


class ProcessSampler:
    """CPU seconds and peak memory of the driver and all Ray processes, sampled every 0.2 s in a
    thread (a worker's heap, RssAnon, only there). A process's last seen CPU time is kept after
    it exits, so at most 0.2 s is lost."""

    def __init__(self) -> None:
        self.cpu_by_pid: dict[tuple[int, float], float] = {}
        self.driver_peak = self.worker_peak = self.worker_heap_peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, heap: bool = False) -> None:
        me = os.getpid()
        for process in ray_processes():
            try:
                with process.oneshot():
                    times, started, rss = process.cpu_times(), process.create_time(), process.memory_info().rss
                heap_bytes = anonymous_rss(process.pid) if heap and process.pid != me else 0
            except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                continue
            with self._lock:
                self.cpu_by_pid[(process.pid, started)] = times.user + times.system
                if process.pid == me:
                    self.driver_peak = max(self.driver_peak, rss)
                else:
                    self.worker_peak = max(self.worker_peak, rss)
                    self.worker_heap_peak = max(self.worker_heap_peak, heap_bytes)

    def cpu_seconds(self) -> float:
        self.sample()
        with self._lock:
            return sum(self.cpu_by_pid.values())

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample(heap=True)

    def __enter__(self) -> "ProcessSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class MeasuredDedup(Dedup):
    """The stage itself, with CPU seconds of all Ray processes recorded per phase."""

    def __init__(self, params, context, sampler: ProcessSampler) -> None:
        super().__init__(params, context)
        self.sampler = sampler
        self.phase_cpu: dict[str, float] = {}

    @contextmanager
    def phase(self, name):
        started = self.sampler.cpu_seconds()
        with super().phase(name):
            yield
        self.phase_cpu[name] = self.sampler.cpu_seconds() - started


def run_stage(texts: list[str], cpus: int) -> dict:
    """The dedup stage on an embedded Ray: removed document -> kept document, and the measurements.

    The stage runs twice on the corpus and the second run is measured: the first starts the Ray
    workers, loads their imports and grows their heaps (as the stages before dedup do in part
    in a job); its wall time is reported apart."""
    import ray

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    warm_up = stage_once(texts, ProcessSampler())["wall"]
    with ProcessSampler() as sampler:
        result = stage_once(texts, sampler)
    ray.shutdown()
    return {
        **result, "warm_up_wall": warm_up, "driver_peak_mb": sampler.driver_peak / 2**20,
        "worker_peak_mb": sampler.worker_peak / 2**20, "worker_heap_mb": sampler.worker_heap_peak / 2**20,
    }  # fmt: skip


def stage_once(texts: list[str], sampler: ProcessSampler) -> dict:
    import ray.data

    ids = [f"doc-{i:07d}" for i in range(len(texts))]
    table = pa.table({contracts.ID: ids, contracts.TEXT: texts})
    dataset = ray.data.from_arrow(table).repartition(BLOCKS).materialize()
    removed: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as run_dir:
        context = StageContext(run_dir=Path(run_dir), stage_name="dedup", input_schema=table.schema)
        stage = MeasuredDedup(DedupParams(), context, sampler)
        cpu, wall = sampler.cpu_seconds(), time.perf_counter()
        output = stage.run(dataset)
        for batch in output.iter_batches(batch_format="pyarrow", batch_size=None):
            rejected = batch.filter(batch[contracts.REJECT_REASON].is_valid())
            for row_id, detail in zip(rejected[contracts.ID].to_pylist(), rejected[contracts.REJECT_DETAIL].to_pylist()):
                removed[int(row_id[4:])] = int(KEPT_ID.search(detail).group(1))
        wall, cpu = time.perf_counter() - wall, sampler.cpu_seconds() - cpu
    return {"removed": removed, "wall": wall, "cpu": cpu, "phase_wall": stage.extras["phase_wall_s"], "extras": stage.extras}


KEPT_ID = re.compile(r'"kept_id": "doc-(\d+)"')


def run_core(texts: list[str], shingles: ShingleSpec) -> tuple[dict[int, int], float]:
    """synthmix.quality.lsh.find_near_duplicates in this process: (removed -> kept, CPU seconds)."""
    cpu = time.process_time()
    result = find_near_duplicates(texts, [f"doc-{i:07d}" for i in range(len(texts))], np.zeros(len(texts)), MinHashConfig(shingles=shingles))
    cpu = time.process_time() - cpu
    removed = np.flatnonzero(result.is_duplicate())
    return dict(zip(removed.tolist(), result.selection.kept[removed].tolist())), cpu


def run_datasketch(texts: list[str], config: MinHashConfig) -> tuple[dict[int, int], float]:
    """The usual datasketch pipeline in this process, on config.shingles made the plain-Python way
    (near_duplicate_fixture.reference_shingles: the same normalisation, units and n-grams):
    (removed -> kept, CPU seconds)."""
    cpu = time.process_time()
    shingle_sets = [[shingle.encode() for shingle in shingles] for shingles in reference_shingles(texts, config.shingles)]
    sketches = MinHash.bulk(shingle_sets, num_perm=config.num_perm, seed=config.seed)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    clusters = connect_components(similar_lsh_pairs(lsh, sketches, config.threshold), len(texts))
    cpu = time.process_time() - cpu
    removed = np.flatnonzero(clusters != np.arange(len(texts)))
    return dict(zip(removed.tolist(), clusters[removed].tolist())), cpu


def cached_build(name: str, modules: tuple, parameters: str, build: Callable[[], T]) -> T:
    """build(), kept under ~/.cache/synthmix (corpora take minutes to build); the key includes the
    source bytes of the modules that build it, so a changed fixture builds anew."""
    sources = b"".join(Path(module.__file__).read_bytes() for module in modules)
    key = hashlib.sha256(sources + parameters.encode()).hexdigest()[:16]
    path = Path.home() / ".cache" / "synthmix" / f"{name}-{key}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    built = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_bytes(pickle.dumps(built))
    path.with_suffix(".tmp").rename(path)
    return built


def cached_corpus(docs: int, seed: int, chinese_share: float):
    """build_bilingual_corpus, cached (cached_build)."""
    build = lambda: build_bilingual_corpus(docs, seed=seed, chinese_share=chinese_share)  # noqa: E731
    return cached_build("bench-dedup-corpus", (near_duplicate_fixture,), f"{docs}:{seed}:{chinese_share}", build)


def quality_row(name: str, corpus, removed: dict[int, int]) -> str:
    scores = score_removals(corpus, removed)
    return (f"{name:44} {scores['recall_en']:>10.4f} {scores['recall_zh']:>10.4f} {scores['precision']:>10.4f} "
            f"{scores['removed']:>9}")  # fmt: skip


def corpus_parser(description: str, *, docs: int, chinese_share: float) -> argparse.ArgumentParser:
    """The arguments of a dedup benchmark: corpus size, Chinese share, seed, and Ray's CPUs."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=docs)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray")
    parser.add_argument("--chinese-share", type=float, default=chinese_share)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    parser = corpus_parser(__doc__, docs=50_000, chinese_share=0.15)
    parser.add_argument("--stage-only", action="store_true", help="skip datasketch and the one-process runs")
    args = parser.parse_args()
    started = time.perf_counter()
    corpus = cached_corpus(args.docs, args.seed, args.chinese_share)
    texts = corpus.texts
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    config = MinHashConfig()
    print(f"corpus: {len(texts)} documents ({args.chinese_share:.0%} Chinese), {megabytes:.1f} MB, built in "
          f"{time.perf_counter() - started:.0f} s; planted pairs >= 0.8: "
          f"{int(((corpus.jaccard >= 0.8) & (corpus.pair_language() == 'en')).sum())} English, "
          f"{int(((corpus.jaccard >= 0.8) & (corpus.pair_language() == 'zh')).sum())} Chinese; bands x rows "
          f"{config.band_split()}, {config.num_perm} permutations; load average now {psutil.getloadavg()[0]:.1f} "
          f"on {psutil.cpu_count()} cores")  # fmt: skip

    stage = run_stage(texts, args.cpus)
    if args.stage_only:
        print(quality_row("synthmix dedup stage (defaults: auto shingles)", corpus, stage["removed"]))
        print(
            f"stage: wall {stage['wall']:.2f} s x {args.cpus} CPUs, {megabytes / stage['wall'] / args.cpus:.2f} MB/s per core; "
            f"CPU {stage['cpu']:.2f} s; phases " + ", ".join(f"{k} {v:.2f}" for k, v in stage["phase_wall"].items())
        )
        return
    core_removed, core_cpu = run_core(texts, config.shingles)
    units_removed, _ = run_core(texts, ShingleSpec(kind="units"))
    word_removed, _ = run_core(texts, ShingleSpec(kind="word"))
    char_removed, _ = run_core(texts, ShingleSpec(kind="char"))
    # datasketch on word units (one shingle a word, the cheapest for it): characters would cost it
    # about five times as many shingles, each hashed in Python.
    theirs_removed, theirs_cpu = run_datasketch(texts, MinHashConfig(shingles=ShingleSpec(kind="units")))

    print(f"\n{'quality at threshold 0.8':44} {'recall en':>10} {'recall zh':>10} {'precision':>10} {'removed':>9}")
    print(quality_row("synthmix dedup stage (defaults: auto shingles)", corpus, stage["removed"]))
    print(quality_row("synthmix core, one process (auto)", corpus, core_removed))
    print(quality_row("synthmix core, shingles.kind: units", corpus, units_removed))
    print(quality_row("synthmix core, shingles.kind: word", corpus, word_removed))
    print(quality_row("synthmix core, shingles.kind: char", corpus, char_removed))
    print(quality_row("datasketch MinHashLSH (units, its own bands)", corpus, theirs_removed))

    core_seconds = stage["wall"] * args.cpus
    print(f"\n{'speed, per core, end to end':44} {'core-seconds':>13} {'MB/s':>8} {'docs/s':>9} | vs datasketch")
    for name, seconds in (
        ("datasketch bulk + MinHashLSH, one process", theirs_cpu),
        ("synthmix quality/ core, one process", core_cpu),
        (f"synthmix dedup stage on Ray, wall x {args.cpus} CPUs", core_seconds),
        ("  same, CPU seconds of all Ray processes", stage["cpu"]),
    ):
        print(f"{name:44} {seconds:>13.2f} {megabytes / seconds:>8.2f} {len(texts) / seconds:>9.0f} | "
              f"{theirs_cpu / seconds:5.2f}x")  # fmt: skip
    print(
        f"\nstage wall {stage['wall']:.2f} s, second run (the first, starting the Ray workers, took "
        f"{stage['warm_up_wall']:.2f} s): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in stage["phase_wall"].items())
    )
    extras = stage["extras"]
    print(
        f"pairs: {extras['candidate_pairs']} candidates, {extras['likely_pairs']} past the estimate, "
        f"{extras['similar_pairs']} truly >= 0.8; {extras['partitions']} groups"
    )
    print(
        f"peak memory: driver RSS {stage['driver_peak_mb']:.0f} MiB (holds the corpus as str, ~{2 * megabytes:.0f} MB); "
        f"largest Ray worker RSS {stage['worker_peak_mb']:.0f} MiB (with the object-store pages it maps), heap "
        f"{stage['worker_heap_mb']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
