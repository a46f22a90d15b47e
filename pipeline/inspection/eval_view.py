"""`synthmix eval`'s result as terminal tables, and as a section of `report.html`.

Renders the dictionary `synthmix.pipeline.inspection.evaluation.evaluate_run` returns (what `--json` prints), so the
terminal, the report and scripts see the same numbers. A filter whose interval of kept-minus-
rejected accuracy does not lie above zero is marked `!`: the probes give no evidence it helps.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from synthmix.pipeline.inspection.evaluation import evaluate_run
from synthmix.pipeline.inspection.generation_cost import kept_line, stages_line
from synthmix.pipeline.inspection.terminal_view import format_table

NO_PROBES = "no probe rows in this run: add a `probes` stage before `answer` and a `probe_exit` stage after the last filter (docs/recipe.md, Probes)"
MARK = "!"
MARK_NOTE = f"{MARK} the 95% interval of kept-minus-rejected accuracy does not lie above zero: no evidence this filter helps"


def render_eval(result: dict[str, Any]) -> str:
    """The evaluation as text: accuracy by model and domain and by set, the filters, the critique
    AUC; then how the critics did on rows with a known verdict."""
    measured = _render_critics(result)
    if not result["probes"]:
        return measured or NO_PROBES
    parts = [
        (
            f"{result['probes']} probes answered in stage '{result['answer_stage']}' ({result['failed_samples']} of their samples failed); "
            f"kept after every filter: {result['survivors_are']}."
        ),
        "Accuracy with Wilson 95% intervals; lift in percentage points with Newcombe's 95% interval.",
        "",
        format_table(*_accuracy_table(result["by_model_domain"], ("answer_model", "domain"), ("model", "domain"))),
        "",
        format_table(*_accuracy_table(result["by_set"], ("set",), ("probe set",))),
        "",
        format_table(*_filter_table(result["filters"])) if result["filters"] else "no filter stage saw a probe",
        "",
        f"precision: wrong among rejected; recall: rejected among wrong. {MARK_NOTE}",
        _auc_line(result["critique_auc"]),
        _code_line(result["code_judged_by"]),
        kept_line(result["generation_cost"]),
        stages_line(result["generation_cost"]),
    ]
    return "\n".join(parts) + ("\n\n" + measured if measured else "")


def _render_critics(result: dict[str, Any]) -> str:
    """Per critique stage: AUC per signal and set, the min_score table; the filters on judged responses."""
    parts = []
    for critic in result.get("critics", []):
        parts += [
            f"Critique '{critic['stage']}' on {critic['rows']} rows with a known verdict (judged responses, and answered probes judged by their reference).",
            "AUC: how often a good response scores above a bad one (0.5 is chance), with its 95% interval; "
            "stage = critique_score with the pairs its checks rejected ranked last.",
            "",
            format_table(*_critic_auc_table(critic)),
            "",
            format_table(*_threshold_table(critic["thresholds"])),
            "",
        ]
    if result.get("judged_filters"):
        parts += [
            "Filters on the judged responses (good = the known verdict):",
            format_table(*_filter_table(result["judged_filters"], good_words=True)),
            f"precision: bad among rejected; recall: rejected among bad. {MARK_NOTE.replace('accuracy', 'good share')}",
        ]
    return "\n".join(parts).rstrip()


def format_auc(value: dict[str, Any]) -> str:
    """An AUC as "0.812 [0.751-0.862] n=240", or "-" where it needs good and bad rows."""
    if value["estimate"] is None:
        return f"- n={value['n']}" if value["n"] else "-"
    return f"{value['estimate']:.3f} [{value['low']:.3f}-{value['high']:.3f}] n={value['n']}"


def _critic_auc_table(critic: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[int]]:
    signals = critic["signals"]
    headers = ["set", "good", "bad", *signals]
    rows = [[group, values["good"], values["bad"], *(format_auc(values[signal]) for signal in signals)] for group, values in critic["auc"].items()]
    return headers, rows, [1, 2]


def _threshold_table(thresholds: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]], list[int]]:
    headers = ["min_score", "kept", "kept share", "precision (good among kept)", "recall (kept among good)"]
    rows = [
        [entry["min_score"], entry["kept"], f"{100 * entry['kept_share']:.1f}%", format_proportion(entry["precision"]), format_proportion(entry["recall"])]
        for entry in thresholds
    ]
    return headers, rows, [0, 1, 2]


def eval_section(run_dir: Path) -> str:
    """The report's section on probes (HTML); empty for a run without probes."""
    result = evaluate_run(Path(run_dir))
    critics = "".join(
        f"<h3>Critique {escape(critic['stage'])}: AUC per signal</h3>"
        + _html_table(*_critic_auc_table(critic))
        + _html_table(*_threshold_table(critic["thresholds"]))
        for critic in result.get("critics", [])
    )
    if not result["probes"]:
        return f"<h2>Critics</h2>{critics}" if critics else ""
    tables = [
        _html_table(*_accuracy_table(result["by_model_domain"], ("answer_model", "domain"), ("model", "domain"))),
        _html_table(*_accuracy_table(result["by_set"], ("set",), ("probe set",))),
    ]
    if result["filters"]:
        tables.append(_html_table(*_filter_table(result["filters"])))
    notes = [
        f"precision: wrong among rejected; recall: rejected among wrong. {MARK_NOTE}",
        _auc_line(result["critique_auc"]),
        _code_line(result["code_judged_by"]),
    ]
    return (
        f'<h2>Probes</h2><p class="note">{result["probes"]} probes with known answers went through the filters '
        "(accuracy with Wilson 95% intervals; lift in points with Newcombe's).</p>"
        + "".join(tables)
        + "".join(f'<p class="note">{escape(note)}</p>' for note in notes)
        + critics
    )


