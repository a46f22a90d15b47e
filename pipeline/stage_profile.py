"""One stage's output described: schema, counts, value distributions, seeded samples, rejects.

Works on any stage and any columns. Each column gets a role from its name and type:
lineage ids (distinct count), categories (top values: domain, lang, source, ... and any short
string with few distinct values), text (length distribution), numbers (value distribution),
lists (length distribution). Three passes over the data at most (stats, histograms, samples),
each reading only the columns it needs; DuckDB streams row groups, so memory stays bounded
whatever the stage's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from pipeline import columns
from pipeline.parquet_query import apply_where, connect, quote_identifier, quote_literal, read_files, run_query
from pipeline.run_contents import RunInspectionError, data_files, stage_manifest

LINEAGE_COLUMNS = (columns.ID, columns.SEED_ID, columns.PARENT_ID)
CATEGORY_COLUMNS = (
    columns.SOURCE,
    columns.DOMAIN,
    columns.LANG,
    columns.KIND,
    columns.LLM_MODEL,
    columns.REJECT_REASON,
    columns.SYNTHETIC,
)
# Content columns stay text even when a small stage has few distinct values in them.
TEXT_COLUMNS = (columns.TEXT, columns.INSTRUCTION, columns.ANSWER, columns.GENERATED_TEXT)
# Free-form JSON or error text: a length histogram of them says nothing.
DETAIL_COLUMNS = (columns.META, columns.REJECT_DETAIL, columns.LLM_ERROR)
NUMERIC_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE"}
)
# A short string column with few distinct values is a category even when we do not know its name.
CATEGORY_MAX_DISTINCT = 30
CATEGORY_MAX_LENGTH = 64
TOP_VALUES = 15
HISTOGRAM_BINS = 20
EXACT_BINS_MAX_RANGE = 30  # integers spanning at most this many values get one bin per value
QUANTILES = (0.5, 0.9, 0.99)


def profile_stage(
    run_dir: Path,
    stage: str,
    *,
    where: str | None = None,
    sample: int = 5,
    seed: int = 0,
    only_columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Schema, counts and distributions of a stage's accepted rows (filtered by `where`), and `sample` rows.

    `only_columns` limits the distributions to those columns (samples still show whole rows).
    Samples are the rows with the smallest hash of (id, seed): the same seed gives the same rows,
    independent of how rows are split into part files.
    """
    files = data_files(run_dir, stage)
    manifest = stage_manifest(run_dir, stage)
    result: dict[str, Any] = {
        "stage": stage,
        "files": len(files),
        "where": where,
        "manifest": _manifest_counts(manifest),
        "rows": 0,
        "columns": [],
        "samples": [],
    }
    if not files:
        return result
    connection = connect(run_dir)
    relation = apply_where(read_files(connection, files), where, stage)
    result["columns"] = _profile_columns(_select_columns(relation, only_columns, stage), stage, where)
    result["rows"] = result["columns"][0]["rows"] if result["columns"] else 0
    for column in result["columns"]:
        del column["rows"]
    result["samples"] = sample_rows(relation, stage, where, sample, seed)
    return result


