"""Targets and budgets: what counts against a target, how the next round is sized, when rounds
stop, which pairs a trim keeps; and the job keys that ask for them."""

import pytest

from synthmix.pipeline.config import BudgetConfig, ConfigError, JobConfig, RoundsConfig, TargetAmount, parse_job
from synthmix.pipeline.targets import KeptPair, Spend, affordable_seeds, budget_spent, kept_amounts, pairs_to_keep, plan_next_round

TARGETS = {"math": TargetAmount(pairs=10), "code": TargetAmount(pairs=20)}
SETTINGS = RoundsConfig(pilot_seeds=4, min_seeds=2, max_seeds=30)


def amounts(math=0, code=0):
    return kept_amounts([KeptPair("math", "en", 0, math), KeptPair("code", "en", 0, code)], TARGETS)


def plan(kept, *, seeds_used, seeds_left=100, rounds_done=1, budget=None, spend=None, targets=TARGETS, settings=SETTINGS):
    return plan_next_round(
        targets=targets,
        amounts=kept,
        budget=budget,
        spend=spend or Spend(),
        seeds_used=seeds_used,
        seeds_left=seeds_left,
        rounds_done=rounds_done,
        settings=settings,
    )


def test_a_target_key_covers_its_domain_and_language_and_star_covers_every_domain():
    pairs = [KeptPair("math", "en", 30), KeptPair("math", "zh", 50), KeptPair("code", "zh", 7)]
    targets = {"math": TargetAmount(pairs=1), "math/zh": TargetAmount(tokens=1), "*/zh": TargetAmount(pairs=1)}
    assert kept_amounts(pairs, targets) == {"math": {"pairs": 2, "tokens": 80}, "math/zh": {"pairs": 1, "tokens": 50}, "*/zh": {"pairs": 2, "tokens": 57}}


def test_the_first_round_is_the_pilot():
    assert plan(amounts(), seeds_used=0, rounds_done=0).seeds == 4


def test_the_next_slice_is_what_the_least_advanced_target_needs_at_the_measured_yield():
    # 4 seeds gave 4 math (1/seed: 6 more seeds) and 2 code (0.5/seed: 36 more, capped at 30).
    assert plan(amounts(math=4, code=2), seeds_used=4).seeds == 30
    # 8 seeds gave 8 math and 16 code: math needs 2 more seeds, code 2 (4 at 2/seed).
    result = plan(amounts(math=8, code=16), seeds_used=8)
    assert result.seeds == 2 and result.needed == {"math pairs": 2.0, "code pairs": 2.0}


def test_the_slice_has_a_floor_and_never_exceeds_the_seeds_left():
    assert plan(amounts(math=9, code=19), seeds_used=10).seeds == 2  # 1 seed would do: the floor is 2
    assert plan(amounts(math=4, code=2), seeds_used=4, seeds_left=5).seeds == 5


def test_a_target_with_no_yield_yet_takes_the_cap():
    assert plan(amounts(math=4, code=0), seeds_used=4).seeds == 30


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"kept": amounts(math=10, code=25), "seeds_used": 8}, "targets_met"),
        ({"kept": amounts(math=4), "seeds_used": 8, "seeds_left": 0}, "seeds_exhausted"),
        ({"kept": amounts(math=4), "seeds_used": 8, "rounds_done": 10}, "max_rounds"),
        ({"kept": amounts(math=4), "seeds_used": 8, "budget": BudgetConfig(generated_tokens=1000), "spend": Spend(1000, 0)}, "budget_spent"),
    ],
)
def test_rounds_stop_for_the_first_reason_that_holds(kwargs, reason):
    assert plan(**kwargs).stop == reason


def test_the_slice_is_cut_to_what_the_budget_left_pays_for():
    # 8 seeds cost 0.4 of 1.0 engine hours: 0.6 pays for 12 seeds, fewer than the 30 wanted.
    budget = BudgetConfig(engine_hours=1.0)
    result = plan(amounts(math=4, code=2), seeds_used=8, budget=budget, spend=Spend(0, 0.4 * 3600))
    assert (result.seeds, result.why) == (12, "cut to the budget left")
    # With less left than one seed costs, the budget counts as spent.
    assert plan(amounts(math=4, code=2), seeds_used=8, budget=budget, spend=Spend(0, 0.95 * 3600)).stop == "budget_spent"


