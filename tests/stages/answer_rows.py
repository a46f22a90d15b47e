"""A stand-in for the `answer` stage in filtering tests: emits rows of the answer contract from Parquet.

Rows carry exactly what the filtering stages read (`synthmix.pipeline.contracts.ANSWER_FIELDS`: lineage,
source, domain, lang, instruction, answer, samples, objective, meta, record identity), so the
filtering stages are tested on that contract without an engine start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.config import parse_job
from synthmix.pipeline.contracts import ANSWER_FIELDS
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.stage import Stage, StageParams
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES


class ParquetRowsParams(StageParams):
    path: str


class ParquetRows(Stage):
    """A source stage for tests: the rows of the Parquet file at `path`, as they are."""

    is_base = True
    is_source = True
    carries_input = False
    params = ParquetRowsParams

    def read_input(self):
        import ray.data

        return ray.data.read_parquet(str(self.context.job_dir / self.params.path))

    def transform(self, batch: pa.Table) -> pa.Table:
        return batch


class AnswerRows(ParquetRows):
    name = "answer"
    output_fields = ANSWER_FIELDS


def answer_row(row_id: str, instruction: str, answer: str, *, samples: list[str] | None = None, objective: bool = False, lang: str = "en") -> dict:
    """One row of the answer contract; `samples` defaults to the answer alone."""
    return {
        contracts.ID: row_id,
        contracts.SEED_ID: f"seed-{row_id}",
        contracts.PARENT_ID: f"instruction-{row_id}",
        contracts.SOURCE: "test",
        contracts.DOMAIN: "general",
        contracts.LANG: lang,
        contracts.INSTRUCTION: instruction,
        contracts.ANSWER: answer,
        contracts.SAMPLES: samples if samples is not None else [answer],
        contracts.OBJECTIVE: objective,
        contracts.META: json.dumps({"steps": [{"template_id": "answer/general"}]}),
    }


def write_answer_rows(path: Path, rows: list[dict], fields: tuple[pa.Field, ...] = ANSWER_FIELDS) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)


REGISTRY = {**STAGES, "answer": AnswerRows}


@dataclass
class StageRun:
    manifest: dict
    accepted: dict[str, dict]  # by id
    rejected: dict[str, dict]


def run_after_answers(
    root: Path, rows: list[dict], stage: str, section: dict, *, name: str = "run", source: type[ParquetRows] = AnswerRows, job: dict | None = None
) -> StageRun:
    """Run `answer` (these rows, through `source`) then `stage` for real through the runner; read
    back its outputs. `job` adds sections to the job (e.g. `models`)."""
    write_answer_rows(root / f"{name}.parquet", rows, source.output_fields)
    parsed = parse_job(
        {"name": name, "run_dir": str(root / name), "stages": ["answer", stage], "answer": {"path": f"{name}.parquet"}, stage: section, **(job or {})},
        source="t.yaml",
    )
    run_job(parsed, {**REGISTRY, "answer": source}, job_dir=root, log=lambda line: None)
    stage_dir = StageDir(root / name, stage)
    return StageRun(
        manifest=stage_dir.manifest(),
        accepted={row["id"]: row for f in stage_dir.part_files() for row in pq.read_table(f).to_pylist()},
        rejected={row["id"]: row for f in stage_dir.reject_files() for row in pq.read_table(f).to_pylist()},
    )