def profile_rejects(
    run_dir: Path, stage: str, *, reason: str | None = None, where: str | None = None, sample: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Rejected rows of a stage: counts per reason, and `sample` rows (of one `reason` if given)."""
    files = data_files(run_dir, stage, rejects=True)
    result: dict[str, Any] = {"stage": stage, "files": len(files), "reason": reason, "where": where, "by_reason": {}, "rows": 0, "matched": 0, "samples": []}
    if not files:
        if reason:
            raise RunInspectionError(f"stage '{stage}' rejected no rows, so none has reason '{reason}'")
        return result
    connection = connect(run_dir)
    relation = read_files(connection, files)
    reason_column = quote_identifier(columns.REJECT_REASON)
    counts = run_query(
        relation.aggregate(f"{reason_column} AS reason, count(*) AS n", reason_column).order("n DESC, reason"), stage, None
    )
    result["by_reason"] = {str(row[0]): row[1] for row in counts}
    result["rows"] = sum(result["by_reason"].values())
    if reason:
        if reason not in result["by_reason"]:
            raise RunInspectionError(
                f"stage '{stage}' has no rejects with reason '{reason}'; its reasons: {', '.join(result['by_reason'])}"
            )
        relation = relation.filter(f"{reason_column} = {quote_literal(reason)}")
    relation = apply_where(relation, where, stage)
    result["matched"] = run_query(relation.aggregate("count(*)"), stage, where)[0][0]
    result["samples"] = sample_rows(relation, stage, where, sample, seed)
    return result


def sample_rows(relation: duckdb.DuckDBPyRelation, stage: str, where: str | None, count: int, seed: int) -> list[dict]:
    """`count` whole rows chosen by hash of (id, seed); ids are picked first so only they are sorted."""
    if count <= 0:
        return []
    if columns.ID not in relation.columns:
        raise RunInspectionError(f"stage '{stage}' has no '{columns.ID}' column, so rows cannot be sampled by id")
    id_column = quote_identifier(columns.ID)
    order = f"hash({id_column}, {int(seed)}::BIGINT), {id_column}"
    picked = [row[0] for row in run_query(relation.project(id_column).order(order).limit(count), stage, where)]
    if not picked:
        return []
    chosen = relation.filter(f"{id_column} IN ({', '.join(quote_literal(value) for value in picked)})").order(order).limit(count)
    try:
        return chosen.to_arrow_table().to_pylist()
    except duckdb.Error as error:
        raise RunInspectionError(f"reading samples of stage '{stage}' failed: {error}") from None


def _select_columns(relation: duckdb.DuckDBPyRelation, names: Sequence[str] | None, stage: str) -> duckdb.DuckDBPyRelation:
    if not names:
        return relation
    unknown = [name for name in names if name not in relation.columns]
    if unknown:
        raise RunInspectionError(
            f"stage '{stage}' has no column(s) {', '.join(unknown)}; its columns: {', '.join(relation.columns)}"
        )
    return relation.project(", ".join(quote_identifier(name) for name in names))


def _manifest_counts(manifest: dict | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    keys = ("rows_in", "rows_out", "rows_rejected", "rejected", "llm", "wall_s")
    return {key: manifest.get(key) for key in keys}


def _role(name: str, type_name: str) -> str:
    if name in LINEAGE_COLUMNS:
        return "lineage"
    if name in DETAIL_COLUMNS:
        return "detail"
    if name in CATEGORY_COLUMNS or type_name == "BOOLEAN":
        return "category"
    if type_name in NUMERIC_TYPES or type_name.startswith("DECIMAL"):
        return "numeric"
    if type_name.endswith("[]"):
        return "list"
    if type_name == "VARCHAR":
        return "text"
    return "other"


def _measure(name: str, role: str) -> str | None:
    """The SQL of the value whose distribution a column shows: its length for text and lists."""
    column = quote_identifier(name)
    return {"numeric": column, "text": f"length({column})", "list": f"len({column})"}.get(role)


def _profile_columns(relation: duckdb.DuckDBPyRelation, stage: str, where: str | None) -> list[dict[str, Any]]:
    described = [
        {"name": name, "type": str(type_), "role": _role(name, str(type_))} for name, type_ in zip(relation.columns, relation.types)
    ]
    _add_stats(relation, described, stage, where)
    for column in described:
        # Short strings with few distinct values (a template id, a model name) are categories.
        distinct = column.get("distinct_approx", CATEGORY_MAX_DISTINCT + 1)
        if (
            column["role"] == "text"
            and column["name"] not in TEXT_COLUMNS
            and distinct <= CATEGORY_MAX_DISTINCT
            and 2 * distinct <= column["rows"] - column["nulls"]  # values repeat
            and (column["stats"].get("max") or 0) <= CATEGORY_MAX_LENGTH
        ):
            column["role"] = "category"
            del column["stats"], column["distinct_approx"]
    _add_histograms(relation, described, stage, where)
    for column in described:
        if column["role"] == "category":
            _add_top_values(relation, column, stage, where)
    return described


def _add_stats(relation: duckdb.DuckDBPyRelation, described: list[dict], stage: str, where: str | None) -> None:
    expressions = ["count(*)"]
    slots: list[tuple[dict, str]] = []
    for column in described:
        quoted = quote_identifier(column["name"])
        expressions.append(f"count({quoted})")
        slots.append((column, "non_null"))
        if column["role"] in ("lineage", "text"):
            expressions.append(f"approx_count_distinct({quoted})")
            slots.append((column, "distinct"))
        measure = _measure(column["name"], column["role"])
        if measure is not None:
            quantiles = ", ".join(str(q) for q in QUANTILES)
            expressions += [f"min({measure})", f"max({measure})", f"avg({measure})", f"approx_quantile({measure}, [{quantiles}])"]
            slots += [(column, "min"), (column, "max"), (column, "mean"), (column, "quantiles")]
        if column["role"] == "numeric" and not _integer_typed(column):
            # Scores are often whole numbers stored as floats: those get one bin per value too.
            expressions.append(f"count(*) FILTER (WHERE {quoted} <> floor({quoted}))")
            slots.append((column, "fractional"))
    values = run_query(relation.aggregate(", ".join(expressions)), stage, where)[0]
    total = values[0]
    for (column, key), value in zip(slots, values[1:]):
        column["rows"] = total
        if key == "non_null":
            column["nulls"] = total - value
        elif key == "distinct":
            # HyperLogLog can overshoot slightly; never claim more distinct values than values.
            column["distinct_approx"] = min(value, total - column["nulls"])
        elif key == "fractional":
            column["whole_numbers"] = value == 0
        elif key == "quantiles":
            column["stats"].update({f"p{round(q * 100)}": _number(v) for q, v in zip(QUANTILES, value or [None] * len(QUANTILES))})
        else:
            column.setdefault("stats", {})[key] = _number(value)


def _add_histograms(relation: duckdb.DuckDBPyRelation, described: list[dict], stage: str, where: str | None) -> None:
    """All histograms in one pass: each column's values bucketed in SQL, counted by DuckDB's histogram()."""
    plans = []
    for column in described:
        stats = column.get("stats")
        measure = _measure(column["name"], column["role"])
        if measure is None or not stats or stats.get("min") is None:
            continue
        low, high = float(stats["min"]), float(stats["max"])
        integral = column["role"] != "numeric" or _integer_typed(column) or column.get("whole_numbers", False)
        if integral and high - low <= EXACT_BINS_MAX_RANGE:
            plans.append((column, f"histogram({measure})", None))
            continue
        # Long tails: bins span min..p99 and the last bin also holds everything above.
        top = float(stats.get("p99") or high)
        top = top if low < top < high else high
        width = (top - low) / HISTOGRAM_BINS or 1.0
        bucket = f"least(greatest(floor(({measure} - {low!r}) / {width!r}), 0), {HISTOGRAM_BINS - 1})::BIGINT"
        plans.append((column, f"histogram({bucket})", (low, width, top < high)))
    if not plans:
        return
    values = run_query(relation.aggregate(", ".join(expression for _, expression, _ in plans)), stage, where)[0]
    for (column, _, binning), counts in zip(plans, values):
        counts = counts or {}
        if binning is None:
            column["histogram"] = [{"lo": _number(v), "hi": _number(v), "count": n} for v, n in sorted(counts.items())]
            continue
        low, width, open_ended = binning
        column["histogram"] = [
            {
                "lo": _number(low + b * width),
                "hi": None if open_ended and b == HISTOGRAM_BINS - 1 else _number(low + (b + 1) * width),
                "count": counts.get(b, 0),
            }
            for b in range(HISTOGRAM_BINS)
        ]


def _add_top_values(relation: duckdb.DuckDBPyRelation, column: dict, stage: str, where: str | None) -> None:
    quoted = quote_identifier(column["name"])
    grouped = relation.aggregate(f"{quoted} AS value, count(*) AS n", quoted)
    counts = run_query(grouped.order("n DESC, value").limit(TOP_VALUES + 1), stage, where)
    shown = counts[:TOP_VALUES]
    column["top"] = [{"value": value, "count": n} for value, n in shown]
    column["distinct"] = run_query(grouped.aggregate("count(*)"), stage, where)[0][0]
    column["other"] = column["rows"] - column["nulls"] - sum(n for value, n in shown if value is not None)


def _integer_typed(column: dict) -> bool:
    return column["type"] not in ("FLOAT", "DOUBLE") and not column["type"].startswith("DECIMAL")


def _number(value: Any) -> Any:
    """Whole floats print as ints; others keep 3 decimals (stats are for reading, not recomputation)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 3)
    return value
