"""The run report: one self-contained HTML file (inline CSS and SVG, no script, no network).

What a reader asks of a run, in order:
- the funnel: rows in, kept and rejected per stage, with state, LLM tokens and wall time;
- what generation cost: tokens and engine seconds per stage and model, tokens per kept pair;
- why rows were rejected: reasons per stage;
- what survived: rows per language, domain and source at every stage (kept, and rejected);
- tokens per source and domain in the shards (`shards/mix.json`);
- stage by stage, the fields the stage made, each plotted as what it is (`stage_profile`):
  scores and other numbers as distributions, the critique rubric's dimensions and the
  consistency agreement included (they live inside JSON columns), categories as counts,
  text as lengths; kept and rejected rows stacked, so a threshold's cut shows; then a few
  kept and rejected rows of the stage, with their reasons;
- near-duplicate cluster sizes (from `near_duplicate` rejects' `reject_detail`).
Every number comes from manifests or from the same DuckDB queries as `synthmix inspect`, so
the report never loads a whole stage, and it only reads the run directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.inspection.diversity_view import diversity_section
from synthmix.pipeline.inspection.eval_view import eval_section
from synthmix.pipeline.inspection.funnel import group_by_reason, run_funnel
from synthmix.pipeline.inspection.generation_cost import cost_section
from synthmix.pipeline.inspection.parquet_query import connect, quote_identifier, quote_literal, read_files, run_query
from synthmix.pipeline.inspection.run_contents import SHARDS, RunInspectionError, data_files, shard_files
from synthmix.pipeline.inspection.stage_profile import TEXT_COLUMNS, profile_rejects, profile_stage, sample_rows
from synthmix.pipeline.inspection.svg_charts import KEPT_COLOR, REJECTED_COLOR, SMALL_WIDTH, bar_chart, histogram_chart, stacked_bar_chart
from synthmix.pipeline.store import write_atomic_bytes
from synthmix.pipeline.tokens.mixture import MIX_FILE_NAME

MIX_KEYS = (contracts.LANG, contracts.DOMAIN, contracts.SOURCE)
MIX_VALUES = 8  # values per key drawn as their own segment; the rest are '(other)'
# Keys under which a near-duplicate reject's JSON detail names its cluster, most specific first;
# a detail that is not JSON is itself the cluster key (e.g. "duplicate of <id>").
CLUSTER_KEYS = ("cluster_id", "cluster", "kept_id", "duplicate_of", "kept")
CLUSTER_SIZE_KEY = "cluster_size"
PLOTTED_ROLES = ("numeric", "category", "list", "text")
KEPT_EXAMPLES = 3
REJECTED_EXAMPLES = 2  # per reason
EXAMPLE_REASONS = 4
TEXT_CHARS = 400  # characters of a text value shown in an example
DETAIL_CHARS = 400
JSON_STRING_CHARS = 60

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2.2em;border-bottom:1px solid #ddd}h3{font-size:1.05em;margin:1.6em 0 .3em}
h4{font-size:.95em;margin:1em 0 .3em}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n{text-align:right}.stale{color:#b35900;font-weight:bold}.note{color:#666;font-size:13px}.rej{color:#c03537}
.grid{display:flex;flex-wrap:wrap;gap:6px 24px}figure{margin:0}figcaption{font-size:13px;margin:.6em 0 .2em}
table.example{width:100%;margin:.4em 0 1em;border:1px solid #e4e4e4}table.example th{width:150px;color:#555;font-weight:normal}
table.example td{white-space:pre-wrap;word-break:break-word}
"""


def _probes_section(run_dir: Path) -> str:
    """Probe accuracy per model and domain and what each filter did to it; the probes are found
    through the recorded job, so a run directory without job.yaml has no such section."""
    try:
        return eval_section(run_dir)
    except RunInspectionError:
        return ""


