"""Targets and budgets of a job run in rounds: what is kept against what was asked, what was
spent against what may be, how many seeds the next round takes, and when to stop.

Pure functions over counts, no I/O and no Ray, so the sizing and stop rules are tested apart
from the runs (pipeline/cli/rounds.py runs the rounds and feeds these their measurements).

A kept pair is one row: (domain, language, tokens). A target key `math` covers every math
pair, `math/zh` the Chinese ones, `*/zh` every Chinese pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from synthmix.pipeline.config import BudgetConfig, RoundsConfig, TargetAmount

ANY_DOMAIN = "*"
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class KeptPair:
    """One kept pair, or with `pairs` > 1 a group of them with `tokens` in all."""

    domain: str
    lang: str
    tokens: int = 0
    pairs: int = 1


def covers(key: str, pair: KeptPair) -> bool:
    domain, _, lang = key.partition("/")
    return domain in (ANY_DOMAIN, pair.domain) and (not lang or lang == pair.lang)


def kept_amounts(pairs: Iterable[KeptPair], targets: dict[str, TargetAmount]) -> dict[str, dict[str, int]]:
    """Per target key, the pairs and tokens kept that it covers."""
    amounts = {key: {"pairs": 0, "tokens": 0} for key in targets}
    for pair in pairs:
        for key in targets:
            if covers(key, pair):
                amounts[key]["pairs"] += pair.pairs
                amounts[key]["tokens"] += pair.tokens
    return amounts


def shortfalls(targets: dict[str, TargetAmount], amounts: dict[str, dict[str, int]]) -> dict[tuple[str, str], int]:
    """(key, measure) -> how much is still missing, for every target not yet met."""
    missing = {}
    for key, target in targets.items():
        for measure, wanted in target.amounts().items():
            have = amounts.get(key, {}).get(measure, 0)
            if have < wanted:
                missing[(key, measure)] = wanted - have
    return missing


@dataclass
class Spend:
    """What the rounds so far cost: generated tokens and engine seconds (generation plus start-ups)."""

    generated_tokens: int = 0
    engine_s: float = 0.0

    def add(self, other: Spend) -> None:
        self.generated_tokens += other.generated_tokens
        self.engine_s += other.engine_s

    @property
    def engine_hours(self) -> float:
        return self.engine_s / SECONDS_PER_HOUR

    def to_json(self) -> dict[str, float]:
        return {"generated_tokens": self.generated_tokens, "engine_s": round(self.engine_s, 3)}


def budget_shares(budget: BudgetConfig | None, spend: Spend) -> dict[str, tuple[float, float]]:
    """Per budget limit set: (spent, limit), in the limit's own unit."""
    if budget is None:
        return {}
    shares = {}
    if budget.generated_tokens is not None:
        shares["generated_tokens"] = (float(spend.generated_tokens), float(budget.generated_tokens))
    if budget.engine_hours is not None:
        shares["engine_hours"] = (spend.engine_hours, budget.engine_hours)
    if budget.money is not None:
        shares["money"] = (spend.engine_hours * budget.price_per_engine_hour, budget.money)
    return shares


def budget_spent(budget: BudgetConfig | None, spend: Spend) -> bool:
    return any(spent >= limit for spent, limit in budget_shares(budget, spend).values())


def affordable_seeds(budget: BudgetConfig | None, spend: Spend, seeds_used: int) -> int | None:
    """Seeds the budget left pays for at the spend per seed measured so far; None: no limit known
    (no budget, or nothing measured yet)."""
    if budget is None or seeds_used == 0:
        return None
    fits = []
    for spent, limit in budget_shares(budget, spend).values():
        if spent > 0:
            fits.append(math.floor((limit - spent) / (spent / seeds_used) + 1e-9))  # 0.6 / 0.05 is 11.999...
    return max(0, min(fits)) if fits else None


@dataclass(frozen=True)
class RoundPlan:
    """The next round's slice size, or why there is none (`stop`: targets_met, budget_spent,
    seeds_exhausted, max_rounds)."""

    seeds: int = 0
    stop: str | None = None
    why: str = ""
    needed: dict[str, float] = field(default_factory=dict)


def plan_next_round(
    *,
    targets: dict[str, TargetAmount] | None,
    amounts: dict[str, dict[str, int]],
    budget: BudgetConfig | None,
    spend: Spend,
    seeds_used: int,
    seeds_left: int,
    rounds_done: int,
    settings: RoundsConfig,
) -> RoundPlan:
    """Stop, or take `remaining / (kept so far / seeds so far)` seeds for the least advanced
    target, within [min_seeds, max_seeds], the seeds left and what the budget still pays for.
    The first round takes `pilot_seeds`: nothing is measured yet."""
    missing = shortfalls(targets, amounts) if targets else {}
    if targets and not missing:
        return RoundPlan(stop="targets_met", why="every target is met")
    if budget_spent(budget, spend):
        return RoundPlan(stop="budget_spent", why="the budget is spent")
    if seeds_left <= 0:
        return RoundPlan(stop="seeds_exhausted", why=f"every seed chunk went through a round ({seeds_used})")
    if rounds_done >= settings.max_rounds:
        return RoundPlan(stop="max_rounds", why=f"rounds.max_rounds ({settings.max_rounds}) rounds ran")
    needed: dict[str, float] = {}
    if rounds_done == 0 or seeds_used == 0:
        size, why = settings.pilot_seeds, "pilot"
    elif not missing:
        # A budget and no targets: spend it in the largest slices allowed.
        size, why = settings.max_seeds, "budget only"
    else:
        for (key, measure), remaining in missing.items():
            per_seed = amounts[key][measure] / seeds_used
            needed[f"{key} {measure}"] = remaining / per_seed if per_seed else math.inf
        size = max(needed.values())
        size = settings.max_seeds if math.isinf(size) else math.ceil(size)
        size, why = max(settings.min_seeds, min(settings.max_seeds, size)), "sized by yield"
    size = min(size, seeds_left)
    affordable = affordable_seeds(budget, spend, seeds_used)
    if affordable is not None and affordable < size:
        if affordable < 1:
            return RoundPlan(stop="budget_spent", why="the budget left pays for less than one more seed at the spend per seed so far")
        size, why = affordable, "cut to the budget left"
    return RoundPlan(seeds=size, why=why, needed=needed)


def pairs_to_keep(pairs: Sequence[KeptPair], targets: dict[str, TargetAmount]) -> list[bool]:
    """`past_target: trim`: in the order given (earlier rounds first), a pair is kept while some
    target covering it is still short; the rest, and pairs no target covers, are trimmed."""
    running = {key: {"pairs": 0, "tokens": 0} for key in targets}
    keep = []
    for pair in pairs:
        covering = [key for key in targets if covers(key, pair)]
        wanted = any(running[key][measure] < amount for key in covering for measure, amount in targets[key].amounts().items())
        keep.append(wanted)
        if wanted:
            for key in covering:
                running[key]["pairs"] += 1
                running[key]["tokens"] += pair.tokens
    return keep
