"""Inspection results as terminal text: aligned tables, one-line sparklines, long text wrapped and cut.

Renders the dictionaries that `--json` prints, so the terminal and scripts see the same data.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Sequence
from typing import Any

from synthmix.pipeline.inspection.funnel import group_by_reason

SPARK = "▁▂▃▄▅▆▇█"
VALUE_LINES = 6  # lines of a long text value shown before cutting it
TABLE_CELL = 80


def terminal_width() -> int:
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; `right` lists column indexes aligned right (numbers)."""
    cells = [[one_line(cell, TABLE_CELL) for cell in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def one_line(value: Any, limit: int) -> str:
    """A value on one line: '-' for None, whitespace collapsed, cut with '…' past `limit` characters."""
    if value is None:
        return "-"
    text = " ".join(str(value).split()) if isinstance(value, str) else _scalar(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrap_value(value: Any, width: int, indent: str) -> str:
    """A long value wrapped to `width`, at most VALUE_LINES lines, saying how much was left out."""
    if value is None:
        return "-"
    if isinstance(value, list) and len(value) > 20:
        text = json.dumps(value[:20], default=str)[:-1] + f", … ({len(value)} items)]"
    else:
        text = value if isinstance(value, str) else _scalar(value)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width=width, replace_whitespace=False, drop_whitespace=True) or [""]
    if len(lines) > VALUE_LINES:
        shown = lines[:VALUE_LINES]
        left = len(text) - sum(len(line) for line in shown)
        lines = [*shown, f"… (+{left} chars)"]
    return ("\n" + indent).join(lines)


def sparkline(counts: Sequence[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return ""
    return "".join(" " if n == 0 else SPARK[min(len(SPARK) - 1, n * len(SPARK) // (top + 1))] for n in counts)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


# --- commands ------------------------------------------------------------------------------


def render_funnel(rows: list[dict[str, Any]]) -> str:
    table = []
    for row in rows:
        rejected = ", ".join(f"{reason} {n}" for reason, n in row["rejected"].items()) or "-"
        tokens = ", ".join(f"{model} {counts.get('prompt_tokens', 0)}→{counts.get('generated_tokens', 0)}" for model, counts in row["llm"].items()) or "-"
        flag = "  ⚠" if row["state"] in ("stale", "interrupted") else ""
        table.append([row["stage"], row["state"] + flag, row["rows_in"], row["rows_out"], row["rows_rejected"], rejected, tokens, row["wall_s"]])
    headers = ["stage", "state", "in", "out", "rejected", "reasons", "tokens in→out per model", "wall s"]
    notes = [row["stage"] for row in rows if row["state"] in ("stale", "interrupted")]
    footer = f"\n⚠ stale or interrupted: {', '.join(notes)}; rerun the job to bring them up to date" if notes else ""
    undecided = {row["stage"]: row["why"] for row in rows if "why" in row}
    if undecided:
        footer += "\nundecided: complete, but whether the job changed since cannot be decided on this machine:"
        footer += "".join(f"\n  {', '.join(stages)}: {reason}" for stages, reason in group_by_reason(undecided))
    return format_table(headers, table, right=(2, 3, 4, 7)) + footer


def render_profile(profile: dict[str, Any]) -> str:
    width = terminal_width()
    parts = [_profile_header(profile)]
    table = []
    for column in profile["columns"]:
        table.append([column["name"], column["type"], column["role"], column["nulls"], _distribution(column)])
    if table:
        parts.append(format_table(["column", "type", "role", "nulls", "distribution"], table, right=(3,)))
    parts += _render_samples(profile["samples"], width)
    return "\n\n".join(parts)


def render_rejects(result: dict[str, Any]) -> str:
    width = terminal_width()
    head = f"stage {result['stage']}: {result['rows']} rejected rows in {result['files']} files"
    parts = [head]
    if result["by_reason"]:
        parts.append(format_table(["reason", "rows"], list(result["by_reason"].items()), right=(1,)))
    if result["reason"] or result["where"]:
        filters = " and ".join(filter(None, [result["reason"] and f"reason = {result['reason']}", result["where"]]))
        parts.append(f"{result['matched']} rows where {filters}")
    parts += _render_samples(result["samples"], width)
    return "\n\n".join(parts)


def render_trace(trace: dict[str, Any]) -> str:
    width = terminal_width()
    lines = [
        f"trace of {trace['id']}: {trace['shown_rows']} rows in its line ({trace['family_rows']} rows descend from seed {', '.join(trace['seed_ids']) or '-'})"
    ]
    previous: dict[str, dict] = {}
    for step in trace["steps"]:
        marker = {"self": "●", "ancestor": "↑", "descendant": "↓"}[step["relation"]]
        status = f"REJECTED {step['reject_reason']}" if step["status"] == "rejected" else "kept"
        indent = "  " * max(0, step["depth"] - min(s["depth"] for s in trace["steps"]))
        lines.append(f"\n{indent}{marker} [{step['stage']}] {step['id']}  {status}  (parent {step['parent_id'] or '-'})")
        if step["source_id"] is not None or step["origin"] is not None:
            record = f"source_id {one_line(step['source_id'], 60)}  origin {one_line(step['origin'], width - len(indent) - 40)}"
            lines.append(f"{indent}    record: {record}")
        if step["reject_detail"]:
            lines.append(f"{indent}    reject detail: {one_line(step['reject_detail'], width - len(indent) - 20)}")
        # A row passing through several stages repeats its columns: show only what each stage changed.
        earlier = previous.get(step["id"], {})
        for name, value in step["columns"].items():
            if name in earlier and earlier[name] == value:
                continue
            label = f"{indent}    {name}: "
            lines.append(label + wrap_value(value, max(30, width - len(label)), " " * len(label)))
        previous[step["id"]] = step["columns"]
    return "\n".join(lines)


def _profile_header(profile: dict[str, Any]) -> str:
    manifest = profile["manifest"]
    head = f"stage {profile['stage']}: {profile['rows']} rows in {profile['files']} files"
    if profile["where"]:
        head += f" where {profile['where']}"
    if manifest:
        rejected = ", ".join(f"{reason} {n}" for reason, n in (manifest.get("rejected") or {}).items()) or "none"
        head += f"\nmanifest: {manifest.get('rows_in')} in, {manifest.get('rows_out')} out, rejected: {rejected}"
    return head


def _distribution(column: dict[str, Any]) -> str:
    if column["role"] == "category":
        total = sum(entry["count"] for entry in column["top"]) + column["other"]
        shown = ", ".join(f"{_category_value(entry['value'])} {100 * entry['count'] / max(total, 1):.0f}%" for entry in column["top"][:6])
        more = column["distinct"] - min(6, len(column["top"]))
        return shown + (f", +{more} more" if more > 0 else "")
    if column["role"] == "lineage":
        return f"≈{column['distinct_approx']} distinct"
    if column["role"] == "json":
        return f"JSON objects; their fields below ({len(column['fields'])})" if column["fields"] else "JSON objects"
    stats = column.get("stats")
    if not stats or stats.get("min") is None:
        return ""
    measure = "" if column["role"] == "numeric" else "len "
    spark = sparkline([entry["count"] for entry in column.get("histogram", [])])
    return f"{measure}min {stats['min']} p50 {stats['p50']} p90 {stats['p90']} max {stats['max']}  {spark}"


def _category_value(value: Any) -> str:
    return one_line(value, 20) if value != "" else '""'


def _render_samples(samples: list[dict[str, Any]], width: int) -> list[str]:
    parts = []
    for index, row in enumerate(samples, 1):
        lines = [f"── sample {index}/{len(samples)} " + "─" * max(0, min(width, 100) - 16)]
        label_width = min(18, max(len(name) for name in row) + 1)
        for name, value in row.items():
            label = f"{name}:".ljust(label_width) + " "
            lines.append(label + wrap_value(value, max(30, width - len(label)), " " * len(label)))
        parts.append("\n".join(lines))
    return parts