def build_report(run_dir: Path, states: Mapping[str, str], notes: Mapping[str, str] | None = None) -> str:
    """The report's HTML; `states` maps each stage of the job to its state (fresh/stale/missing/
    interrupted/undecided), `notes` a stage to why its state is what it is, when that needs saying."""
    run_dir = Path(run_dir)
    funnel = run_funnel(run_dir, states, notes)
    stages = [row["stage"] for row in funnel if row["stage"] != SHARDS and (row["rows_out"] or row["rows_rejected"])]
    profiles = {stage: profile_stage(run_dir, stage, sample=0, with_rejects=True) for stage in stages}
    sections = [
        _funnel_section(funnel),
        cost_section(run_dir),
        _rejects_section(funnel),
        _mix_section(run_dir, profiles),
        _probes_section(run_dir),
        diversity_section(run_dir),
        _tokens_section(run_dir),
        _stages_section(run_dir, funnel, profiles),
        _clusters_section(run_dir, funnel),
    ]
    title = f"synthmix run {run_dir.name}"
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="note">{escape(str(run_dir.resolve()))} · made {made}</p>{"".join(sections)}</body></html>'
    )


def write_report(run_dir: Path, states: Mapping[str, str], out: Path, notes: Mapping[str, str] | None = None) -> Path:
    """Write the report to `out` (atomically); a folder that cannot be written is an error saying so."""
    html = build_report(run_dir, states, notes)
    try:
        write_atomic_bytes(Path(out), html.encode("utf-8"))
    except OSError as error:
        raise RunInspectionError(f"cannot write the report to {out} ({error.strerror or error}); pass -o with a writable path") from None
    return Path(out)


# --- overview -------------------------------------------------------------------------------


def _funnel_section(funnel: list[dict]) -> str:
    shown = [row for row in funnel if row["rows_out"] is not None]
    chart = stacked_bar_chart(
        [row["stage"] for row in shown],
        [{"kept": row["rows_out"], "rejected": row["rows_rejected"] or 0} for row in shown],
        colors={"kept": KEPT_COLOR, "rejected": REJECTED_COLOR},
        legend_totals=False,
    )
    head = "".join(f"<th>{name}</th>" for name in ("stage", "state", "in", "kept", "rejected", "tokens in → out", "wall s"))
    body = []
    for row in funnel:
        state_class = ' class="stale"' if row["state"] in ("stale", "interrupted") else ""
        tokens = "<br>".join(f"{escape(model)}: {counts.get('prompt_tokens', 0)} → {counts.get('generated_tokens', 0)}" for model, counts in row["llm"].items())
        cells = [escape(row["stage"]), f"<span{state_class}>{escape(row['state'])}</span>"]
        numbers = [row["rows_in"], row["rows_out"], row["rows_rejected"]]
        body.append(
            "<tr>"
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + "".join(f'<td class="n">{"-" if n is None else n}</td>' for n in numbers)
            + f'<td>{tokens or "-"}</td><td class="n">{"-" if row["wall_s"] is None else row["wall_s"]}</td></tr>'
        )
    undecided = {row["stage"]: row["why"] for row in funnel if "why" in row}
    footnotes = "".join(
        f'<p class="note"><b>undecided</b> ({escape(", ".join(stages))}): complete, but whether the job changed since '
        f"cannot be decided here: {escape(reason)}</p>"
        for stages, reason in group_by_reason(undecided)
    )
    return f"<h2>Funnel</h2>{chart}<table><tr>{head}</tr>{''.join(body)}</table>{footnotes}"


def _rejects_section(funnel: list[dict]) -> str:
    rejecting = [row for row in funnel if row["rejected"]]
    if not rejecting:
        return '<h2>Reject reasons</h2><p class="note">No stage rejected rows.</p>'
    chart = stacked_bar_chart([row["stage"] for row in rejecting], [row["rejected"] for row in rejecting])
    return f"<h2>Reject reasons</h2>{chart}"


