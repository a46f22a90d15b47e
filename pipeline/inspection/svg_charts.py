"""Small static SVG charts drawn by hand, so an HTML report needs no script, font or network.

Each function returns one `<svg>` element as text; every label is escaped. Text is laid out
from an estimate of its width (CHAR_WIDTH per character, wider than the average glyph of the
12 px sans-serif the charts use), so legends wrap onto new rows and axis labels are thinned
until none overlaps, whatever the labels are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
KEPT_COLOR = "#59a14f"
REJECTED_COLOR = "#e15759"
FONT = "font-family:system-ui,sans-serif;font-size:12px"
CHAR_WIDTH = 7.5  # estimated width of one character at 12 px, on the wide side
LABEL_CHARS = 28  # bar labels longer than this are cut with '…'
BAR_HEIGHT = 18
CHART_WIDTH = 720
SMALL_WIDTH = 420
LEGEND_ROW = 20


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def text_width(text: str) -> float:
    return CHAR_WIDTH * len(text)


def bar_chart(labels: Sequence[str], values: Sequence[float], *, unit: str = "", width: int = CHART_WIDTH) -> str:
    """Horizontal bars, one per label, with the value written after each bar."""
    name = unit or "value"
    return stacked_bar_chart(labels, [{name: value} for value in values], colors={name: color_of(0)}, legend=False, width=width)


def stacked_bar_chart(
    labels: Sequence[str],
    segments: Sequence[Mapping[str, float]],
    *,
    colors: Mapping[str, str] | None = None,
    legend: bool = True,
    legend_totals: bool = True,
    width: int = CHART_WIDTH,
) -> str:
    """Horizontal bars split into named segments (e.g. kept, then each reject reason), with a legend
    that wraps onto as many rows as its entries need; each entry names its segment's total over
    all bars unless `legend_totals` is off (bars that are stages of one funnel: a sum means nothing)."""
    names = list(dict.fromkeys(name for row in segments for name in row))
    colors = {**{name: color_of(i) for i, name in enumerate(names)}, **(colors or {})}
    totals = [sum(row.values()) for row in segments]
    top = max(totals, default=0) or 1
    label_width = min(LABEL_CHARS, max((len(str(label)) for label in labels), default=1)) * CHAR_WIDTH + 10
    value_width = text_width(_format(top)) + 10
    plot_width = max(40.0, width - label_width - value_width)
    legend_parts, legend_height = _legend(
        [(f"{name} ({_format(sum(row.get(name, 0) for row in segments))})" if legend_totals else str(name), colors[name]) for name in names] if legend else [],
        width,
    )
    height = legend_height + len(labels) * (BAR_HEIGHT + 6) + 6
    parts = [_open(width, height), *legend_parts]
    for index, (label, row) in enumerate(zip(labels, segments)):
        y = legend_height + 6 + index * (BAR_HEIGHT + 6)
        parts.append(f'<text x="{label_width - 6:.0f}" y="{y + 13}" text-anchor="end">{escape(_cut(str(label), LABEL_CHARS))}</text>')
        x = float(label_width)
        for name, value in row.items():
            bar = plot_width * value / top
            if bar > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{max(bar, 1):.1f}" height="{BAR_HEIGHT}" fill="{colors[name]}">'
                    f"<title>{escape(str(label))} · {escape(str(name))}: {value}</title></rect>"
                )
            x += bar
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{_format(totals[index])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_chart(bins: Sequence[Mapping], *, x_label: str, width: int = CHART_WIDTH, height: int = 200) -> str:
    """Vertical bars over value ranges (`lo`, `hi`, `count`; `hi` None means 'and above').

    Bins that also carry `rejected` are drawn kept (green) under rejected (red), with a legend.
    A bin with `lo` == `hi` is one value, labelled under its bar; ranges are labelled at their
    edges. Labels are spaced so that no two overlap.
    """
    split = any(entry.get("rejected") for entry in bins)
    legend_parts, legend_height = _legend([("kept", KEPT_COLOR), ("rejected", REJECTED_COLOR)] if split else [], width)
    totals = [entry["count"] + entry.get("rejected", 0) for entry in bins]
    top = max(totals, default=0) or 1
    left = text_width(_format(top)) + 12
    # Range bins end in a label on the last edge, centred on the plot's right end: leave it room.
    last_edge = bins[-1]["hi"] if bins and bins[-1]["hi"] not in (None, bins[-1]["lo"]) else None
    right, bottom = max(14.0, text_width(_format(last_edge)) / 2 + 4 if last_edge is not None else 0), 38
    plot_top = legend_height + 8
    plot_width, plot_height = width - left - right, height - legend_height - bottom - 8
    baseline = plot_top + plot_height
    step = plot_width / max(len(bins), 1)
    parts = [_open(width, height), *legend_parts]
    parts.append(f'<line x1="{left:.0f}" y1="{baseline}" x2="{width - right}" y2="{baseline}" stroke="#888"/>')
    parts.append(f'<text x="{left - 6:.0f}" y="{plot_top + 9}" text-anchor="end">{_format(top)}</text>')
    parts.append(f'<text x="{left - 6:.0f}" y="{baseline}" text-anchor="end">0</text>')
    for index, entry in enumerate(bins):
        x = left + index * step
        y = float(baseline)
        stack = [(entry["count"], KEPT_COLOR if split else color_of(0), "kept" if split else "rows")]
        if split:
            stack.append((entry.get("rejected", 0), REJECTED_COLOR, "rejected"))
        for count, color, name in stack:
            bar = plot_height * count / top
            if bar > 0:
                y -= bar
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{bar:.1f}" fill="{color}">'
                    f"<title>{escape(_range(entry))}: {count} {name}</title></rect>"
                )
    parts += _axis_labels(bins, left, step, baseline + 16)
    parts.append(f'<text x="{left + plot_width / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _axis_labels(bins: Sequence[Mapping], left: float, step: float, y: float) -> list[str]:
    """Labels under the bars: one per value for single-value bins, else the bin edges; every k-th,
    k the smallest that leaves a gap between neighbours."""
    if not bins:
        return []
    values = all(entry["hi"] == entry["lo"] for entry in bins)
    if values:
        marks = [(left + (i + 0.5) * step, _format(entry["lo"])) for i, entry in enumerate(bins)]
    else:
        marks = [(left + i * step, _format(entry["lo"])) for i, entry in enumerate(bins)]
        last = bins[-1]["hi"]
        marks.append((left + len(bins) * step, "" if last is None else _format(last)))
    widest = max(text_width(text) for _, text in marks) + 8
    every = max(1, math.ceil(widest / step))
    parts = []
    for index in range(0, len(marks), every):
        x, text = marks[index]
        if text:
            parts.append(f'<text x="{x:.1f}" y="{y:.0f}" text-anchor="middle">{escape(text)}</text>')
    return parts


def _legend(entries: Sequence[tuple[str, str]], width: int) -> tuple[list[str], int]:
    """Legend entries (text, color) flowed left to right into rows no wider than the chart."""
    if not entries:
        return [], 0
    parts, x, row = [], 6.0, 0
    for text, color in entries:
        entry_width = 18 + text_width(text) + 14
        if x > 6 and x + entry_width > width:
            x, row = 6.0, row + 1
        y = 4 + row * LEGEND_ROW
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x + 16:.0f}" y="{y + 10}">{escape(text)}</text>')
        x += entry_width
    return parts, (row + 1) * LEGEND_ROW + 4


def _open(width: int, height: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="{FONT}">'


def _range(entry: Mapping) -> str:
    if entry["hi"] is None:
        return f"≥ {_format(entry['lo'])}"
    if entry["hi"] == entry["lo"]:
        return _format(entry["lo"])
    return f"{_format(entry['lo'])} – {_format(entry['hi'])}"


def _format(value) -> str:
    """A number as a reader takes it in: 1800, 25k, 3.5M, 0.25, 0.0012; never scientific notation."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        if abs(value) >= 1000:
            return _format(round(value))
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.4f}".rstrip("0").rstrip(".")
    number = int(value)
    if abs(number) >= 1_000_000:
        return f"{number / 1e6:.1f}".rstrip("0").rstrip(".") + "M"
    if abs(number) >= 10_000:
        return f"{number / 1e3:.0f}k"
    return str(number)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
