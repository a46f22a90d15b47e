"""The run report: one self-contained HTML file (inline CSS and SVG, no script, no network).

Sections: the funnel (kept and rejected per stage, with state, tokens and wall time), reject
reasons per stage, score histograms, text length distributions, domain and language mix,
tokens per source (from `shards/mix.json`), and near-duplicate cluster sizes (from the
`near_duplicate` rejects' `reject_detail`). Every number comes from manifests or from the
same DuckDB queries as `synthmix inspect`, so the report never loads a whole stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from pipeline import columns
from pipeline.funnel import run_funnel
from pipeline.mixture import MIX_FILE_NAME
from pipeline.parquet_query import connect, quote_identifier, quote_literal, read_files, run_query
from pipeline.rejects import RejectReason
from pipeline.run_contents import SHARDS, data_files
from pipeline.stage_profile import profile_stage
from pipeline.store import write_atomic_bytes
from pipeline.svg_charts import KEPT_COLOR, bar_chart, histogram_chart, stacked_bar_chart

MIX_KEYS = (columns.DOMAIN, columns.LANG)
# Keys under which a near-duplicate reject's JSON detail names its cluster, most specific first;
# a detail that is not JSON is itself the cluster key (e.g. "duplicate of <id>").
CLUSTER_KEYS = ("cluster_id", "cluster", "kept_id", "duplicate_of", "kept")
CLUSTER_SIZE_KEY = "cluster_size"

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right}.stale{color:#b35900;font-weight:bold}.note{color:#666;font-size:13px}
"""


def build_report(run_dir: Path, states: Mapping[str, str]) -> str:
    """The report's HTML; `states` maps each stage of the job to fresh/stale/missing/interrupted."""
    run_dir = Path(run_dir)
    funnel = run_funnel(run_dir, states)
    profiles = {
        row["stage"]: profile_stage(run_dir, row["stage"], sample=0) for row in funnel if row["rows_out"] and row["stage"] != SHARDS
    }
    sections = [
        _funnel_section(funnel),
        _rejects_section(funnel),
        _histogram_section("Scores", profiles, lambda c: c["role"] == "numeric" and "score" in c["name"].lower(), "value"),
        _histogram_section("Lengths", profiles, lambda c: c["role"] == "text", "characters"),
        _mix_section(profiles),
        _tokens_section(run_dir),
        _clusters_section(run_dir, funnel),
    ]
    title = f"synthmix run {run_dir.name}"
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="note">{escape(str(run_dir.resolve()))} · made {made}</p>{"".join(sections)}</body></html>'
    )


def write_report(run_dir: Path, states: Mapping[str, str], out: Path) -> Path:
    write_atomic_bytes(Path(out), build_report(run_dir, states).encode("utf-8"))
    return Path(out)


def _funnel_section(funnel: list[dict]) -> str:
    shown = [row for row in funnel if row["rows_out"] is not None]
    chart = stacked_bar_chart(
        [row["stage"] for row in shown],
        [{"kept": row["rows_out"], "rejected": row["rows_rejected"] or 0} for row in shown],
        colors={"kept": KEPT_COLOR, "rejected": "#e15759"},
    )
    head = "".join(f"<th>{name}</th>" for name in ("stage", "state", "in", "kept", "rejected", "tokens in → out", "wall s"))
    body = []
    for row in funnel:
        state_class = ' class="stale"' if row["state"] in ("stale", "interrupted") else ""
        tokens = "<br>".join(
            f"{escape(model)}: {counts.get('prompt_tokens', 0)} → {counts.get('generated_tokens', 0)}" for model, counts in row["llm"].items()
        )
        cells = [escape(row["stage"]), f"<span{state_class}>{escape(row['state'])}</span>"]
        numbers = [row["rows_in"], row["rows_out"], row["rows_rejected"]]
        body.append(
            "<tr>"
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + "".join(f'<td class="n">{"-" if n is None else n}</td>' for n in numbers)
            + f'<td>{tokens or "-"}</td><td class="n">{"-" if row["wall_s"] is None else row["wall_s"]}</td></tr>'
        )
    return f"<h2>Funnel</h2>{chart}<table><tr>{head}</tr>{''.join(body)}</table>"


def _rejects_section(funnel: list[dict]) -> str:
    rejecting = [row for row in funnel if row["rejected"]]
    if not rejecting:
        return '<h2>Reject reasons</h2><p class="note">No stage rejected rows.</p>'
    chart = stacked_bar_chart([row["stage"] for row in rejecting], [row["rejected"] for row in rejecting])
    return f"<h2>Reject reasons</h2>{chart}"


def _histogram_section(title: str, profiles: dict[str, dict], wanted, x_label: str) -> str:
    """One chart per column, at the first stage that has it: where it was made, before later filters."""
    charts = []
    seen: set[str] = set()
    for stage, profile in profiles.items():
        for column in profile["columns"]:
            if wanted(column) and column["name"] not in seen and column.get("histogram"):
                seen.add(column["name"])
                stats = column["stats"]
                caption = f"{column['name']} ({stage}: min {stats['min']}, median {stats['p50']}, max {stats['max']})"
                charts.append(f"<h3>{escape(caption)}</h3>{histogram_chart(column['histogram'], x_label=x_label)}")
    if not charts:
        return f'<h2>{title}</h2><p class="note">No stage has such columns yet.</p>'
    return f"<h2>{title}</h2>{''.join(charts)}"


def _mix_section(profiles: dict[str, dict]) -> str:
    """Domain and language mix of the last stage that has each: what goes on to tokenization."""
    charts = []
    for key in MIX_KEYS:
        for stage, profile in reversed(profiles.items()):
            column = next((c for c in profile["columns"] if c["name"] == key and c["role"] == "category"), None)
            if column:
                labels = [str(entry["value"]) for entry in column["top"]] + (["(other)"] if column["other"] else [])
                values = [entry["count"] for entry in column["top"]] + ([column["other"]] if column["other"] else [])
                charts.append(f"<h3>{escape(key)} ({escape(stage)})</h3>{bar_chart(labels, values, unit='rows')}")
                break
    if not charts:
        return '<h2>Domain and language mix</h2><p class="note">No stage has domain or lang columns yet.</p>'
    return f"<h2>Domain and language mix</h2>{''.join(charts)}"


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
    detail = quote_identifier(columns.REJECT_DETAIL)
    if columns.REJECT_DETAIL not in relation.columns:
        return {}
    keys = ", ".join(f"json_extract_string({detail}, '$.{key}')" for key in CLUSTER_KEYS)
    cluster = f"CASE WHEN json_valid({detail}) THEN coalesce({keys}, {detail}) ELSE {detail} END"
    stated_size = f"CASE WHEN json_valid({detail}) THEN try_cast(json_extract({detail}, '$.{CLUSTER_SIZE_KEY}') AS BIGINT) END"
    dropped = relation.filter(f"{quote_identifier(columns.REJECT_REASON)} = {quote_literal(RejectReason.NEAR_DUPLICATE.value)}")
    per_cluster = dropped.aggregate(f"{cluster} AS cluster, greatest(count(*) + 1, coalesce(max({stated_size}), 0)) AS size", cluster)
    rows = run_query(per_cluster.aggregate("size, count(*)", "size"), stage, None)
    return {int(size): n for size, n in rows}