def test_money_is_engine_hours_at_the_price():
    budget = BudgetConfig(money=10.0, price_per_engine_hour=4.0)
    assert not budget_spent(budget, Spend(engine_s=2.4 * 3600))
    assert budget_spent(budget, Spend(engine_s=2.5 * 3600))
    assert affordable_seeds(budget, Spend(engine_s=1.25 * 3600), seeds_used=5) == 5  # $5 for 5 seeds, $5 left


def test_trimming_keeps_pairs_in_order_until_every_covering_target_is_met():
    pairs = [KeptPair("math", "en"), KeptPair("code", "en"), KeptPair("math", "en"), KeptPair("general", "en"), KeptPair("math", "zh"), KeptPair("code", "en")]
    targets = {"math": TargetAmount(pairs=2), "code": TargetAmount(pairs=1)}
    assert pairs_to_keep(pairs, targets) == [True, True, True, False, False, False]
    # A pair stays while any target covering it is short: math/zh wants the Chinese one.
    assert pairs_to_keep(pairs, {**targets, "math/zh": TargetAmount(pairs=1)})[4] is True


# --- the job keys ---------------------------------------------------------------------------------
def job(**keys):
    return parse_job({"name": "t", "stages": ["seeds"], **keys}, source="t.yaml")


def test_targets_budget_and_rounds_parse_and_make_the_job_run_in_rounds():
    parsed = job(targets={"math": {"pairs": 10}, "code/en": {"tokens": 5000}}, budget={"money": 20, "price_per_engine_hour": 2.5}, rounds={"pilot_seeds": 3})
    assert parsed.runs_in_rounds and parsed.targets["code/en"].amounts() == {"tokens": 5000}
    assert parsed.rounds_settings().pilot_seeds == 3 and not job().runs_in_rounds


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"targets": {"math": {}}}, r"key 'targets.math': .*needs pairs, tokens or both"),
        ({"targets": {"math": {"pairs": 0}}}, r"key 'targets.math.pairs': .*greater than or equal to 1"),
        ({"targets": {"math/zh/x": {"pairs": 1}}}, r"target key 'math/zh/x' is not DOMAIN or DOMAIN/LANGUAGE"),
        ({"targets": {"math": {"rows": 3}}}, r"key 'targets.math.rows': unknown key"),
        ({"budget": {"money": 5}}, r"money needs price_per_engine_hour"),
        ({"budget": {"price_per_engine_hour": 5}}, r"needs at least one of generated_tokens, engine_hours, money"),
        ({"targets": {"math": {"pairs": 1}}, "rounds": {"min_seeds": 5, "max_seeds": 2}}, r"min_seeds 5 is above max_seeds 2"),
        ({"rounds": {"pilot_seeds": 2}}, r"rounds: sizes the rounds of a job with targets or a budget"),
    ],
)
def test_bad_targets_and_budgets_are_refused_naming_the_key(keys, message):
    with pytest.raises(ConfigError, match=message):
        job(**keys)


def test_a_bad_cross_round_dedup_setting_names_its_key_before_any_round_runs():
    from synthmix.pipeline.cli.rounds import cross_round_dedup

    job = JobConfig.model_validate({"name": "t", "stages": ["seeds", "synthesize"], "targets": {"math": {"pairs": 2}}, "rounds": {"dedup": {"threshold": 1.5}}})
    with pytest.raises(ConfigError, match=r"rounds\.dedup\.threshold"):
        cross_round_dedup(job)
    assert (
        cross_round_dedup(
            JobConfig.model_validate({"name": "t", "stages": ["seeds"], "targets": {"math": {"pairs": 2}}, "rounds": {"dedup": {"threshold": 0.7}}})
        ).threshold
        == 0.7
    )
