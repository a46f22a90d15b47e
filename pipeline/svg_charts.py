"""Small static SVG charts drawn by hand, so an HTML report needs no script, font or network.

Each function returns one `<svg>` element as text; every label is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
KEPT_COLOR = "#59a14f"
FONT = "font-family:system-ui,sans-serif;font-size:12px"
LABEL_WIDTH = 170
BAR_HEIGHT = 20
CHART_WIDTH = 640


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def bar_chart(labels: Sequence[str], values: Sequence[float], *, unit: str = "") -> str:
    """Horizontal bars, one per label, with the value written after each bar."""
    return stacked_bar_chart(labels, [{unit or "value": value} for value in values], colors={unit or "value": color_of(0)}, legend=False)


def stacked_bar_chart(
    labels: Sequence[str], segments: Sequence[Mapping[str, float]], *, colors: Mapping[str, str] | None = None, legend: bool = True
) -> str:
    """Horizontal bars split into named segments (e.g. kept, then each reject reason), with a legend."""
    names = list(dict.fromkeys(name for row in segments for name in row))
    colors = {**{name: color_of(i) for i, name in enumerate(names)}, **(colors or {})}
    top = max((sum(row.values()) for row in segments), default=0) or 1
    plot_width = CHART_WIDTH - LABEL_WIDTH - 80
    legend_height = 22 if legend and names else 0
    height = legend_height + len(labels) * (BAR_HEIGHT + 6) + 6
    parts = [_open(CHART_WIDTH, height)]
    if legend_height:
        x = LABEL_WIDTH
        for name in names:
            parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colors[name]}"/>')
            parts.append(f'<text x="{x + 16}" y="14">{escape(str(name))}</text>')
            x += 24 + 7 * len(str(name))
    for index, (label, row) in enumerate(zip(labels, segments)):
        y = legend_height + 6 + index * (BAR_HEIGHT + 6)
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end">{escape(_cut(str(label), 26))}</text>')
        x = float(LABEL_WIDTH)
        for name, value in row.items():
            width = plot_width * value / top
            if width > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{max(width, 1):.1f}" height="{BAR_HEIGHT}" fill="{colors[name]}">'
                    f"<title>{escape(str(name))}: {_format(value)}</title></rect>"
                )
            x += width
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{_format(sum(row.values()))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_chart(bins: Sequence[Mapping], *, x_label: str) -> str:
    """Vertical bars over value ranges (`lo`, `hi`, `count`; `hi` None means 'and above')."""
    width, height, left, bottom = CHART_WIDTH, 220, 50, 40
    plot_width, plot_height = width - left - 10, height - bottom - 10
    top = max((entry["count"] for entry in bins), default=0) or 1
    step = plot_width / max(len(bins), 1)
    parts = [_open(width, height)]
    parts.append(f'<line x1="{left}" y1="{10 + plot_height}" x2="{width - 10}" y2="{10 + plot_height}" stroke="#888"/>')
    parts.append(f'<text x="{left - 6}" y="18" text-anchor="end">{_format(top)}</text>')
    parts.append(f'<text x="{left - 6}" y="{10 + plot_height}" text-anchor="end">0</text>')
    label_every = max(1, len(bins) // 8)
    for index, entry in enumerate(bins):
        bar = plot_height * entry["count"] / top
        x = left + index * step
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{10 + plot_height - bar:.1f}" width="{max(step - 2, 1):.1f}" height="{bar:.1f}" '
            f'fill="{color_of(0)}"><title>{escape(_range(entry))}: {entry["count"]}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 24}" text-anchor="middle">{_format(entry["lo"])}</text>')
    parts.append(f'<text x="{left + plot_width / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="{FONT}">'


def _range(entry: Mapping) -> str:
    if entry["hi"] is None:
        return f"≥ {_format(entry['lo'])}"
    if entry["hi"] == entry["lo"]:
        return _format(entry["lo"])
    return f"{_format(entry['lo'])} – {_format(entry['hi'])}"


def _format(value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}"
    number = int(value)
    if abs(number) >= 10_000_000:
        return f"{number / 1e6:.0f}M"
    if abs(number) >= 100_000:
        return f"{number / 1e3:.0f}k"
    return str(number)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
