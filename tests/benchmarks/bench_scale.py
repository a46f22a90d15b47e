"""Scale: synthetic documents through seeds -> dedup -> tokenize on the local Ray, at 100k and 1M rows.

Each size runs in its own process with its own embedded Ray (2 CPUs), so memory peaks do not
carry over. Documents are 40 words drawn from a 5,000-word vocabulary with a fixed seed, then
a unique tag; 5% repeat another document's words under their own tag (Jaccard ~0.95 on word
5-grams) so dedup finds clusters. Reported
per stage from its manifest: wall time and input rows/s; per process (sampled every 0.5 s):
the driver's peak RSS and the largest Ray worker's, RSS (which counts the object-store pages a
worker maps) and heap (RssAnon, with the task it was running). Baseline: the 100k-row run, measured in the
same invocation; the ratios show how 1M rows scales (10.0 on rows is linear).

Run: `.venv/bin/python -m tests.benchmarks.bench_scale [--sizes 100000 1000000] [--cpus 2] [--stages seeds tokenize]`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_STAGES = ("seeds", "dedup", "tokenize")
WORDS_PER_DOC = 40
VOCABULARY = 5000
NEAR_COPY_SHARE = 0.05
ROW_GROUP_ROWS = 50_000


def write_corpus(path: Path, rows: int, seed: int = 0) -> None:
    """Parquet of `text` documents; a near-copy differs from its original only in its tag."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{index}{chr(97 + index % 26)}" for index in range(VOCABULARY)])
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())]), compression="zstd") as writer:
        for start in range(0, rows, ROW_GROUP_ROWS):
            count = min(ROW_GROUP_ROWS, rows - start)
            words = rng.integers(0, VOCABULARY, size=(count, WORDS_PER_DOC))
            copies = rng.random(count) < NEAR_COPY_SHARE
            originals = rng.integers(0, count, size=count)
            words[copies] = words[originals[copies]]
            texts = [" ".join(vocabulary[row]) + f" doc{start + index}." for index, row in enumerate(words)]
            writer.write_table(pa.table({"text": texts}), row_group_size=count)


class PeakMemory:
    """Peak RSS of this process and of each of its descendants (the embedded Ray), sampled."""

    def __init__(self, interval_s: float = 0.5) -> None:
        import psutil

        self._psutil = psutil
        self.interval_s = interval_s
        self.peaks: dict[int, tuple[str, int]] = {}
        # Heap apart from RSS: a worker's RSS (and its USS) also counts the object-store pages it
        # maps (shared memory), which at 1M rows were most of it; RssAnon is its own heap.
        self.heap_peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = self._psutil.Process()
        while not self._stop.wait(self.interval_s):
            for process in [me, *me.children(recursive=True)]:
                try:
                    # Ray names a worker by what it runs (ray::IDLE, ray::MapBatches(...)).
                    name = "driver" if process.pid == me.pid else process.name()
                    rss = process.memory_info().rss
                    heap = anonymous_rss(process.pid)
                except (self._psutil.Error, OSError):
                    continue
                if rss > self.peaks.get(process.pid, ("", 0))[1]:
                    self.peaks[process.pid] = (name, rss)
                if heap > self.heap_peaks.get(process.pid, ("", 0))[1]:
                    self.heap_peaks[process.pid] = (name, heap)

    def summary(self) -> dict:
        driver = max((rss for name, rss in self.peaks.values() if name == "driver"), default=0)
        workers = [rss for name, rss in self.peaks.values() if name.startswith("ray::")]
        heap = max(((size, name) for name, size in self.heap_peaks.values() if name.startswith("ray::")), default=(0, ""))
        return {
            "driver_peak_mib": driver / 2**20, "worker_peak_mib": max(workers, default=0) / 2**20, "workers": len(workers),
            "worker_heap_peak_mib": heap[0] / 2**20, "worker_heap_peak_task": heap[1],
        }  # fmt: skip


