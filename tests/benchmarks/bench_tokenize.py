"""Tokenize-stage path against the bare tokenizer, tokens/s per core, on real text.

The stage path is what the `tokenize` stage runs per batch: `render_table` (plain template,
answer-only loss mask, document ids) then `ShardWriter.write` (zstd Parquet, row groups,
rolling shards, sha256 at commit). The baseline is the tokenizer's own batch encode
(`tiktoken.Encoding.encode_ordinary_batch` on the same ranks and pattern, built here without
our wrapper, or a plain `encode_ordinary` loop where that is faster) of the same samples as one text each
(instruction, blank line, answer): the floor any tokenize stage pays. Target ratio >= 0.8.

Run: `.venv/bin/python -m tests.benchmarks.bench_tokenize [--megabytes N]`. One process, one
thread: tokens/s here is tokens/s per core.
"""

import argparse
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from pydoc_data.topics import topics

import pyarrow as pa
import tiktoken

from synthmix.pipeline.tokens.rendering import RenderConfig, render_table
from synthmix.pipeline.tokens.shards import ShardWriter
from synthmix.pipeline.tokens.tokenizers import (
    CL100K_PATTERN,
    HUNYUAN_PATTERN,
    Tokenizer,
    TokenizerSpec,
    load_tokenizer,
    parse_tiktoken_ranks,
    read_cl100k_ranks_file,
    shipped_hunyuan_file,
)

BATCH_ROWS = 1024


def real_samples(megabytes: float) -> pa.Table:
    """Instruction/answer rows from pydoc topics (prose) and standard-library sources (code)."""
    prose = [p for topic in topics.values() for p in topic.split("\n\n") if p.strip()]
    code = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        code += [chunk for chunk in path.read_text(encoding="utf-8", errors="replace").split("\n\n\n") if chunk.strip()]
    pieces = [piece for pair in zip(prose, code) for piece in pair]
    rows: dict[str, list[str]] = {k: [] for k in ("id", "seed_id", "source", "domain", "instruction", "answer")}
    size, i = 0, 0
    while size < megabytes * 1e6:
        answer = pieces[i % len(pieces)]
        instruction = f"Explain the following, point by point ({i}): {pieces[(i * 7 + 3) % len(pieces)][:200]}"
        rows["id"].append(f"row-{i}")
        rows["seed_id"].append(f"seed-{i // 4}")
        rows["source"].append("stdlib" if i % 2 else "pydoc")
        rows["domain"].append("code" if i % 2 else "general")
        rows["instruction"].append(instruction)
        rows["answer"].append(answer)
        size += len(instruction.encode()) + len(answer.encode())
        i += 1
    return pa.table(rows)


def bare_encoding(name: str) -> tiktoken.Encoding:
    """The plain tiktoken encoding of the same ranks and pattern, without our wrapper (or NFC)."""
    if name == "hunyuan":
        data, pattern = shipped_hunyuan_file().read_bytes(), HUNYUAN_PATTERN
    else:
        data, pattern = read_cl100k_ranks_file(), CL100K_PATTERN
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=parse_tiktoken_ranks(data, source=name), special_tokens={})


def encode_bare(encoding: tiktoken.Encoding, samples: pa.Table, *, batch: bool) -> int:
    texts = [f"{q}\n\n{a}" for q, a in zip(samples["instruction"].to_pylist(), samples["answer"].to_pylist())]
    if batch:
        return sum(len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=1))
    return sum(len(encoding.encode_ordinary(text)) for text in texts)


def write_shards(tokenizer: Tokenizer, samples: pa.Table, directory: Path) -> int:
    config = RenderConfig(template="plain", loss_mask=True)
    with ShardWriter(directory, prefix="bench", tokenizer=tokenizer.describe(), shard_tokens=16_000_000) as writer:
        for start in range(0, samples.num_rows, BATCH_ROWS):
            writer.write(render_table(samples.slice(start, BATCH_ROWS), tokenizer, config))
    return sum(info.tokens for info in writer.close())


def best_seconds(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        best = min(best, time.perf_counter() - start)
    return best, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=8.0, help="text per run (default 8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples = real_samples(args.megabytes)
    megabytes = sum(len(t.encode()) for c in ("instruction", "answer") for t in samples[c].to_pylist()) / 1e6
    specs = {"cl100k_base": TokenizerSpec(kind="tiktoken", name="cl100k_base"), "hunyuan": TokenizerSpec(kind="hunyuan")}
    print(f"{samples.num_rows} samples, {megabytes:.1f} MB of text, best of {args.repeats}, 1 thread\n")
    print(f"{'tokenizer':<12} {'bare tok/s':>12} {'stage tok/s':>12} {'stage MB/s':>11} {'ratio':>6}")
    for name, spec in specs.items():
        tokenizer, encoding = load_tokenizer(spec), bare_encoding(name)
        # The faster of tiktoken's batch call and a plain loop over encode_ordinary is the baseline.
        bare_seconds, bare_tokens = min(
            best_seconds(lambda encoding=encoding: encode_bare(encoding, samples, batch=True), args.repeats),
            best_seconds(lambda encoding=encoding: encode_bare(encoding, samples, batch=False), args.repeats),
        )
        with tempfile.TemporaryDirectory() as scratch:
            runs = iter(range(args.repeats))
            stage_seconds, stage_tokens = best_seconds(
                lambda tokenizer=tokenizer, runs=runs, scratch=scratch: write_shards(tokenizer, samples, Path(scratch) / str(next(runs))), args.repeats
            )
        # Tokens differ slightly: the stage adds two document ids per row and encodes the
        # prompt and answer apart; rates compare tokens each path actually produced.
        bare_rate, stage_rate = bare_tokens / bare_seconds, stage_tokens / stage_seconds
        print(f"{name:<12} {bare_rate:>12,.0f} {stage_rate:>12,.0f} {megabytes / stage_seconds:>11.2f} {stage_rate / bare_rate:>6.2f}")


if __name__ == "__main__":
    main()
