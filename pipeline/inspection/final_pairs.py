"""A run's final pairs as a Hugging Face dataset folder: Parquet per domain and a dataset card.

The final pairs are the rows of the job's last stage before `tokenize`/`mix` (the stage
`generation_cost.final_stage` names), less any probe or judged-response row still among them:
those are measuring instruments, not training pairs (a `probe_exit` stage normally sets them
aside first). The folder reads with `datasets.load_dataset(OUT)`:

    OUT/README.md                       the card; its YAML `configs:` declares the configs below
    OUT/data/<domain>/train-<n>.parquet one config per domain, split `train`, rows sorted by id
    config `all` (the default)          every domain's files together

Only the columns in `EXPORTED_COLUMNS` go out, those the run has; the card documents them.
Like `export_stage`, the folder appears only when complete (built under a temporary name beside
it, then renamed), and an existing path is never overwritten. DuckDB streams the part files, so
memory stays bounded on large runs; a domain's rows are split into files of about
`FILE_BYTES`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from synthmix.pipeline import contracts
from synthmix.pipeline.inspection.dataset_card import write_dataset_card
from synthmix.pipeline.inspection.generation_cost import final_stage
from synthmix.pipeline.inspection.parquet_query import connection_config, quote_literal, short_error
from synthmix.pipeline.inspection.run_contents import RunInspectionError, job_stage_kinds
from synthmix.pipeline.store import StageDir

DATA_DIR = "data"
SPLIT = "train"
ALL_CONFIG = "all"
UNLABELLED_DOMAIN = "unlabelled"
FILE_BYTES = "256MB"

# What a user of the pairs needs, in this order: identity and lineage, the pair, its labels, and
# how the recipe judged it. Internal columns (samples, passages, sandbox tests, `__` columns)
# stay in the run. Descriptions go into the card's column table.
EXPORTED_COLUMNS: dict[str, str] = {
    contracts.ID: "stable content hash of the pair; the same inputs and config give the same id",
    contracts.INSTRUCTION: "the instruction (prompt) the answer answers",
    contracts.ANSWER: "the answer (response) kept by the recipe",
    contracts.DOMAIN: "domain label (code, math, science, ...); each domain is a config",
    contracts.LANG: "ISO 639-1 language of the pair, as the quality stage identified it",
    contracts.TASK_TYPE: "the kind of task the instruction generator was asked for",
    contracts.OBJECTIVE: "true when the task has one checkable answer (self-consistency applies)",
    contracts.EVOLUTION_OP: "the evolution that rewrote the instruction ('' for an original)",
    contracts.EVOLUTION_DEPTH: "evolution rounds behind the instruction (0 for an original)",
    contracts.ANSWER_MODEL: "the job's name for the model that wrote the answer (the card maps it to weights)",
    contracts.CRITIQUE_SCORE: "the critique stage's aggregate score (scale set by the job's critique signals)",
    contracts.CRITIQUE: "JSON: the critique's per-signal scores, model and templates",
    contracts.VOTES: "JSON: the self-consistency vote over the sampled answers (objective tasks)",
    contracts.QUALITY_SCORE: "fastText quality classifier P(high), where the job ran one",
    contracts.LANG_PROB: "fastText language-id probability of `lang`",
    contracts.SOURCE: "the seed source (pydoc_topics, stdlib, a file name, ...): the mix's key",
    contracts.SEED_ID: "the seed chunk the pair descends from (a row of the run's seeds stage)",
    contracts.PARENT_ID: "the row this pair was made from, one stage up",
    contracts.SOURCE_ID: "the seed record's own id, as the user gave it",
    contracts.ORIGIN: "JSON: where the seed record came from (file and line, or built-in source)",
    contracts.META: "JSON: each generation step's model, template id and sampling",
}


def export_final_pairs(run_dir: Path, out: Path, seed_licences: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the run's final pairs and card to the new folder `out`; returns what was written."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists():
        raise RunInspectionError(f"{out} already exists; pass a new path or delete it first")
    end = _finished_final_stage(run_dir)
    files = StageDir(run_dir, end).part_files()
    if not files:
        raise RunInspectionError(f"stage '{end}', the run's last before its shards, kept no rows; there are no pairs to export")
    connection = duckdb.connect(config=connection_config())
    work: Path | None = None
    try:
        rows = _FinalRows(connection, files)
        if not rows.by_domain:
            raise RunInspectionError(f"stage '{end}' kept only probe rows ({rows.probes}); there are no training pairs to export")
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        configs = {domain: rows.write_domain(domain, work / DATA_DIR / config_name(domain)) for domain in rows.by_domain}
        summary = {
            "run_dir": str(run_dir),
            "stage": end,
            "path": str(out),
            "rows": sum(rows.by_domain.values()),
            "rows_by_domain": rows.by_domain,
            "rows_by_source": rows.count_by(contracts.SOURCE),
            "languages": sorted(language for language in rows.count_by(contracts.LANG) if language),
            "probes_left_out": rows.probes,
            "columns": {name: EXPORTED_COLUMNS[name] for name in rows.columns},
            "configs": {ALL_CONFIG: f"{DATA_DIR}/*/*.parquet", **{config_name(domain): path for domain, path in configs.items()}},
        }
        write_dataset_card(run_dir, summary, work / "README.md", seed_licences or {})
        os.replace(work, out)
        work = None
    except (OSError, duckdb.Error) as error:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else short_error(error)
        raise RunInspectionError(f"cannot write {out} ({cause}); pass a writable path (a run may be read-only)") from None
    finally:
        connection.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return summary


def config_name(domain: str) -> str:
    """A domain as a config name and folder: letters, digits, '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", domain).strip("_") or UNLABELLED_DOMAIN


