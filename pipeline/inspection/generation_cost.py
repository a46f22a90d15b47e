"""What a run's generation cost: per stage and model, and per pair kept at the end.

Read from the stage manifests (their `llm` entries) and, for the kept pairs' domains, one column
of the last stage's files; nothing else is read. Per stage and model:

- `requests`, `prompt_tokens`, `generated_tokens`: counted over the stage's committed rows;
- `engine_s`: seconds the model's replicas had requests to answer during the stage (generation;
  the engine's start-up apart, in `startup_s`), summed over replicas; absent where the engine
  was not the job's (per-stage engines, `openai` servers);
- `dtype`: the number format the engine computed in.

Kept at the end: the rows of the job's last stage before `tokenize`/`mix`, plus the probes a
`probe_exit` stage set aside (they are pairs the recipe kept; the eval measures them). Generated
tokens per kept pair divide every stage's generated tokens by those rows. Per domain, a stage's
tokens count under the `domain` of the rows they were generated for: from `answer` on that is
the pair's own domain; instructions count under their seed's domain until `synthesize` labels
them (math and code move then), so the per-domain split of `synthesize` is approximate.
`synthmix inspect RUN` prints it under the funnel, `synthmix report` as a section, and
`synthmix eval` in one line.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.inspection.run_contents import job_stage_kinds, stage_manifest
from synthmix.pipeline.inspection.terminal_view import format_table
from synthmix.pipeline.storage import parquet_schema, read_parquet
from synthmix.pipeline.store import BY_DOMAIN, StageDir

# Stage kinds that turn kept pairs into shards: the pairs are counted before them.
SHARD_KINDS = frozenset({"tokenize", "mix"})
PROBE_EXIT_KIND = "probe_exit"


def generation_cost(run_dir: Path) -> dict[str, Any]:
    """The run's generation cost, JSON-ready (see the module docstring for every figure)."""
    run_dir = Path(run_dir)
    stages = job_stage_kinds(run_dir)
    per_stage, by_domain = [], Counter()
    for name, _ in stages:
        for model, entry in ((stage_manifest(run_dir, name) or {}).get("llm") or {}).items():
            per_stage.append(_stage_entry(name, model, entry))
            for domain, counts in (entry.get(BY_DOMAIN) or {}).items():
                by_domain[domain] += counts.get("generated_tokens", 0)
    generated = sum(entry["generated_tokens"] for entry in per_stage)
    kept = _kept_rows(run_dir, stages)
    result: dict[str, Any] = {"stages": per_stage, "generated_tokens": generated, "kept": kept, "generated_tokens_per_kept": None, "by_domain": []}
    if kept is None or not kept["rows"]:
        return result
    result["generated_tokens_per_kept"] = round(generated / kept["rows"], 1)
    for domain in sorted(set(by_domain) | set(kept["by_domain"])):
        rows = kept["by_domain"].get(domain, 0)
        tokens = by_domain.get(domain, 0)
        result["by_domain"].append(
            {"domain": domain, "generated_tokens": tokens, "kept": rows, "generated_tokens_per_kept": round(tokens / rows, 1) if rows else None}
        )
    return result


def _stage_entry(stage: str, model: str, entry: dict[str, Any]) -> dict[str, Any]:
    engine_s = entry.get("engine_s")
    generated = entry.get("generated_tokens", 0)
    return {
        "stage": stage,
        "model": model,
        "dtype": entry.get("dtype"),
        "requests": entry.get("requests", 0),
        "prompt_tokens": entry.get("prompt_tokens", 0),
        "generated_tokens": generated,
        "engine_s": engine_s,
        "startup_s": entry.get("startup_s"),
        "generated_per_engine_s": round(generated / engine_s, 1) if engine_s else None,
    }


def final_stage(stages: list[tuple[str, str]]) -> str | None:
    """The job's last stage before `tokenize`/`mix`: its rows are the pairs the recipe kept
    (the probes a `probe_exit` set aside apart); None for a job of shard stages only."""
    before_shards = [name for name, kind in stages if kind not in SHARD_KINDS]
    return before_shards[-1] if before_shards else None


