"""Hand-drawn SVG charts: labels never overlap, legends wrap inside the chart, numbers read plainly."""

import re

import pytest

from synthmix.pipeline.inspection.svg_charts import CHAR_WIDTH, _format, histogram_chart, stacked_bar_chart

TEXT = re.compile(r'<text x="([\d.]+)" y="([\d.]+)"(?: text-anchor="(\w+)")?>([^<]*)</text>')
WIDTH = re.compile(r'<svg [^>]*width="(\d+)"')


def label_boxes(svg):
    """(left, right, y, text) of every text element, from the chart's own width estimate."""
    boxes = []
    for x, y, anchor, text in TEXT.findall(svg):
        width = CHAR_WIDTH * len(text.replace("&amp;", "&").replace("&lt;", "<"))
        left = {"middle": float(x) - width / 2, "end": float(x) - width}.get(anchor, float(x))
        boxes.append((left, left + width, float(y), text))
    return boxes


def overlapping(boxes):
    rows = {}
    for box in boxes:
        rows.setdefault(box[2], []).append(box)
    return [(a[3], b[3]) for row in rows.values() for a, b in zip(sorted(row), sorted(row)[1:]) if a[1] > b[0]]


# The report: 20 bins of a length around 2,000 characters, edges like 1.79e+03.
WIDE_EDGES = [{"lo": 1790.5 + 12.3 * i, "hi": 1790.5 + 12.3 * (i + 1), "count": i % 7 + 1} for i in range(20)]
FINE_EDGES = [{"lo": round(0.9 + 0.0025 * i, 4), "hi": round(0.9 + 0.0025 * (i + 1), 4), "count": 3} for i in range(40)]
VALUES = [{"lo": value, "hi": value, "count": value % 5, "rejected": value % 2} for value in range(1, 31)]


@pytest.mark.parametrize("bins", [WIDE_EDGES, FINE_EDGES, VALUES], ids=["wide-edges", "fine-edges", "one-bin-per-value"])
@pytest.mark.parametrize("width", [720, 420])
def test_histogram_axis_labels_do_not_overlap_and_are_plain_numbers(bins, width):
    svg = histogram_chart(bins, x_label="characters", width=width)
    boxes = label_boxes(svg)
    assert overlapping(boxes) == []
    assert all(0 <= left and right <= width for left, right, _, _ in boxes)
    assert not any("e+" in text or "e-" in text for *_, text in boxes)
    axis = [text for _, _, y, text in boxes if text not in ("characters",) and y > 150]
    assert len(axis) >= 3, "the axis keeps enough labels to be read"


def test_a_histogram_with_rejected_rows_stacks_them_and_names_both_in_a_legend():
    svg = histogram_chart(VALUES, x_label="value")
    assert "kept" in svg and "rejected" in svg
    assert svg.count('fill="#e15759"') == sum(1 for entry in VALUES if entry["rejected"]) + 1  # bars + legend swatch


def test_a_long_legend_wraps_onto_rows_inside_the_chart_and_above_the_bars():
    reasons = ["near_duplicate", "critique_low", "quality_low", "inconsistent", "parse_error", "contaminated", "lang", "too_short", "llm_error"]
    svg = stacked_bar_chart(["critique", "quality"], [{reason: 3 + i for i, reason in enumerate(reasons)}, {"lang": 40}], width=420)
    width = int(WIDTH.search(svg).group(1))
    boxes = label_boxes(svg)
    legend = [box for box in boxes if any(box[3].startswith(reason + " (") for reason in reasons)]
    assert len(legend) == len(reasons), "every reason is in the legend, with its total"
    assert all(right <= width for _, right, _, _ in legend)
    assert len({y for _, _, y, _ in legend}) > 1, "the legend took more than one row"
    first_bar = min(float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="18"', svg))
    assert max(y for _, _, y, _ in legend) < first_bar
    assert overlapping(boxes) == []


def test_numbers_are_written_for_reading():
    assert [_format(v) for v in (1790.5, 0.9525, 12, 12345, 2_500_000, 3.25, 0.0001)] == ["1790", "0.9525", "12", "12k", "2.5M", "3.25", "0.0001"]