def _mix_section(run_dir: Path, profiles: dict[str, dict]) -> str:
    """Rows per language, domain and source at each stage (and in the shards): where a slice thinned out."""
    shards = _shards_profile(run_dir)
    everywhere = {**profiles, **({SHARDS: shards} if shards else {})}
    parts = []
    for key in MIX_KEYS:
        per_stage = {stage: column for stage, profile in everywhere.items() if (column := _column(profile, key, "category"))}
        if not per_stage:
            continue
        values = _leading_values(per_stage.values())
        segments, cells = [], []
        for column in per_stage.values():
            kept = {str(entry["value"]): entry["count"] for entry in column["top"]}
            rejected = {str(entry["value"]): entry.get("rejected", 0) for entry in column["top"]}
            other = column["other"] + sum(n for value, n in kept.items() if value not in values)
            other_rejected = column.get("other_rejected", 0) + sum(n for value, n in rejected.items() if value not in values)
            segments.append({**{value: kept.get(value, 0) for value in values}, **({"(other)": other} if other else {})})
            cells.append([(kept.get(value, 0), rejected.get(value, 0)) for value in values] + [(other, other_rejected)])
        chart = stacked_bar_chart(list(per_stage), segments, legend_totals=False)
        names = [*values, "(other)"]
        if not any(row[-1] != (0, 0) for row in cells):
            names, cells = values, [row[:-1] for row in cells]
        head = "".join(f"<th>{escape(name)}</th>" for name in ["stage", *names])
        rows = "".join(
            f"<tr><td>{escape(stage)}</td>" + "".join(f'<td class="n">{_kept_rejected(k, r)}</td>' for k, r in row) + "</tr>"
            for stage, row in zip(per_stage, cells)
        )
        parts.append(f"<h3>{escape(key)}</h3>{chart}<table><tr>{head}</tr>{rows}</table>")
    if not parts:
        return '<h2>Languages, domains and sources</h2><p class="note">No stage has lang, domain or source columns yet.</p>'
    note = '<p class="note">Rows kept by each stage; <span class="rej">−n</span>: rows of that value the stage rejected.</p>'
    return f"<h2>Languages, domains and sources</h2>{note}{''.join(parts)}"


def _shards_profile(run_dir: Path) -> dict | None:
    files = shard_files(run_dir)
    if not files:
        return None
    present = [key for key in MIX_KEYS if key in pq.read_schema(files[0]).names]
    return profile_stage(run_dir, SHARDS, sample=0, only_columns=present) if present else None


def _leading_values(per_stage) -> list[str]:
    """The values to draw as segments: most rows over all stages first, at most MIX_VALUES."""
    totals: dict[str, int] = {}
    for column in per_stage:
        for entry in column["top"]:
            value = str(entry["value"])
            totals[value] = totals.get(value, 0) + entry["count"] + entry.get("rejected", 0)
    return sorted(totals, key=lambda value: (-totals[value], value))[:MIX_VALUES]


def _kept_rejected(kept: int, rejected: int) -> str:
    return f"{kept}{f' <span class=rej>−{rejected}</span>' if rejected else ''}" if kept or rejected else "-"


def _tokens_section(run_dir: Path) -> str:
    mix_path = run_dir / SHARDS / MIX_FILE_NAME
    if not mix_path.exists():
        return '<h2>Tokens per source</h2><p class="note">No shards/mix.json yet (run the tokenize and mix stages).</p>'
    mix = json.loads(mix_path.read_text(encoding="utf-8"))
    parts = [f'<h2>Tokens per source</h2><p class="note">{mix.get("tokens", 0)} tokens in {len(mix.get("shards", []))} shards</p>']
    for key, label in (("tokens_by_source", "source"), ("tokens_by_domain", "domain")):
        counts = mix.get(key) or {}
        if counts:
            parts.append(f"<h3>tokens by {label}</h3>{bar_chart(list(counts), list(counts.values()), unit='tokens')}")
    return "".join(parts)


# --- stage by stage ---------------------------------------------------------------------------


def _stages_section(run_dir: Path, funnel: list[dict], profiles: dict[str, dict]) -> str:
    """Per stage: the fields it made, plotted by what they are (constant and empty ones named), then examples."""
    parts = []
    seen: set[str] = set()
    for position, row in enumerate(funnel):
        profile = profiles.get(row["stage"])
        if profile is None:
            continue
        made = [c for c in profile["columns"] if c["name"] not in seen and c["name"] not in (contracts.REJECT_REASON, contracts.REJECT_DETAIL)]
        seen.update(column["name"] for column in profile["columns"])
        plotted, constant, empty = [], [], []
        for column in sorted((c for c in made if c["role"] in PLOTTED_ROLES), key=lambda c: PLOTTED_ROLES.index(c["role"])):
            value = _single_value(column)
            if value is not None:
                constant.append(f"{column['name']} = {value}")
            elif (figure := _field_figure(column)) is not None:
                plotted.append(figure)
            else:
                empty.append(column["name"])
        reasons = ", ".join(f"{reason} {n}" for reason, n in row["rejected"].items())
        parts.append(
            f'<h3>{escape(row["stage"])}</h3><p class="note">{_count(row["rows_in"])} in, {_count(row["rows_out"])} kept, '
            f"{_count(row['rows_rejected'])} rejected{escape(f' ({reasons})') if reasons else ''}</p>"
        )
        if plotted:
            parts.append(f'<div class="grid">{"".join(plotted)}</div>')
        if constant:
            parts.append(f'<p class="note">The same in every row: {escape("; ".join(constant))}</p>')
        if empty:
            parts.append(f'<p class="note">No value in any row: {escape(", ".join(empty))}</p>')
        if not made:
            parts.append('<p class="note">No new fields: the stage keeps or drops rows as they come.</p>')
        parts.append(_examples(run_dir, row, made, seed=position))
    if not parts:
        return '<h2>Stage by stage</h2><p class="note">No stage has output yet.</p>'
    return "<h2>Stage by stage</h2>" + "".join(parts)