def format_proportion(value: dict[str, Any]) -> str:
    """A proportion as "62.5% [30.6-86.3] 5/8", or "-" with nothing to count."""
    if not value["n"]:
        return "-"
    return f"{100 * value['p']:.1f}% [{100 * value['low']:.1f}-{100 * value['high']:.1f}] {value['k']}/{value['n']}"


def format_difference(value: dict[str, Any]) -> str:
    """A difference as "+12.5 [-3.1, +27.4]" in percentage points, or "-"."""
    if value["estimate"] is None:
        return "-"
    return f"{100 * value['estimate']:+.1f} [{100 * value['low']:+.1f}, {100 * value['high']:+.1f}]"


def _accuracy_table(groups: list[dict[str, Any]], keys: tuple[str, ...], labels: tuple[str, ...]) -> tuple[list[str], list[list[Any]], list[int]]:
    headers = [*labels, "probes", "all sampled answers", "kept after every filter", "lift (points)", "not judged"]
    rows = [
        [
            *(group[key] for key in keys),
            group["probes"],
            format_proportion(group["samples"]),
            format_proportion(group["survivors"]),
            format_difference(group["lift"]),
            group["not_judged"],
        ]
        for group in groups
    ]
    return headers, rows, [len(keys), len(keys) + 4]


def _filter_table(filters: list[dict[str, Any]], *, good_words: bool = False) -> tuple[list[str], list[list[Any]], list[int]]:
    share = "good" if good_words else "accuracy"
    headers = ["filter", "in", "kept", "rejected", f"{share} kept", f"{share} rejected", "precision", "recall", "kept - rejected", "verdict"]
    rows = [
        [
            entry["stage"],
            entry["in"],
            entry["kept"],
            entry["rejected"],
            format_proportion(entry["kept_accuracy"]),
            format_proportion(entry["rejected_accuracy"]),
            format_proportion(entry["precision"]),
            format_proportion(entry["recall"]),
            format_difference(entry["kept_minus_rejected"]),
            f"{MARK} {entry['verdict']}" if entry["verdict"] in ("unclear", "hurts") else entry["verdict"],
        ]
        for entry in filters
    ]
    return headers, rows, [1, 2, 3]


def _auc_line(auc: dict[str, Any] | None) -> str:
    if auc is None:
        return "critique_score AUC: no critique stage scored a probe"
    if auc["estimate"] is None:
        return f"critique_score AUC ({auc['stage']}): needs right and wrong answers; scored {auc['right']} right, {auc['wrong']} wrong"
    return (
        f"critique_score AUC ({auc['stage']}, right vs wrong answers): {auc['estimate']:.3f} "
        f"[{auc['low']:.3f}-{auc['high']:.3f}] over {auc['right']} right and {auc['wrong']} wrong"
    )


def _code_line(verify_stage: str | None) -> str:
    if verify_stage is None:
        return "code probes: not judged (the run has no verify_code stage to run their tests)"
    return f"code probes: judged by their tests as '{verify_stage}' ran them; its own row leaves them out"


def _html_table(headers: list[str], rows: list[list[Any]], right: list[int]) -> str:
    def cell(tag: str, index: int, value: Any) -> str:
        style = ' style="text-align:right"' if index in right else ""
        return f"<{tag}{style}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, header) for i, header in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