def anonymous_rss(pid: int) -> int:
    """Bytes of a process's anonymous resident memory (its heap; Linux /proc/PID/status RssAnon)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def run_size(rows: int, cpus: int, stages: list[str]) -> dict:
    """One size, in this process: corpus, then the job on an embedded Ray; manifests' numbers."""
    import ray

    from synthmix.pipeline.config import parse_job
    from synthmix.pipeline.runner import run_job
    from synthmix.pipeline.store import StageDir
    from synthmix.stages.dedup import Dedup
    from synthmix.stages.seeds import Seeds
    from synthmix.stages.tokenize import Tokenize

    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{rows}-"))
    corpus = work / "corpus.parquet"
    write_corpus(corpus, rows)
    started = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    sections = {
        "seeds": {"path": str(corpus)},
        "dedup": {"threshold": 0.8},
        "tokenize": {"tokenizer": {"kind": "tiktoken", "name": "cl100k_base"}},
    }
    job = parse_job(
        {"name": "scale", "run_dir": str(work / "run"), "stages": stages, **{name: sections[name] for name in stages}},
        source="bench_scale",
    )
    with PeakMemory() as memory:
        started = time.perf_counter()
        run_job(job, {"seeds": Seeds, "dedup": Dedup, "tokenize": Tokenize}, log=lambda line: None)
        job_s = time.perf_counter() - started
    result = {"rows": rows, "ray_start_s": ray_start_s, "job_s": job_s, **memory.summary(), "stages": {}}
    for name in stages:
        manifest = StageDir(work / "run", name).manifest()
        result["stages"][name] = {"wall_s": manifest["wall_s"], "rows_in": manifest["rows_in"], "rejected": manifest["rejected"]}
    ray.shutdown()
    return result


def print_table(results: list[dict]) -> None:
    baseline = results[0]
    print(f"\nbaseline: the {baseline['rows']:,}-row run; ratio = this size / baseline (rows ratio {results[-1]['rows'] / baseline['rows']:.1f})")
    header = f"{'measure':<28}" + "".join(f"{r['rows']:>14,}" for r in results) + f"{'ratio':>10}"
    print(header)
    print("-" * len(header))

    def line(label: str, values: list[float], fmt: str = "{:>14.1f}") -> None:
        ratio = values[-1] / values[0] if values[0] else float("nan")
        print(f"{label:<28}" + "".join(fmt.format(v) for v in values) + f"{ratio:>10.2f}")

    line("job wall s", [r["job_s"] for r in results])
    for name in results[0]["stages"]:
        line(f"{name} wall s", [r["stages"][name]["wall_s"] for r in results])
        line(f"{name} rows/s", [r["stages"][name]["rows_in"] / r["stages"][name]["wall_s"] for r in results], "{:>14,.0f}")
    line("driver peak RSS MiB", [r["driver_peak_mib"] for r in results])
    line("largest worker RSS MiB", [r["worker_peak_mib"] for r in results])
    line("largest worker heap MiB", [r["worker_heap_peak_mib"] for r in results])
    line("ray start s (excluded)", [r["ray_start_s"] for r in results])
    for r in results:
        rejected = {name: stage["rejected"] for name, stage in r["stages"].items() if stage["rejected"]}
        print(
            f"{r['rows']:,} rows: rejected {rejected or 'none'}; {r['workers']} Ray worker processes seen; "
            f"the largest worker heap was in {r['worker_heap_peak_task'] or 'none'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), help="the job's stages, in order")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.cpus, args.stages)))
        return
    results = []
    for rows in args.sizes:
        done = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_scale", "--one", str(rows), "--cpus", str(args.cpus), "--stages", *args.stages],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"{rows:,}-row run failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{rows:,} rows: job {results[-1]['job_s']:.1f} s", flush=True)
    print_table(results)


if __name__ == "__main__":
    main()
