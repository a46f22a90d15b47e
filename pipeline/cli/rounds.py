"""A job with `targets` or a `budget`, run in rounds over slices of its seed chunks.

    seeds (once, in the run dir)  ->  ROUND k: the slice's chunks as rounds/round-kk/seeds, the
    recipe up to the shard stages there  ->  drop near-duplicates of earlier rounds' pairs  ->
    measure kept pairs and spend  ->  size the next slice (pipeline/targets.py) or stop  ->
    the union of every round's pairs as the run dir's last pre-shard stage  ->  tokenize, mix once

Seed chunks are taken in id order (a content hash: a spread over every source, so the pilot's
yield stands for the rest), the same order on every resume. A round's folder is a run
directory of its own, so a killed round resumes through the runner's committed units;
`rounds.json` records each round's slice, status, kept pairs and spend, written atomically
after the round's pairs are in `accepted.parquet`, so a finished round is never redone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationError

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, JobConfig
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.graph import PlannedStage, build_graph
from synthmix.pipeline.inspection.generation_cost import SHARD_KINDS, generation_cost
from synthmix.pipeline.runner import Log, run_job, stderr_log
from synthmix.pipeline.stage import Stage
from synthmix.pipeline.storage import read_parquet
from synthmix.pipeline.store import StageDir, StageState, UnitCounts, read_json, write_atomic_json, write_atomic_parquet
from synthmix.pipeline.targets import KeptPair, RoundPlan, Spend, budget_shares, kept_amounts, pairs_to_keep, plan_next_round
from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer, pair_token_counts
from synthmix.quality.lsh import MinHashConfig, find_near_duplicates
from synthmix.quality.normalize import joined_texts

ROUNDS_FILE = "rounds.json"
ROUNDS_DIR = "rounds"
ACCEPTED = "accepted.parquet"  # a round's pairs that are no near-duplicate of an earlier round's
DUPLICATES = "cross_round_duplicates.parquet"


@dataclass(frozen=True)
class Recipe:
    seeds: PlannedStage
    end: PlannedStage  # the last stage before the shard stages: its rows are a round's kept pairs
    shards: list[PlannedStage]


def split_recipe(plan: list[PlannedStage]) -> Recipe:
    kinds = [node.fingerprint_parts["kind"] for node in plan]
    if kinds[0] != "seeds":
        raise ConfigError(f"a job with targets or a budget runs in rounds over its seed chunks: its first stage must be seeds, not '{plan[0].name}'")
    before = [node for node, kind in zip(plan, kinds) if kind not in SHARD_KINDS]
    if len(before) < 2:
        raise ConfigError("a job with targets or a budget needs stages after seeds that make pairs (synthesize, answer, ...)")
    return Recipe(seeds=plan[0], end=before[-1], shards=[node for node, kind in zip(plan, kinds) if kind in SHARD_KINDS])


def round_dir(run_dir: Path, number: int) -> Path:
    return Path(run_dir) / ROUNDS_DIR / f"round-{number:02d}"


# --- state ----------------------------------------------------------------------------------------
def read_rounds(run_dir: Path) -> dict | None:
    path = Path(run_dir) / ROUNDS_FILE
    return read_json(path) if path.exists() else None


def _load_state(run_dir: Path, seeds_fingerprint: str, seed_count: int) -> dict:
    state = read_rounds(run_dir)
    if state is None:
        return {"seeds_fingerprint": seeds_fingerprint, "seed_chunks": seed_count, "rounds": [], "stop": None}
    if state["seeds_fingerprint"] != seeds_fingerprint:
        raise ConfigError(
            f"{run_dir}/{ROUNDS_FILE} sliced other seed chunks (the seeds section or its files changed since); "
            f"run into a new --run-dir, or delete {run_dir}/{ROUNDS_DIR} and {ROUNDS_FILE} to start the rounds again"
        )
    return state


def _save_state(run_dir: Path, state: dict) -> None:
    write_atomic_json(Path(run_dir) / ROUNDS_FILE, state)


# --- a round ----------------------------------------------------------------------------------------
def sorted_seed_chunks(run_dir: Path) -> pa.Table:
    files = StageDir(run_dir, "seeds").part_files()
    if not files:
        return pa.table({contracts.ID: pa.array([], pa.string())})
    table = pa.concat_tables([read_parquet(path) for path in files], promote_options="default")
    return table.sort_by(contracts.ID)


def write_seed_slice(directory: Path, node: PlannedStage, chunks: pa.Table) -> None:
    """The slice as the round's committed seeds stage, under the fingerprint its job plans, so
    the runner takes it as fresh and starts the round at the stage after seeds."""
    stage_dir = StageDir(directory, node.name)
    if stage_dir.state(node.fingerprint) is StageState.FRESH:
        return
    stage_dir.clear()
    counts = UnitCounts(rows_in=chunks.num_rows, rows_out=chunks.num_rows)
    stage_dir.commit_unit("slice", chunks, pa.table({}), chunks[contracts.ID].combine_chunks(), counts)
    stage_dir.commit(
        {"stage": node.name, "kind": "seeds", "fingerprint": node.fingerprint, **counts.to_json(), "extra": {"slice_of": str(directory.parent.parent)}}
    )


def kept_rows(directory: Path, end: str) -> pa.Table | None:
    files = StageDir(directory, end).part_files()
    return pa.concat_tables([read_parquet(path) for path in files], promote_options="default") if files else None


def drop_cross_round_duplicates(earlier: pa.Table | None, current: pa.Table, config) -> tuple[pa.Table, pa.Table]:
    """Rows of `current` that are near-duplicates (config.threshold) of a row of `earlier`: the
    earlier row is kept, ranked first. Duplicates within `current` are the recipe's dedup's.
    Returns (kept, dropped with reject_reason near_duplicate and the earlier row's id)."""
    if earlier is None or not earlier.num_rows or not current.num_rows:
        return current, current.slice(0, 0)
    columns = [*config.text_columns]
    both = pa.concat_tables([earlier.select([contracts.ID, *columns]), current.select([contracts.ID, *columns])], promote_options="default")
    scores = np.concatenate([np.ones(earlier.num_rows), np.zeros(current.num_rows)])
    found = find_near_duplicates(joined_texts(both, columns), both[contracts.ID].to_numpy(zero_copy_only=False), scores, config)
    kept_for = found.selection.kept[earlier.num_rows :]
    of_earlier = kept_for < earlier.num_rows
    dropped = current.filter(pa.array(of_earlier))
    earlier_ids = both[contracts.ID].to_pylist()
    details = [f"near-duplicate of {earlier_ids[index]}, kept by an earlier round" for index in kept_for[of_earlier]]
    dropped = dropped.append_column(contracts.REJECT_REASON, pa.array([RejectReason.NEAR_DUPLICATE.value] * dropped.num_rows, pa.string()))
    dropped = dropped.append_column(contracts.REJECT_DETAIL, pa.array(details, pa.string()))
    return current.filter(pa.array(~of_earlier)), dropped


def accepted_rows(run_dir: Path, rounds: list[dict]) -> pa.Table | None:
    tables = [read_parquet(round_dir(run_dir, entry["round"]) / ACCEPTED) for entry in rounds if entry["status"] == "done"]
    tables = [table for table in tables if table.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else None


class TokenCounter:
    """Tokens of a pair's instruction and answer in the tokenize stage's tokenizer (loaded once,
    only when a target counts tokens)."""

    def __init__(self, job: JobConfig, needed: bool) -> None:
        self.tokenizer = None
        if needed:
            spec = next((job.sections.get(entry.name, {}).get("tokenizer") for entry in job.stages if entry.stage_kind == "tokenize"), None)
            self.tokenizer = load_tokenizer(TokenizerSpec.model_validate(spec or {"kind": "hunyuan"}))

    def count(self, table: pa.Table) -> list[int]:
        if self.tokenizer is None:
            return [0] * table.num_rows
        return pair_token_counts(self.tokenizer, table)


def pairs_of(table: pa.Table | None, tokens: TokenCounter) -> list[KeptPair]:
    if table is None:
        return []
    domains = table[contracts.DOMAIN].to_pylist() if contracts.DOMAIN in table.column_names else [""] * table.num_rows
    langs = table[contracts.LANG].to_pylist() if contracts.LANG in table.column_names else [""] * table.num_rows
    return [KeptPair(domain or "", lang or "", count) for domain, lang, count in zip(domains, langs, tokens.count(table))]


def grouped(pairs: list[KeptPair]) -> list[dict]:
    """Kept pairs per (domain, language): how rounds.json records them."""
    pairs_by, tokens_by = Counter(), Counter()
    for pair in pairs:
        pairs_by[(pair.domain, pair.lang)] += pair.pairs
        tokens_by[(pair.domain, pair.lang)] += pair.tokens
    return [{"domain": d, "lang": lang, "pairs": pairs_by[(d, lang)], "tokens": tokens_by[(d, lang)]} for d, lang in sorted(pairs_by)]


def kept_so_far(rounds: list[dict]) -> list[KeptPair]:
    return [KeptPair(g["domain"], g["lang"], g["tokens"], g["pairs"]) for entry in rounds if entry["status"] == "done" for g in entry["kept"]]


def spend_so_far(rounds: list[dict]) -> Spend:
    total = Spend()
    for entry in rounds:
        if entry["status"] == "done":
            total.add(Spend(entry["spend"]["generated_tokens"], entry["spend"]["engine_s"]))
    return total


def round_spend(directory: Path) -> Spend:
    """Generated tokens and engine seconds (generation + start-up) of one round, from its manifests."""
    cost = generation_cost(directory)
    engine_s = sum((entry["engine_s"] or 0) + (entry["startup_s"] or 0) for entry in cost["stages"])
    return Spend(cost["generated_tokens"], engine_s)


# --- lines the run prints ----------------------------------------------------------------------------
def progress_line(job: JobConfig, state: dict) -> str:
    """Kept per target against it, and spend against the budget."""
    parts = []
    if job.targets:
        amounts = kept_amounts(kept_so_far(state["rounds"]), job.targets)
        for key, target in job.targets.items():
            parts += [f"{key} {amounts[key][measure]}/{wanted} {measure}" for measure, wanted in target.amounts().items()]
    spend = spend_so_far(state["rounds"])
    shares = budget_shares(job.budget, spend)
    spent = [f"{_number(spent)}/{_number(limit)} {name.replace('_', ' ')}" for name, (spent, limit) in shares.items()]
    if not shares:
        spent = [f"{spend.generated_tokens} generated tokens, {spend.engine_hours:.4f} engine h"]
    return f"kept {', '.join(parts) or '-'}; spent {', '.join(spent)}"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or float(value).is_integer() else f"{value:.4g}"


def stop_line(job: JobConfig, state: dict) -> str:
    done = [entry for entry in state["rounds"] if entry["status"] == "done"]
    used = sum(entry["seeds"] for entry in done)
    stop = state["stop"]
    return f"rounds stopped: {stop['reason']} ({stop['why']}) after {len(done)} round(s), {used} of {state['seed_chunks']} seed chunks; {progress_line(job, state)}"


# --- the run ----------------------------------------------------------------------------------------
class CrossRoundDedup(MinHashConfig):
    """Near-duplicates of an earlier round's kept pairs, found by the project's MinHash/LSH."""

    text_columns: list[str] = Field(default_factory=lambda: [contracts.INSTRUCTION, contracts.ANSWER], min_length=1)


def cross_round_dedup(job: JobConfig) -> CrossRoundDedup:
    """The job's `rounds.dedup`, checked: an error names the key before any round runs."""
    try:
        return CrossRoundDedup.model_validate(job.rounds_settings().dedup)
    except ValidationError as error:
        problems = "; ".join(f"rounds.dedup.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors())
        raise ConfigError(f"{problems} (docs/targets.md lists the keys)") from None


def run_in_rounds(job: JobConfig, registry: dict[str, type[Stage]], *, job_dir: Path = Path("."), address: str | None = None, log: Log = stderr_log) -> dict:
    """Rounds until every target is met, the budget is spent or the seeds run out; then the
    shards over every round's pairs. Returns the rounds state (what rounds.json holds)."""
    with job.storage_in_effect():  # s3:// seeds resolve against the job's endpoint; the previous one is back after
        run_dir = Path(job.resolved_run_dir())
        recipe = split_recipe(build_graph(job, registry, run_dir=run_dir, job_dir=job_dir))
        settings = job.rounds_settings()
        dedup = cross_round_dedup(job)
        run_job(job, registry, job_dir=job_dir, stop=recipe.seeds.name, address=address, log=log)
        chunks = sorted_seed_chunks(run_dir)
        state = _load_state(run_dir, recipe.seeds.fingerprint, chunks.num_rows)
        tokens = TokenCounter(job, needed=any(target.tokens for target in (job.targets or {}).values()))
        while state["stop"] is None:
            running = next((entry for entry in state["rounds"] if entry["status"] == "running"), None)
            if running is None:
                plan = _plan(job, state, settings)
                if plan.stop is not None:
                    state["stop"] = {"reason": plan.stop, "why": plan.why}
                    _save_state(run_dir, state)
                    break
                first = sum(entry["seeds"] for entry in state["rounds"])
                running = {"round": len(state["rounds"]) + 1, "first_seed": first, "seeds": plan.seeds, "why": plan.why, "status": "running"}
                state["rounds"].append(running)
                _save_state(run_dir, state)
            else:
                log(f"round {running['round']}: resuming (seed chunks {running['first_seed']}-{running['first_seed'] + running['seeds'] - 1})")
            _run_round(job, registry, recipe, running, chunks, state, tokens, dedup, job_dir=job_dir, address=address, log=log)
            _save_state(run_dir, state)
            log(
                f"round {running['round']}: seed chunks {running['first_seed']}-{running['first_seed'] + running['seeds'] - 1} "
                f"({running['seeds']}, {running['why']}); {running['cross_round_duplicates']} near-duplicates of earlier rounds dropped; "
                f"{progress_line(job, state)}"
            )
        log(stop_line(job, state))
        _write_union(job, recipe, state, tokens, run_dir, log)
        if recipe.shards:
            _run_shards(job, registry, recipe, run_dir, job_dir=job_dir, address=address, log=log)
        return state


def _plan(job: JobConfig, state: dict, settings) -> RoundPlan:
    rounds = state["rounds"]
    used = sum(entry["seeds"] for entry in rounds)
    return plan_next_round(
        targets=job.targets,
        amounts=kept_amounts(kept_so_far(rounds), job.targets or {}),
        budget=job.budget,
        spend=spend_so_far(rounds),
        seeds_used=used,
        seeds_left=state["seed_chunks"] - used,
        rounds_done=len(rounds),
        settings=settings,
    )


def _run_round(
    job, registry, recipe: Recipe, entry: dict, chunks: pa.Table, state: dict, tokens: TokenCounter, dedup: CrossRoundDedup, *, job_dir, address, log: Log
) -> None:
    run_dir = Path(job.resolved_run_dir())
    directory = round_dir(run_dir, entry["round"])
    round_job = job.model_copy(update={"run_dir": str(directory)})
    seeds_node = build_graph(round_job, registry, run_dir=directory, job_dir=job_dir)[0]
    write_seed_slice(directory, seeds_node, chunks.slice(entry["first_seed"], entry["seeds"]))
    prefix = f"[round {entry['round']}] "
    run_job(round_job, registry, job_dir=job_dir, stop=recipe.end.name, address=address, log=lambda line: log(prefix + line))
    current = kept_rows(directory, recipe.end.name)
    if current is None:
        current = pa.table({contracts.ID: pa.array([], pa.string())})
    kept, dropped = drop_cross_round_duplicates(accepted_rows(run_dir, state["rounds"]), current, dedup)
    write_atomic_parquet(directory / DUPLICATES, dropped)
    write_atomic_parquet(directory / ACCEPTED, kept)
    entry.update(status="done", kept=grouped(pairs_of(kept, tokens)), cross_round_duplicates=dropped.num_rows, spend=round_spend(directory).to_json())


def _write_union(job: JobConfig, recipe: Recipe, state: dict, tokens: TokenCounter, run_dir: Path, log: Log) -> None:
    """Every round's accepted pairs as the run dir's `recipe.end` stage (its planned fingerprint,
    so the shard stages read it as their fresh input); trimmed pairs and cross-round duplicates
    are its rejects."""
    summary = {"rounds": state["rounds"], "stop": state["stop"], "past_target": job.rounds_settings().past_target}
    stage_dir = StageDir(run_dir, recipe.end.name)
    manifest = stage_dir.manifest()
    if manifest is not None and manifest.get("fingerprint") == recipe.end.fingerprint and manifest.get("extra") == summary:
        return
    union = accepted_rows(run_dir, state["rounds"])
    rejected = [read_parquet(round_dir(run_dir, entry["round"]) / DUPLICATES) for entry in state["rounds"] if entry["status"] == "done"]
    if union is not None and job.targets and job.rounds_settings().past_target == "trim":
        keep = pa.array(pairs_to_keep(pairs_of(union, tokens), job.targets))
        trimmed = union.filter(pc.invert(keep))
        trimmed = trimmed.append_column(contracts.REJECT_REASON, pa.array([RejectReason.PAST_TARGET.value] * trimmed.num_rows, pa.string()))
        trimmed = trimmed.append_column(
            contracts.REJECT_DETAIL, pa.array(["every target covering this pair was met by earlier pairs"] * trimmed.num_rows, pa.string())
        )
        rejected.append(trimmed)
        union = union.filter(keep)
    rejected = [table for table in rejected if table.num_rows]
    rejects = pa.concat_tables(rejected, promote_options="default") if rejected else pa.table({})
    accepted = union if union is not None else pa.table({contracts.ID: pa.array([], pa.string())})
    reasons = Counter(rejects[contracts.REJECT_REASON].to_pylist()) if rejects.num_rows else Counter()
    counts = UnitCounts(rows_in=accepted.num_rows + rejects.num_rows, rows_out=accepted.num_rows, rejected=reasons)
    stage_dir.clear()
    ids = pa.concat_arrays([accepted[contracts.ID].combine_chunks(), *([rejects[contracts.ID].combine_chunks()] if rejects.num_rows else [])])
    stage_dir.commit_unit("rounds", accepted, rejects, ids, counts)
    stage_dir.commit(
        {"stage": recipe.end.name, "kind": recipe.end.fingerprint_parts["kind"], "fingerprint": recipe.end.fingerprint, **counts.to_json(), "extra": summary}
    )
    log(
        f"[{recipe.end.name}] the pairs of {len(state['rounds'])} round(s): {accepted.num_rows} kept, "
        + (", ".join(f"{r} {n}" for r, n in reasons.items()) or "none rejected")
    )


def _run_shards(job, registry, recipe: Recipe, run_dir: Path, *, job_dir, address, log: Log) -> None:
    """The shard stages once over the union. Their fingerprints do not see the union's rows, so
    they count as done only when fresh and committed after the union was."""
    fresh = all(StageDir(run_dir, node.name).state(node.fingerprint) is StageState.FRESH for node in recipe.shards)
    union_time = StageDir(run_dir, recipe.end.name).manifest_path.stat().st_mtime
    newer = all(StageDir(run_dir, node.name).manifest_path.stat().st_mtime >= union_time for node in recipe.shards) if fresh else False
    if fresh and newer:
        log(f"shard stages {', '.join(node.name for node in recipe.shards)} fresh over the rounds' pairs, skipped")
        return
    run_job(job, registry, job_dir=job_dir, start=recipe.shards[0].name, address=address, log=log)


def rounds_summary_line(run_dir: Path) -> str | None:
    """One line for `synthmix status`/`inspect`: rounds run, seeds used, why they stopped."""
    state = read_rounds(run_dir)
    if state is None:
        return None
    done = [entry for entry in state["rounds"] if entry["status"] == "done"]
    used = sum(entry["seeds"] for entry in done)
    duplicates = sum(entry["cross_round_duplicates"] for entry in done)
    kept = Counter()
    for pair in kept_so_far(done):
        kept[pair.domain or "(none)"] += pair.pairs
    stop = state["stop"]
    where = (
        f"stopped: {stop['reason']} ({stop['why']})"
        if stop
        else f"running round {len(state['rounds'])}"
        if len(done) < len(state["rounds"])
        else "not stopped yet"
    )
    domains = ", ".join(f"{domain} {n}" for domain, n in sorted(kept.items())) or "none"
    return (
        f"rounds: {len(done)} done over {used} of {state['seed_chunks']} seed chunks, {where}; "
        f"kept before trimming: {domains}; {duplicates} near-duplicates of earlier rounds dropped"
    )