def _single_value(column: dict) -> str | None:
    """The one value every row has, or None when the field varies (a chart says more then)."""
    if column["role"] == "category":
        values = [entry["value"] for entry in column["top"]]
        return _quoted(values[0]) if len(values) == 1 and not column["other"] and not column.get("other_rejected") else None
    stats = column.get("stats") or {}
    if stats.get("min") is not None and stats["min"] == stats["max"]:
        return f"{stats['min']}{' characters' if column['role'] == 'text' else ' items' if column['role'] == 'list' else ''}"
    return None


def _field_figure(column: dict) -> str | None:
    role = column["role"]
    if role == "category":
        labels = [_quoted(entry["value"]) for entry in column["top"]]
        segments = [{"kept": entry["count"], "rejected": entry.get("rejected", 0)} for entry in column["top"]]
        if column["other"] or column.get("other_rejected"):
            labels.append(f"(other: {column['distinct'] - len(labels)} values)")
            segments.append({"kept": column["other"], "rejected": column.get("other_rejected", 0)})
        if not labels:
            return None
        any_rejected = any(segment["rejected"] for segment in segments)
        chart = stacked_bar_chart(labels, segments, colors={"kept": KEPT_COLOR, "rejected": REJECTED_COLOR}, legend=any_rejected, width=SMALL_WIDTH)
        caption = f"{column['name']}: {column['distinct']} values"
    else:
        if not column.get("histogram"):
            return None
        stats = column["stats"]
        unit = {"numeric": "value", "text": "characters", "list": "items"}[role]
        chart = histogram_chart(column["histogram"], x_label=unit, width=SMALL_WIDTH, height=190)
        what = "" if role == "numeric" else f" ({unit})"
        caption = f"{column['name']}{what}: min {stats['min']}, median {stats['p50']}, max {stats['max']}"
    return f"<figure><figcaption>{escape(caption)}</figcaption>{chart}</figure>"


def _examples(run_dir: Path, row: dict, made: list[dict], seed: int) -> str:
    """A few kept rows (when the stage made fields) and, per reason, a few rejected ones: the
    content, the fields the stage made, the reason. Seeded by the stage's position, so stages
    that carry the same rows show different ones."""
    new_fields = [c["name"] for c in made if "json_of" not in c and (c["role"] != "lineage" or c["name"] == contracts.SOURCE_ID)]
    shown_fields = [*TEXT_COLUMNS, contracts.LANG, contracts.DOMAIN, *new_fields]
    parts = []
    if row["rows_out"] and new_fields:
        relation = read_files(connect(run_dir), data_files(run_dir, row["stage"]))
        kept = sample_rows(relation, row["stage"], None, KEPT_EXAMPLES, seed)
        parts.append(f"<h4>kept ({len(kept)} of {row['rows_out']})</h4>" + "".join(_example(sample, shown_fields) for sample in kept))
    # Reasons as the reject files hold them: a manifest may count rejects whose files are gone.
    on_disk = profile_rejects(run_dir, row["stage"], sample=0)["by_reason"] if row["rows_rejected"] else {}
    for reason, total in list(on_disk.items())[:EXAMPLE_REASONS]:
        rejected = profile_rejects(run_dir, row["stage"], reason=reason, sample=REJECTED_EXAMPLES, seed=seed)["samples"]
        fields = [contracts.REJECT_REASON, contracts.REJECT_DETAIL, *shown_fields]
        parts.append(f'<h4 class="rej">rejected: {escape(reason)} ({len(rejected)} of {total})</h4>' + "".join(_example(sample, fields) for sample in rejected))
    return "".join(parts)


