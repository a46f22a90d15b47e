"""One stage's output described: schema, counts, value distributions, seeded samples, rejects.

Works on any stage and any columns. Each field is shown as what it is, decided from its name,
type and values: lineage ids (distinct count), categories (top values: domain, lang, source,
... and any short string with few distinct values), text (length distribution), numbers such
as scores (value distribution), lists (length distribution). A string column whose values are
all JSON objects (`critique`, `votes`, `heuristic_scores`, `meta`, or a column of the user's
own) is not text: its leaves become fields of their own, `critique.scores.accuracy` a number,
`critique.model` a category, so a rubric's dimensions are plotted rather than the length of
the JSON that holds them. Maps inside (an object keyed by values, like `votes.counts`) and
arrays are left out.

At most five passes over the data (stats, JSON keys from a bounded sample, stats of the JSON
fields, histograms, samples), each reading only the columns it needs; DuckDB streams row
groups, so memory stays bounded whatever the stage's size. With `with_rejects`, the stage's
rejected rows are read too and every histogram and top-value count is split into kept and
rejected, which shows where a threshold cut.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from synthmix.pipeline import contracts
from synthmix.pipeline.inspection.parquet_query import (
    REJECTED_FLAG,
    apply_where,
    connect,
    quote_identifier,
    quote_literal,
    read_files,
    read_kept_and_rejected,
    run_query,
)
from synthmix.pipeline.inspection.run_contents import TOKEN_COLUMNS, RunInspectionError, data_files, stage_manifest

LINEAGE_COLUMNS = (contracts.ID, contracts.SEED_ID, contracts.PARENT_ID, contracts.SOURCE_ID)
CATEGORY_COLUMNS = (
    contracts.SOURCE,
    contracts.DOMAIN,
    contracts.LANG,
    contracts.KIND,
    contracts.LLM_MODEL,
    contracts.REJECT_REASON,
    contracts.SYNTHETIC,
)
# Content columns stay text even when a small stage has few distinct values in them.
TEXT_COLUMNS = (contracts.TEXT, contracts.INSTRUCTION, contracts.ANSWER, contracts.GENERATED_TEXT)
# Free-form error text, or where a record came from: shown in samples and traces, not plotted.
DETAIL_COLUMNS = (contracts.REJECT_DETAIL, contracts.LLM_ERROR, contracts.ORIGIN)
NUMERIC_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE"})
# A short string column with few distinct values is a category even when we do not know its name.
CATEGORY_MAX_DISTINCT = 30
CATEGORY_MAX_LENGTH = 64
TOP_VALUES = 15
HISTOGRAM_BINS = 20
EXACT_BINS_MAX_RANGE = 30  # integers spanning at most this many values get one bin per value
QUANTILES = (0.5, 0.9, 0.99)
# JSON fields are found in the first JSON_SAMPLE_ROWS values; a leaf present in fewer than
# JSON_MIN_SHARE of them is an exception, not a field. An object with more than JSON_MAX_KEYS
# distinct keys across rows is a map keyed by values (votes per answer), not a record.
JSON_SAMPLE_ROWS = 1000
JSON_MIN_SHARE = 0.2
JSON_MAX_KEYS = 20
JSON_MAX_FIELDS = 24


def profile_stage(
    run_dir: Path,
    stage: str,
    *,
    where: str | None = None,
    sample: int = 5,
    seed: int = 0,
    only_columns: Sequence[str] | None = None,
    with_rejects: bool = False,
) -> dict[str, Any]:
    """Schema, counts and distributions of a stage's accepted rows (filtered by `where`), and `sample` rows.

    `only_columns` limits the distributions to those columns (samples still show whole rows);
    without it, every column but token id lists (TOKEN_COLUMNS: `num_tokens` says their length).
    Samples are the rows with the smallest hash of (id, seed): the same seed gives the same rows,
    independent of how rows are split into part files. With `with_rejects`, distributions cover
    the rejected rows as well, each count split into `count` (kept) and `rejected`; samples stay
    kept rows.
    """
    files = data_files(run_dir, stage)
    reject_files = data_files(run_dir, stage, rejects=True) if with_rejects else []
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
    if with_rejects:
        result["rows_rejected"] = 0
    if not files and not reject_files:
        return result
    connection = connect(run_dir)
    if with_rejects:
        relation = apply_where(read_kept_and_rejected(connection, files, reject_files), where, stage)
    else:
        relation = apply_where(read_files(connection, files), where, stage)
    counts = _CountedRows(with_rejects)
    result["columns"] = _profile_columns(_select_columns(relation, only_columns, stage), stage, where, counts)
    totals = run_query(relation.aggregate(f"{counts.kept('*')}, {counts.rejected('*') if with_rejects else '0'}"), stage, where)[0]
    result["rows"] = totals[0]
    if with_rejects:
        result["rows_rejected"] = totals[1]
    if files and sample > 0:
        kept = apply_where(read_files(connection, files), where, stage) if with_rejects else relation
        result["samples"] = sample_rows(kept, stage, where, sample, seed)
    return result


def profile_rejects(run_dir: Path, stage: str, *, reason: str | None = None, where: str | None = None, sample: int = 5, seed: int = 0) -> dict[str, Any]:
    """Rejected rows of a stage: counts per reason, and `sample` rows (of one `reason` if given)."""
    files = data_files(run_dir, stage, rejects=True)
    result: dict[str, Any] = {"stage": stage, "files": len(files), "reason": reason, "where": where, "by_reason": {}, "rows": 0, "matched": 0, "samples": []}
    if not files:
        if reason:
            raise RunInspectionError(f"stage '{stage}' rejected no rows, so none has reason '{reason}'")
        return result
    connection = connect(run_dir)
    relation = read_files(connection, files)
    reason_column = quote_identifier(contracts.REJECT_REASON)
    counts = run_query(relation.aggregate(f"{reason_column} AS reason, count(*) AS n", reason_column).order("n DESC, reason"), stage, None)
    result["by_reason"] = {str(row[0]): row[1] for row in counts}
    result["rows"] = sum(result["by_reason"].values())
    if reason:
        if reason not in result["by_reason"]:
            raise RunInspectionError(f"stage '{stage}' has no rejects with reason '{reason}'; its reasons: {', '.join(result['by_reason'])}")
        relation = relation.filter(f"{reason_column} = {quote_literal(reason)}")
    relation = apply_where(relation, where, stage)
    result["matched"] = run_query(relation.aggregate("count(*)"), stage, where)[0][0]
    result["samples"] = sample_rows(relation, stage, where, sample, seed)
    return result


def sample_rows(relation: duckdb.DuckDBPyRelation, stage: str, where: str | None, count: int, seed: int) -> list[dict]:
    """`count` whole rows chosen by hash of (id, seed); ids are picked first so only they are sorted."""
    if count <= 0:
        return []
    if contracts.ID not in relation.columns:
        raise RunInspectionError(f"stage '{stage}' has no '{contracts.ID}' column, so rows cannot be sampled by id")
    id_column = quote_identifier(contracts.ID)
    order = f"hash({id_column}, {int(seed)}::BIGINT), {id_column}"
    picked = [row[0] for row in run_query(relation.project(id_column).order(order).limit(count), stage, where)]
    if not picked:
        return []
    chosen = relation.filter(f"{id_column} IN ({', '.join(quote_literal(value) for value in picked)})").order(order).limit(count)
    try:
        return chosen.to_arrow_table().to_pylist()
    except duckdb.Error as error:
        raise RunInspectionError(f"reading samples of stage '{stage}' failed: {error}") from None


class _CountedRows:
    """SQL counts of kept rows, and of rejected ones when the relation holds both."""

    def __init__(self, split: bool) -> None:
        self.split = split

    def kept(self, what: str) -> str:
        return f"count({what}) FILTER (WHERE NOT {quote_identifier(REJECTED_FLAG)})" if self.split else f"count({what})"

    def rejected(self, what: str) -> str:
        return f"count({what}) FILTER (WHERE {quote_identifier(REJECTED_FLAG)})"

    def histograms(self, measure: str) -> list[str]:
        if not self.split:
            return [f"histogram({measure})"]
        flag = quote_identifier(REJECTED_FLAG)
        return [f"histogram({measure}) FILTER (WHERE NOT {flag})", f"histogram({measure}) FILTER (WHERE {flag})"]


def _select_columns(relation: duckdb.DuckDBPyRelation, names: Sequence[str] | None, stage: str) -> duckdb.DuckDBPyRelation:
    if not names:
        names = [name for name in relation.columns if name not in TOKEN_COLUMNS and name != REJECTED_FLAG]
    unknown = [name for name in names if name not in relation.columns]
    if unknown:
        raise RunInspectionError(f"stage '{stage}' has no column(s) {', '.join(unknown)}; its columns: {', '.join(relation.columns)}")
    wanted = [*names, REJECTED_FLAG] if REJECTED_FLAG in relation.columns else names
    return relation.project(", ".join(quote_identifier(name) for name in wanted))


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


def _measure(column: dict) -> str | None:
    """The SQL of the value whose distribution a field shows: its length for text and lists."""
    value = column["sql"]
    return {"numeric": value, "text": f"length({value})", "list": f"len({value})"}.get(column["role"])


def _profile_columns(relation: duckdb.DuckDBPyRelation, stage: str, where: str | None, counts: _CountedRows) -> list[dict[str, Any]]:
    described = [
        {"name": name, "type": str(type_), "role": _role(name, str(type_)), "sql": quote_identifier(name)}
        for name, type_ in zip(relation.columns, relation.types)
        if name != REJECTED_FLAG
    ]
    _add_stats(relation, described, stage, where)
    for column in described:
        json_objects = column.pop("json_objects", None)
        if json_objects is not None and json_objects == column["rows"] - column["nulls"] > 0:
            column["role"] = "json"
            del column["stats"], column["distinct_approx"]
        elif column["role"] == "text" and column["name"] not in TEXT_COLUMNS and _looks_categorical(column):
            column["role"] = "category"
            del column["stats"], column["distinct_approx"]
    json_fields = []
    for column in [c for c in described if c["role"] == "json"]:
        fields = _json_fields(relation, column, stage, where)
        column["fields"] = [field["name"] for field in fields]
        json_fields += fields
    if json_fields:
        _add_stats(relation, json_fields, stage, where)
        for field in json_fields:
            if field["role"] == "text":
                # A string in a JSON object: a category, prose (a rationale: its length), or an
                # identifier-like value (an extracted answer) that only samples can show.
                if _looks_categorical(field):
                    field["role"] = "category"
                elif (field["stats"].get("max") or 0) <= CATEGORY_MAX_LENGTH:
                    field["role"] = "detail"
                if field["role"] != "text":
                    del field["stats"], field["distinct_approx"]
        described = _after_their_columns(described, json_fields)
    _add_histograms(relation, described, stage, where, counts)
    for column in described:
        if column["role"] == "category":
            _add_top_values(relation, column, stage, where, counts)
    for column in described:
        del column["sql"], column["rows"]
    return described


def _looks_categorical(column: dict) -> bool:
    """Short strings with few distinct values that repeat (a template id, a model name)."""
    distinct = column.get("distinct_approx", CATEGORY_MAX_DISTINCT + 1)
    return distinct <= CATEGORY_MAX_DISTINCT and 2 * distinct <= column["rows"] - column["nulls"] and (column["stats"].get("max") or 0) <= CATEGORY_MAX_LENGTH


def _after_their_columns(described: list[dict], fields: list[dict]) -> list[dict]:
    ordered = []
    for column in described:
        ordered.append(column)
        ordered += [field for field in fields if field["json_of"] == column["name"]]
    return ordered


def _json_fields(relation: duckdb.DuckDBPyRelation, column: dict, stage: str, where: str | None) -> list[dict]:
    """The leaves of a JSON column found in a bounded sample of its values, each a field with its own SQL."""
    quoted = column["sql"]
    values = run_query(relation.filter(f"{quoted} IS NOT NULL").project(quoted).limit(JSON_SAMPLE_ROWS), stage, where)
    kinds: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    keys_under: dict[tuple[str, ...], set[str]] = defaultdict(set)
    objects = 0
    for (text,) in values:
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects += 1
            _walk_json(value, (), kinds, keys_under)
    maps = {path for path, keys in keys_under.items() if len(keys) > JSON_MAX_KEYS}
    fields = []
    for path, seen in kinds.items():
        if sum(seen.values()) < JSON_MIN_SHARE * objects or any(path[:depth] in maps for depth in range(len(path))):
            continue
        pointer = quote_literal("/" + "/".join(key.replace("~", "~0").replace("/", "~1") for key in path))
        name = ".".join((column["name"], *path))
        if set(seen) == {"number"}:
            fields.append({"name": name, "type": "DOUBLE", "role": "numeric", "sql": f"TRY_CAST(json_extract({quoted}, {pointer}) AS DOUBLE)"})
        else:
            kind = "BOOLEAN" if set(seen) == {"bool"} else "VARCHAR"
            role = "category" if kind == "BOOLEAN" else "text"
            fields.append({"name": name, "type": kind, "role": role, "sql": f"json_extract_string({quoted}, {pointer})"})
        fields[-1]["json_of"] = column["name"]
    return fields[:JSON_MAX_FIELDS]


def _walk_json(value: dict, path: tuple[str, ...], kinds: dict, keys_under: dict) -> None:
    keys_under[path].update(value)
    for key, item in value.items():
        if isinstance(item, dict):
            _walk_json(item, (*path, key), kinds, keys_under)
        elif isinstance(item, bool):
            kinds[(*path, key)]["bool"] += 1
        elif isinstance(item, (int, float)):
            kinds[(*path, key)]["number"] += 1
        elif isinstance(item, str):
            kinds[(*path, key)]["string"] += 1


def _add_stats(relation: duckdb.DuckDBPyRelation, described: list[dict], stage: str, where: str | None) -> None:
    expressions = ["count(*)"]
    slots: list[tuple[dict, str]] = []
    for column in described:
        value = column["sql"]
        expressions.append(f"count({value})")
        slots.append((column, "non_null"))
        if column["role"] in ("lineage", "text"):
            expressions.append(f"approx_count_distinct({value})")
            slots.append((column, "distinct"))
        if column["role"] == "text" and column["name"] not in TEXT_COLUMNS and "json_of" not in column:
            # Only whole JSON objects count: a number or a quoted string is valid JSON too.
            expressions.append(f"count(*) FILTER (WHERE json_valid({value}) AND starts_with(ltrim({value}), '{{'))")
            slots.append((column, "json_objects"))
        measure = _measure(column)
        if measure is not None:
            quantiles = ", ".join(str(q) for q in QUANTILES)
            expressions += [f"min({measure})", f"max({measure})", f"avg({measure})", f"approx_quantile({measure}, [{quantiles}])"]
            slots += [(column, "min"), (column, "max"), (column, "mean"), (column, "quantiles")]
        if column["role"] == "numeric" and not _integer_typed(column):
            # Scores are often whole numbers stored as floats: those get one bin per value too.
            expressions.append(f"count(*) FILTER (WHERE {value} <> floor({value}))")
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
        elif key == "json_objects":
            column["json_objects"] = value
        elif key == "fractional":
            column["whole_numbers"] = value == 0
        elif key == "quantiles":
            column["stats"].update({f"p{round(q * 100)}": _number(v) for q, v in zip(QUANTILES, value or [None] * len(QUANTILES))})
        else:
            column.setdefault("stats", {})[key] = _number(value)


def _add_histograms(relation: duckdb.DuckDBPyRelation, described: list[dict], stage: str, where: str | None, counts: _CountedRows) -> None:
    """All histograms in one pass: each field's values bucketed in SQL, counted by DuckDB's histogram().

    Bins are `nice_bins` over min..p99 (the last bin also holds everything above), so their
    edges are round numbers a reader can take in; whole numbers over a short range get one bin
    per value.
    """
    plans = []
    for column in described:
        stats = column.get("stats")
        measure = _measure(column)
        if measure is None or not stats or stats.get("min") is None:
            continue
        low, high = float(stats["min"]), float(stats["max"])
        integral = column["role"] != "numeric" or _integer_typed(column) or column.get("whole_numbers", False)
        if integral and high - low <= EXACT_BINS_MAX_RANGE:
            plans.append((column, counts.histograms(measure), None))
            continue
        top = float(stats.get("p99") or high)
        top = top if low < top < high else high
        start, width, bins = nice_bins(low, top, HISTOGRAM_BINS, integral)
        bucket = f"least(greatest(floor(({measure} - {start!r}) / {width!r}), 0), {bins - 1})::BIGINT"
        plans.append((column, counts.histograms(bucket), (start, width, bins, top < high)))
    if not plans:
        return
    expressions = [expression for _, pair, _ in plans for expression in pair]
    values = iter(run_query(relation.aggregate(", ".join(expressions)), stage, where)[0])
    for column, _pair, binning in plans:
        kept = next(values) or {}
        rejected = (next(values) or {}) if counts.split else None
        if binning is None:
            # Every whole number from min to max, unseen ones at 0: the axis stays linear, gaps show.
            seen = set(kept) | set(rejected or {})
            keys = range(int(min(seen)), int(max(seen)) + 1) if seen else ()
            column["histogram"] = [_bin(v, v, _count(kept, v), rejected, v) for v in keys]
            continue
        start, width, bins, open_ended = binning
        digits = _edge_digits(width)
        column["histogram"] = [
            _bin(
                _edge(start + b * width, digits),
                None if open_ended and b == bins - 1 else _edge(start + (b + 1) * width, digits),
                kept.get(b, 0),
                rejected,
                b,
            )
            for b in range(bins)
        ]


def _bin(low: Any, high: Any, count: int, rejected: dict | None, key: Any) -> dict[str, Any]:
    entry = {"lo": low, "hi": high, "count": count}
    if rejected is not None:
        entry["rejected"] = _count(rejected, key)
    return entry


def _count(histogram: dict, key: Any) -> int:
    # DuckDB keys a histogram of whole-number floats by float: 7.0, not 7.
    return histogram.get(key, histogram.get(float(key), 0)) if isinstance(key, int) else histogram.get(key, 0)


def nice_bins(low: float, high: float, target: int, integral: bool) -> tuple[float, float, int]:
    """(start, width, count) of about `target` bins covering low..high, with a width of 1, 2, 2.5 or 5
    times a power of ten (whole numbers: at least 1, and never 2.5) and a start on a multiple of it."""
    raw = (high - low) / target
    if raw <= 0:
        return low, 1.0, 1
    power = 10.0 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integral else (1, 2, 2.5, 5, 10)
    width = next(step * power for step in steps if step * power >= raw * (1 - 1e-9))
    if integral:
        width = max(1.0, float(round(width)))
    start = math.floor(low / width) * width
    # As numpy's, the last bin includes its upper edge: a maximum on an edge needs no bin of its own.
    count = max(1, math.ceil((high - start) / width - 1e-9))
    return start, width, count


def _edge_digits(width: float) -> int:
    return max(0, 2 - math.floor(math.log10(width))) if width < 100 else 0


def _edge(value: float, digits: int) -> Any:
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() else rounded


def _add_top_values(relation: duckdb.DuckDBPyRelation, column: dict, stage: str, where: str | None, counts: _CountedRows) -> None:
    value = column["sql"]
    measures = f"{counts.kept('*')} AS n" + (f", {counts.rejected('*')} AS r" if counts.split else ", 0 AS r")
    grouped = relation.aggregate(f"{value} AS value, {measures}", value)
    shown = run_query(grouped.order("n + r DESC, value").limit(TOP_VALUES), stage, where)
    column["top"] = [{"value": v, "count": n, **({"rejected": r} if counts.split else {})} for v, n, r in shown]
    distinct, kept, rejected = run_query(
        grouped.aggregate("count(*), coalesce(sum(n) FILTER (WHERE value IS NOT NULL), 0), coalesce(sum(r) FILTER (WHERE value IS NOT NULL), 0)"),
        stage,
        where,
    )[0]
    column["distinct"] = distinct
    column["other"] = int(kept) - sum(n for v, n, _ in shown if v is not None)
    if counts.split:
        column["other_rejected"] = int(rejected) - sum(r for v, _, r in shown if v is not None)


def _integer_typed(column: dict) -> bool:
    return column["type"] not in ("FLOAT", "DOUBLE") and not column["type"].startswith("DECIMAL")


def _number(value: Any) -> Any:
    """Whole floats print as ints; others keep 3 decimals (stats are for reading, not recomputation)."""
    if isinstance(value, float):
        value = round(value, 3)
        return int(value) if value.is_integer() else value
    return value