def _kept_rows(run_dir: Path, stages: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The pairs kept at the end, per domain; None when the last stage has not run."""
    end = final_stage(stages)
    if end is None:
        return None
    before_shards = [(name, kind) for name, kind in stages if kind not in SHARD_KINDS]
    end_dir = StageDir(run_dir, end)
    if end_dir.manifest() is None:
        return None
    domains = Counter()
    for path in end_dir.part_files():
        domains.update(_domains(path))
    counted = [end]
    exits = [name for name, kind in before_shards if kind == PROBE_EXIT_KIND]
    for name in exits:
        for path in StageDir(run_dir, name).reject_files():
            domains.update(_domains(path, reason=RejectReason.PROBE.value))
        if name != end:
            counted.append(name)
    return {"stages": counted, "rows": sum(domains.values()), "by_domain": dict(sorted(domains.items()))}


def _domains(path: Path, reason: str | None = None) -> Counter:
    """Rows of a part file per domain ('' where it has none); with `reason`, only rejects of it."""
    names = parquet_schema(path).names
    wanted = [name for name in (contracts.DOMAIN, contracts.REJECT_REASON) if name in names]
    table = read_parquet(path, columns=wanted)
    if reason is not None:
        table = table.filter(pc.equal(table[contracts.REJECT_REASON], reason))
    if contracts.DOMAIN not in table.column_names:
        return Counter({"": table.num_rows})
    return Counter(domain or "" for domain in table[contracts.DOMAIN].to_pylist())


# --- views ------------------------------------------------------------------------------------------
HEADERS = ["stage", "model", "dtype", "requests", "prompt tokens", "generated tokens", "engine s", "start-up s", "generated tok/engine s"]
RIGHT = [3, 4, 5, 6, 7, 8]


def _cells(entry: dict[str, Any]) -> list[Any]:
    return [
        entry["stage"],
        entry["model"],
        entry["dtype"] or "-",
        entry["requests"],
        entry["prompt_tokens"],
        entry["generated_tokens"],
        "-" if entry["engine_s"] is None else f"{entry['engine_s']:.1f}",
        "-" if entry["startup_s"] is None else f"{entry['startup_s']:.1f}",
        "-" if entry["generated_per_engine_s"] is None else f"{entry['generated_per_engine_s']:.1f}",
    ]


def kept_line(cost: dict[str, Any]) -> str:
    """One line: generated tokens per kept pair, and what counts as kept."""
    kept = cost["kept"]
    if kept is None:
        return f"generated tokens: {cost['generated_tokens']}; no pairs kept yet (the job's last stage has not run)"
    where = " and the probes set aside by ".join(f"'{name}'" for name in kept["stages"])
    if not kept["rows"]:
        return f"generated tokens: {cost['generated_tokens']}; no pair kept after {where}"
    domains = ", ".join(f"{entry['domain'] or '(none)'} {entry['generated_tokens_per_kept']:g}" for entry in cost["by_domain"] if entry["kept"])
    return (
        f"generated tokens per kept pair: {cost['generated_tokens_per_kept']:g} ({cost['generated_tokens']} tokens, {kept['rows']} pairs kept after "
        f"{where}); per domain: {domains}"
    )


def stages_line(cost: dict[str, Any]) -> str:
    """One line: each stage's generated tokens and engine seconds, per model."""
    parts = []
    for entry in cost["stages"]:
        engine = "" if entry["engine_s"] is None else f", {entry['engine_s']:.0f} engine s"
        parts.append(f"{entry['stage']} {entry['generated_tokens']} ({entry['model']}{engine})")
    return "generated tokens by stage: " + ("; ".join(parts) or "none")


def render_cost(cost: dict[str, Any]) -> str:
    """The cost as a terminal table and a line per kept pair."""
    if not cost["stages"]:
        return "no stage of this run called a model"
    return format_table(HEADERS, [_cells(entry) for entry in cost["stages"]], right=RIGHT) + "\n" + kept_line(cost)


def cost_section(run_dir: Path) -> str:
    """The report's section on generation cost (HTML); empty for a run that called no model."""
    cost = generation_cost(run_dir)
    if not cost["stages"]:
        return ""
    head = "".join(f"<th>{escape(name)}</th>" for name in HEADERS)
    numeric = ' class="n"'
    body = "".join(
        "<tr>" + "".join(f"<td{numeric if index in RIGHT else ''}>{escape(str(cell))}</td>" for index, cell in enumerate(_cells(entry))) + "</tr>"
        for entry in cost["stages"]
    )
    note = (
        "engine s: seconds the model's engines had requests to answer in the stage (generation), summed over replicas; "
        "start-up apart. Per domain, tokens count under the domain of the rows they were generated for."
    )
    return f'<h2>Generation cost</h2><table><tr>{head}</tr>{body}</table><p>{escape(kept_line(cost))}</p><p class="note">{escape(note)}</p>'