def _example(sample: dict[str, Any], fields: list[str]) -> str:
    rows = [f"<tr><th>{contracts.ID}</th><td>{escape(str(sample.get(contracts.ID)))}</td></tr>"]
    for name in dict.fromkeys(fields):
        if name in sample and name != contracts.ID and sample[name] is not None:
            rows.append(f"<tr><th>{escape(name)}</th><td>{escape(_shown(sample[name], name))}</td></tr>")
    return f'<table class="example">{"".join(rows)}</table>'


def _shown(value: Any, name: str) -> str:
    """A value as an example shows it: text cut at TEXT_CHARS, JSON with its long strings cut, floats to 4 digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and name not in TEXT_COLUMNS:
        try:
            value = json.loads(value) if value.lstrip().startswith(("{", "[")) else value
        except ValueError:
            pass
    if isinstance(value, (dict, list)):
        text = json.dumps(_shortened(value), ensure_ascii=False, default=str)
    else:
        text = str(value)
    limit = TEXT_CHARS if name in TEXT_COLUMNS else DETAIL_CHARS
    return text if len(text) <= limit else f"{text[:limit]}… (+{len(text) - limit} characters)"


def _shortened(value: Any) -> Any:
    """JSON with each string cut to JSON_STRING_CHARS, so a long rationale leaves room for the scores after it."""
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    if isinstance(value, str) and len(value) > JSON_STRING_CHARS:
        return value[:JSON_STRING_CHARS] + "…"
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def _quoted(value: Any) -> str:
    """A category value as a label: the empty string and null would otherwise be blank or 'None'."""
    return '"" (empty)' if value == "" else "(null)" if value is None else str(value)


def _column(profile: dict, name: str, role: str) -> dict | None:
    return next((c for c in profile["columns"] if c["name"] == name and c["role"] == role), None)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


# --- near duplicates --------------------------------------------------------------------------


def _clusters_section(run_dir: Path, funnel: list[dict]) -> str:
    charts = []
    for row in funnel:
        if row["rejected"].get(RejectReason.NEAR_DUPLICATE.value):
            sizes = near_duplicate_cluster_sizes(run_dir, row["stage"])
            if sizes:
                bins = [{"lo": size, "hi": size, "count": n} for size, n in sorted(sizes.items())]
                caption = f"{row['stage']}: {sum(sizes.values())} clusters"
                charts.append(f"<h3>{escape(caption)}</h3>{histogram_chart(bins, x_label='rows per cluster (kept + dropped)')}")
    if not charts:
        return '<h2>Near-duplicate clusters</h2><p class="note">No near-duplicate rejects.</p>'
    return f"<h2>Near-duplicate clusters</h2>{''.join(charts)}"


def near_duplicate_cluster_sizes(run_dir: Path, stage: str) -> dict[int, int]:
    """Cluster size -> number of clusters, from a stage's near_duplicate rejects (each cluster keeps one row).

    A reject's `reject_detail` names its cluster by JSON key (CLUSTER_KEYS, or `cluster_size`
    directly) or, when it is not JSON, by its own text.
    """
    files = data_files(run_dir, stage, rejects=True)
    if not files:
        return {}
    relation = read_files(connect(run_dir), files)
    detail = quote_identifier(contracts.REJECT_DETAIL)
    if contracts.REJECT_DETAIL not in relation.columns:
        return {}
    keys = ", ".join(f"json_extract_string({detail}, '$.{key}')" for key in CLUSTER_KEYS)
    cluster = f"CASE WHEN json_valid({detail}) THEN coalesce({keys}, {detail}) ELSE {detail} END"
    stated_size = f"CASE WHEN json_valid({detail}) THEN try_cast(json_extract({detail}, '$.{CLUSTER_SIZE_KEY}') AS BIGINT) END"
    dropped = relation.filter(f"{quote_identifier(contracts.REJECT_REASON)} = {quote_literal(RejectReason.NEAR_DUPLICATE.value)}")
    per_cluster = dropped.aggregate(f"{cluster} AS cluster, greatest(count(*) + 1, coalesce(max({stated_size}), 0)) AS size", cluster)
    rows = run_query(per_cluster.aggregate("size, count(*)", "size"), stage, None)
    return {int(size): n for size, n in rows}
