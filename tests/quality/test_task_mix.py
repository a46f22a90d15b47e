import random
from collections import Counter

from synthmix.quality.task_mix import fitting_types, layout_group, plan_quotas, seed_hash, shares_of

MIX = {"explain": 0.2, "how_to": 0.15, "write_code": 0.15, "debug": 0.05, "compare": 0.1, "calculate": 0.1, "writing": 0.1, "analyze": 0.1, "factual": 0.05}
FIT = {"write_code": ["code"], "debug": ["code"], "calculate": ["math", "science", "code"]}


def plan(seeds: list[tuple[str, str, str]], mix=MIX, per_seed=4, seed=0) -> dict[str, tuple[str, ...]]:
    """seed id -> its task types, through the same steps the synthesize stage takes."""
    groups: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for seed_id, kind, domain in seeds:
        groups.setdefault(fitting_types(list(mix), FIT, kind=kind, domain=domain), []).append((seed_id, seed_hash(seed_id, seed)))
    quotas = plan_quotas({group: len(members) for group, members in groups.items()}, mix, per_seed=per_seed)
    types = {}
    for group, members in groups.items():
        layout = layout_group(quotas[group], [h for _, h in members], task_order=list(mix))
        types.update({seed_id: layout.types_for(h) for seed_id, h in members})
    return types


def test_seeds_that_fit_every_type_meet_the_mix_to_the_request():
    seeds = [(f"s{i}", "web", "code") for i in range(50)]
    counts = Counter(task for types in plan(seeds).values() for task in types)
    assert sum(counts.values()) == 200
    for task, share in MIX.items():
        assert abs(counts[task] - share * 200) <= 1, (task, counts[task])


def test_no_seed_gets_a_type_twice_and_code_types_go_only_to_code_seeds():
    seeds = [(f"c{i}", "code", "code") for i in range(7)] + [(f"h{i}", "web", "history") for i in range(9)] + [(f"m{i}", "web", "math") for i in range(3)]
    types = plan(seeds)
    assert all(len(set(asked)) == len(asked) == 4 for asked in types.values())
    for seed_id, asked in types.items():
        if not seed_id.startswith("c"):
            assert not {"write_code", "debug"} & set(asked), (seed_id, asked)
        if seed_id.startswith("h"):
            assert "calculate" not in asked


def test_every_group_with_room_asks_for_every_type_that_fits_it():
    seeds = [(f"c{i}", "code", "code") for i in range(9)] + [(f"h{i}", "web", "history") for i in range(3)] + [(f"m{i}", "web", "math") for i in range(2)]
    types = plan(seeds)
    for prefix, fitting in (("c", set(MIX)), ("h", set(MIX) - {"write_code", "debug", "calculate"}), ("m", set(MIX) - {"write_code", "debug"})):
        asked = {task for seed_id, tasks in types.items() if seed_id.startswith(prefix) for task in tasks}
        assert asked == fitting, prefix


def test_scarce_types_are_concentrated_where_they_fit():
    # Only 4 of 20 seeds are code: the 15% of write_code (12 of 80 requests) cannot all fit
    # them (at most 4, one each), and every code seed is asked for it.
    seeds = [(f"c{i}", "code", "code") for i in range(4)] + [(f"w{i}", "web", "general") for i in range(16)]
    types = plan(seeds)
    assert all("write_code" in types[f"c{i}"] for i in range(4))
    counts = Counter(task for asked in types.values() for task in asked)
    assert counts["write_code"] == 4 and sum(counts.values()) == 80


def test_the_plan_is_the_same_whatever_the_order_of_the_seeds():
    seeds = [(f"s{i}", random.Random(i).choice(["web", "code"]), "general") for i in range(40)]
    shuffled = seeds[:]
    random.Random(7).shuffle(shuffled)
    assert plan(seeds) == plan(shuffled)
    assert plan(seeds) != plan(seeds, seed=1)


def test_a_seed_whose_group_fits_fewer_types_than_asked_gets_each_once():
    mix = {"write_code": 0.5, "explain": 0.5}
    types = plan([(f"h{i}", "web", "history") for i in range(5)], mix=mix)
    assert set(types.values()) == {("explain",)}


def test_shares_of_counts():
    assert shares_of({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    assert shares_of({}) == {}
