"""The run's diversity, task mix and evolution tables (pipeline/inspection/diversity.py) as
terminal text for `synthmix eval`, and as a section of `report.html`."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from synthmix.pipeline.inspection.diversity import diversity_of_run
from synthmix.pipeline.inspection.eval_view import _html_table
from synthmix.pipeline.inspection.run_contents import RunInspectionError
from synthmix.pipeline.inspection.terminal_view import format_table

TOP_TYPES = 4
DIVERSITY_NOTE = (
    "opening: the first two words (three characters of Chinese) most often used, and its share; distinct-n: distinct word n-grams "
    "over all (Han characters count as words); compression: bytes over zlib bytes (higher repeats more; grows with the set's size); "
    "clusters: TF-IDF character 2-4-grams, average linkage at cosine distance 0.75; effective: exp of the entropy of cluster sizes; "
    "largest: the biggest cluster's share"
)
EVOLUTION_NOTE = (
    "offered: rewrites the evolve stage made (kept or rejected); checked: harder rewrites the difficulty stage set against their parents; "
    "changes are the rewrite's less its parent's, mean and 95% t interval: agreement of sampled answers in points, the judge's accuracy "
    "score (critique_score, 0-1) in points of P(yes), answer length as a ratio (geometric mean); all: every rewrite checked, kept: those it kept"
)


def render_diversity(data: dict[str, Any]) -> str:
    """The diversity tables, the task mix and the evolution table as text; empty for a run
    without instructions (a probe benchmark)."""
    if not data["sets"]:
        return ""
    parts = []
    for entry in data["sets"]:
        parts += [f"diversity of '{entry['set']}'", format_table(*_diversity_table(entry["groups"])), ""]
    parts.append(DIVERSITY_NOTE)
    if data["task_mix"]:
        parts += ["", f"task mix of '{data['task_mix']['stage']}' ({data['task_mix']['kept']} instructions kept)", format_table(*_mix_table(data["task_mix"]))]
    if data["evolution"]:
        evolution = data["evolution"]
        parts += ["", f"evolution in '{evolution['stage']}'", format_table(*_evolution_table(evolution)), EVOLUTION_NOTE]
    return "\n".join(parts)


def diversity_section(run_dir: Path) -> str:
    """The report's section on diversity, the task mix and evolution (HTML); empty for a run
    without instructions or without a recorded job."""
    try:
        data = diversity_of_run(Path(run_dir))
    except RunInspectionError:
        return ""  # no job.yaml: the stages' kinds are unknown
    if not data["sets"]:
        return ""
    parts = ["<h2>Diversity of the instructions</h2>", f'<p class="note">{escape(DIVERSITY_NOTE)}</p>']
    for entry in data["sets"]:
        parts.append(f"<h3>{escape(entry['set'])}</h3>{_html_table(*_diversity_table(entry['groups']))}")
    if data["task_mix"]:
        parts.append(f"<h3>task mix: asked, planned and achieved</h3>{_html_table(*_mix_table(data['task_mix']))}")
    if data["evolution"]:
        parts.append(f"<h3>evolution per operation</h3>{_html_table(*_evolution_table(data['evolution']))}")
        parts.append(f'<p class="note">{escape(EVOLUTION_NOTE)}</p>')
    return "".join(parts)


def _diversity_table(groups: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]], list[int]]:
    headers = ["group", "rows", "task types", "top types", "opening", "distinct-1", "distinct-2", "compression", "clusters", "effective", "largest"]
    rows = []
    for group in groups:
        clusters = group["clusters"] or {}
        types = group["task_types"]
        top = ", ".join(f"{name} {100 * n / group['rows']:.0f}%" for name, n in list(types.items())[:TOP_TYPES])
        opening = f"{group['openings'][0][0]!r} {100 * group['top_opening_share']:.0f}%" if group["openings"] else "-"
        rows.append(
            [
                group["group"],
                group["rows"],
                len(types),
                top,
                opening,
                f"{group['distinct_1']:.2f}",
                f"{group['distinct_2']:.2f}",
                f"{group['compression_ratio']:.2f}",
                clusters.get("clusters", "-"),
                f"{clusters['effective']:.1f}" if clusters else "-",
                f"{100 * clusters['largest_share']:.0f}%" if clusters else "-",
            ]
        )
    return headers, rows, [1, 2, 5, 6, 7, 8, 9, 10]


def _mix_table(mix: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[int]]:
    names = sorted(set(mix["asked"]) | set(mix["planned"]) | set(mix["achieved"]) | set(mix["shards"]), key=lambda name: (-mix["asked"].get(name, 0), name))
    headers = ["task type", "asked", "planned", "achieved", "achieved - asked", "in the shards"]

    def share(table: dict[str, float], name: str) -> str:
        return f"{100 * table[name]:.0f}%" if name in table else "-"

    rows = [
        [
            name,
            share(mix["asked"], name),
            share(mix["planned"], name),
            share(mix["achieved"], name),
            _points(mix["achieved"].get(name, 0) - mix["asked"].get(name, 0)),
            share(mix["shards"], name),
        ]
        for name in names
    ]
    return headers, rows, [1, 2, 3, 4, 5]


def _evolution_table(evolution: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[int]]:
    headers = [
        "operation",
        "offered",
        "kept",
        "evolve rejects",
        "checked",
        "harder",
        "not harder",
        "unmeasured",
        "agreement",
        "judge accuracy",
        "answer length",
    ]
    entries = [*evolution["operations"]]
    if evolution.get("difficulty_all"):
        offered = sum(entry["offered"] for entry in entries)
        entries.append(
            {
                "operation": "all",
                "offered": offered,
                "kept": sum(entry["kept"] for entry in entries),
                "rejected_by_reason": {},
                "difficulty": evolution["difficulty_all"],
            }
        )
    rows = []
    for entry in entries:
        difficulty = entry["difficulty"] or {}
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(entry["rejected_by_reason"].items(), key=lambda item: -item[1]))
        kept = f"{entry['kept']} ({100 * entry['kept'] / entry['offered']:.0f}%)" if entry["offered"] else "-"
        rows.append(
            [
                entry["operation"],
                entry["offered"],
                kept,
                reasons or "-",
                difficulty.get("checked", "-"),
                difficulty.get("harder", "-"),
                difficulty.get("not_harder", "-"),
                difficulty.get("unmeasured", "-"),
                _change(difficulty, "agreement", scale=100),
                _change(difficulty, "judged_accuracy", scale=1),
                _change(difficulty, "answer_ratio", scale=1, ratio=True),
            ]
        )
    return headers, rows, [1, 2, 4, 5, 6, 7]


def _change(difficulty: dict[str, Any], measure: str, *, scale: float, ratio: bool = False) -> str:
    """One measure's change as text: all: -12.5 [-20.1, -4.9] n=8; kept: ..."""
    parts = []
    for label in ("all", "kept"):
        value = (difficulty.get(f"change_{label}") or {}).get(measure) or {}
        if not value.get("n"):
            continue
        if ratio:
            parts.append(f"{label}: x{value['estimate']:.2f} [{value['low']:.2f}, {value['high']:.2f}] n={value['n']}")
        else:
            parts.append(f"{label}: {scale * value['estimate']:+.1f} [{scale * value['low']:+.1f}, {scale * value['high']:+.1f}] n={value['n']}")
    return "; ".join(parts) or "-"


def _points(difference: float) -> str:
    return f"{100 * difference:+.0f}"
