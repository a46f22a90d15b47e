"""The dedup stage on Ray against datasketch in one process, side by side, on >= 100k real-text docs.

    .venv/bin/python -m tests.benchmarks.bench_dedup_stage [--docs 100000] [--cpus 2] [--baseline-docs N]

The corpus is bench_minhash's (pydoc paragraphs and stdlib source blocks, 10% edited copies).
Ours: `Dedup.run` on an embedded Ray, phase by phase (sign = sort by id + numbering +
signatures; band = band rows + bucket shuffle; verify = two signature shuffles; cluster = pairs
streamed into union-find on the driver; keep = cluster shuffle + marking, run by consuming the
output). CPU seconds are summed over the driver and every Ray process (psutil, sampled at phase
boundaries and every 0.2 s, each process's last value kept after it exits), so per-core rates
include Ray's own overhead (scheduling, object store, shuffles). datasketch: normalised word 5-gram sets, `MinHash.bulk`, `MinHashLSH` inserts and
queries, the same verification and connected components, in this process (CPU seconds).
Peak memory is sampled every 0.2 s: the driver's RSS and the largest Ray worker's RSS.
"""

import argparse
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

from pipeline import columns
from pipeline.stage import StageContext
from stages.dedup import Dedup, DedupParams
from tests.benchmarks.bench_minhash import build_corpus, run_datasketch

BLOCKS = 16  # input blocks, as part files of an upstream stage would give


def ray_processes() -> list[psutil.Process]:
    """This process and every process it started (Ray's GCS, raylet and workers)."""
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


class ProcessSampler:
    """CPU seconds and peak RSS of the driver and all Ray processes, sampled every 0.2 s in a
    thread. A process's last seen CPU time is kept after it exits, so at most 0.2 s is lost."""

    def __init__(self) -> None:
        self.cpu_by_pid: dict[tuple[int, float], float] = {}
        self.driver_peak = self.worker_peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        me = os.getpid()
        for process in ray_processes():
            try:
                with process.oneshot():
                    times, rss, started = process.cpu_times(), process.memory_info().rss, process.create_time()
            except psutil.NoSuchProcess:
                continue
            with self._lock:
                self.cpu_by_pid[(process.pid, started)] = times.user + times.system
                if process.pid == me:
                    self.driver_peak = max(self.driver_peak, rss)
                else:
                    self.worker_peak = max(self.worker_peak, rss)

    def cpu_seconds(self) -> float:
        self.sample()
        with self._lock:
            return sum(self.cpu_by_pid.values())

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

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


def run_ours(texts: list[str], cpus: int) -> dict:
    import ray
    import ray.data

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ids = [f"doc-{i:07d}" for i in range(len(texts))]
    table = pa.table({columns.ID: ids, columns.TEXT: texts})
    dataset = ray.data.from_arrow(table).repartition(BLOCKS).materialize()
    with tempfile.TemporaryDirectory() as run_dir, ProcessSampler() as sampler:
        context = StageContext(run_dir=Path(run_dir), stage_name="dedup", input_schema=table.schema)
        stage = MeasuredDedup(DedupParams(), context, sampler)
        wall = time.perf_counter()
        output = stage.run(dataset)
        keep_cpu, keep_wall = sampler.cpu_seconds(), time.perf_counter()
        rejected = sum(
            batch.num_rows - batch[columns.REJECT_REASON].null_count
            for batch in output.iter_batches(batch_format="pyarrow", batch_size=None)
        )
        stage.phase_cpu["keep"] = sampler.cpu_seconds() - keep_cpu
        stage.extras["phase_wall_s"]["keep"] = time.perf_counter() - keep_wall
        wall = time.perf_counter() - wall
    ray.shutdown()
    return {
        "cpu": stage.phase_cpu, "wall": stage.extras["phase_wall_s"], "total_wall": wall, "rejected": rejected,
        "extras": stage.extras, "driver_peak_mb": sampler.driver_peak / 2**20, "worker_peak_mb": sampler.worker_peak / 2**20,
    }  # fmt: skip


def rate(cpu_seconds: float, megabytes: float, docs: int) -> str:
    return f"{megabytes / cpu_seconds:8.2f} MB/s {docs / cpu_seconds:9.0f} docs/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray")
    parser.add_argument("--baseline-docs", type=int, default=None, help="datasketch on the first N docs (default all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = build_corpus(args.docs, args.seed)
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    params = DedupParams()
    print(f"corpus: {len(texts)} documents, {megabytes:.1f} MB; bands x rows {params.band_split()}, "
          f"{params.num_perm} permutations, word {params.shingles.n}-grams; Ray with {args.cpus} CPUs, "
          f"{BLOCKS} input blocks; load average now {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")

    ours = run_ours(texts, args.cpus)
    subset = texts[: args.baseline_docs or len(texts)]
    subset_mb = sum(len(text.encode()) for text in subset) / 1e6
    theirs = run_datasketch(subset, params)

    cpu, wall = ours["cpu"], ours["wall"]
    signature_theirs = theirs["shingle_cpu"] + theirs["bulk_cpu"]
    rows = [
        ("signatures (sort, number, normalise, shingle, MinHash)", cpu["sign"], signature_theirs),
        ("banding (band rows, bucket shuffle, pairs)", cpu["band"], None),
        ("clustering (verify shuffles, union-find, keep shuffle)", cpu["verify"] + cpu["cluster"] + cpu["keep"], None),
        ("banding + clustering", cpu["band"] + cpu["verify"] + cpu["cluster"] + cpu["keep"], theirs["lsh_cpu"]),
    ]
    print(f"\nper core (CPU seconds of all processes); datasketch on {len(subset)} docs ({subset_mb:.1f} MB)")
    print(f"{'phase':56} {'dedup stage on Ray':>29} | {'datasketch bulk + MinHashLSH':>29} | ratio")
    for name, our_cpu, their_cpu in rows:
        their_text = rate(their_cpu, subset_mb, len(subset)) if their_cpu is not None else ""
        ratio = f"{(megabytes / our_cpu) / (subset_mb / their_cpu):5.2f}x" if their_cpu is not None else ""
        print(f"{name:56} {rate(our_cpu, megabytes, len(texts)):>29} | {their_text:>29} | {ratio}")
    bulk_ratio = (megabytes / cpu["sign"]) / (subset_mb / theirs["bulk_cpu"])
    print(f"signatures phase vs MinHash.bulk alone (its shingling not counted): {bulk_ratio:.2f}x")
    share = rows[3][1] / cpu["sign"]
    print(f"banding + clustering take {share:.2f} of the signature phase's CPU")
    print("\nwall seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in wall.items())
          + f"; total {ours['total_wall']:.1f}")
    extras = ours["extras"]
    print(f"pairs: {extras['candidate_pairs']} candidates, {extras['verified_pairs']} verified, {extras['clusters']} clusters; "
          f"{ours['rejected']} of {len(texts)} rows rejected (datasketch on its docs: {theirs['removed']} of {len(subset)})")
    print(f"peak RSS: driver {ours['driver_peak_mb']:.0f} MiB (holds the corpus as str, ~{2 * megabytes:.0f} MB), "
          f"largest Ray process {ours['worker_peak_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