def _finished_final_stage(run_dir: Path) -> str:
    stages = job_stage_kinds(run_dir)
    if not stages:
        raise RunInspectionError(f"{run_dir} has no job.yaml; pass the directory of a `synthmix run` (it records its job there)")
    end = final_stage(stages)
    if end is None:
        raise RunInspectionError(f"the job of {run_dir} has only shard stages (tokenize/mix); export a stage instead: synthmix export RUN STAGE")
    if StageDir(run_dir, end).manifest() is None:
        raise RunInspectionError(
            f"stage '{end}', the run's last before its shards, has not finished, so the run has no final pairs yet; "
            f"finish the run (synthmix run JOB) or export one stage (synthmix export {run_dir} STAGE)"
        )
    return end


class _FinalRows:
    """The final stage's rows as one DuckDB view, probes left out, with the exported columns."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
        self.connection = connection
        sources = ", ".join(quote_literal(str(path)) for path in files)
        connection.execute(f"CREATE TEMP VIEW stage_rows AS SELECT * FROM read_parquet([{sources}], union_by_name = true)")
        present = {row[0] for row in connection.execute("DESCRIBE stage_rows").fetchall()}
        self.columns = [name for name in EXPORTED_COLUMNS if name in present]
        not_probe = f"{contracts.PROBE} IS NULL" if contracts.PROBE in present else "true"
        domain = f"coalesce(nullif({contracts.DOMAIN}, ''), '{UNLABELLED_DOMAIN}')" if contracts.DOMAIN in present else f"'{UNLABELLED_DOMAIN}'"
        self.probes = connection.execute(f"SELECT count(*) FROM stage_rows WHERE NOT ({not_probe})").fetchone()[0]
        connection.execute(f"CREATE TEMP VIEW pairs AS SELECT {domain} AS __config_domain, * FROM stage_rows WHERE {not_probe}")
        self.by_domain = dict(connection.execute("SELECT __config_domain, count(*) FROM pairs GROUP BY 1 ORDER BY 1").fetchall())

    def count_by(self, column: str) -> dict[str, int]:
        if column not in self.columns:
            return {}
        return dict(self.connection.execute(f"SELECT coalesce({column}, ''), count(*) FROM pairs GROUP BY 1 ORDER BY 1").fetchall())

    def write_domain(self, domain: str, folder: Path) -> str:
        """The domain's pairs, sorted by id, as `train-<n>.parquet` files in `folder`; returns their glob relative to the dataset."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        selected = ", ".join(self.columns)
        order = f" ORDER BY {contracts.ID}" if contracts.ID in self.columns else ""
        self.connection.execute(
            f"COPY (SELECT {selected} FROM pairs WHERE __config_domain = ?{order}) TO {quote_literal(str(folder))} "
            f"(FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '{FILE_BYTES}', FILENAME_PATTERN '{SPLIT}-{{i}}')",
            [domain],
        )
        return f"{DATA_DIR}/{folder.name}/{SPLIT}-*.parquet"
