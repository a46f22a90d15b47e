"""Which task types to ask each seed for, so that the whole set of requests meets a job's mix.

The job states the share of each task type it wants (`synthesize.task_mix`) and which seeds a
type fits (`task_fit`: "write_code" fits code seeds; a type not listed fits every seed). Every
seed is asked for `per_seed` instructions of distinct types. The plan is made once, on the
driver, over every seed:

1. `plan_quotas`: seeds are grouped by what fits them; each group gets a number of requests of
   each type that fits it, so that the totals come as near the asked shares as the seeds allow.
   A group with room for all its types asks for each once (seeds of every kind yield every type
   that fits them); then the scarcest types go first (the fewest fitting seeds per request
   wanted), each spread over its groups by their free room; room left over is filled in the
   asked proportions. No seed gets one type twice (a group of n seeds asks at most n of each type).
2. `layout_group`: inside a group, seeds are ordered by a hash of their id (and the job's seed),
   and the group's requests are laid out type after type and dealt out column by column, so the
   seed of rank r gets requests r, r + n, r + 2n... of that list. Which types a seed gets then
   changes only at a few ranks; the layout lists those ranks' hashes, so a worker finds any
   seed's types from its own hash without the whole ordering travelling to it.

Pure and deterministic: the same seeds and settings give the same plan.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# A group: the seeds for which the same task types fit.
Group = tuple[str, ...]


@dataclass(frozen=True)
class GroupLayout:
    """The task types each seed of one group gets: `types[i]` from rank-hash `starts[i]` on."""

    starts: tuple[int, ...]
    types: tuple[tuple[str, ...], ...]

    def types_for(self, seed_hash: int) -> tuple[str, ...]:
        return self.types[max(bisect.bisect_right(self.starts, seed_hash) - 1, 0)]


def seed_hash(seed_id: str, seed: int) -> int:
    """A 64-bit rank key for a seed id (the same everywhere, every run)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{seed_id}\x1ftask_mix".encode()).digest()[:8], "big")


def fitting_types(mix: Sequence[str], fit: Mapping[str, Sequence[str]], *, kind: str, domain: str) -> Group:
    """The mix's types that fit a seed of this kind and domain; all of them when none fits."""
    fitting = tuple(task for task in mix if task not in fit or kind in fit[task] or domain in fit[task])
    return fitting or tuple(mix)


def plan_quotas(group_sizes: Mapping[Group, int], mix: Mapping[str, float], *, per_seed: int) -> dict[Group, dict[str, int]]:
    """Requests of each type per group: the asked shares as near as the groups allow, each group's
    total `size * min(per_seed, its types)`, at most `size` of one type in a group."""
    total_share = sum(mix.values())
    shares = {task: share / total_share for task, share in mix.items() if share > 0}
    room = {group: size * min(per_seed, len(group)) for group, size in group_sizes.items()}
    cap = {group: {task: (size if task in group else 0) for task in shares} for group, size in group_sizes.items()}
    planned: dict[Group, dict[str, float]] = {group: dict.fromkeys(shares, 0.0) for group in group_sizes}

    def free(group: Group, task: str) -> float:
        return max(min(room[group] - sum(planned[group].values()), cap[group][task] - planned[group][task]), 0.0)

    # Every group with room for all its types asks for each at least once: seeds of every kind
    # yield every type that fits them.
    for group in group_sizes:
        if room[group] >= len(group):
            for task in group:
                if task in shares:
                    planned[group][task] = 1.0
    # Then the scarcest types first: the fewest fitting requests per request still wanted.
    wanted = {task: max(share * sum(room.values()) - sum(planned[group][task] for group in group_sizes), 0.0) for task, share in shares.items()}
    for task in sorted(shares, key=lambda task: (sum(cap[group][task] for group in group_sizes) / max(wanted[task], 1e-9), task)):
        open_room = {group: free(group, task) for group in group_sizes}
        available = sum(open_room.values())
        given = min(wanted[task], available)
        for group, room_left in open_room.items():
            if room_left:
                planned[group][task] += given * room_left / available
    # Room the asked totals left (types that fit too few seeds): each group's types in the asked proportions.
    for group in group_sizes:
        while (left := room[group] - sum(planned[group].values())) > 1e-9:
            open_types = {task: shares[task] for task in shares if free(group, task) > 1e-9}
            if not open_types:
                break
            weight = sum(open_types.values())
            for task, share in open_types.items():
                planned[group][task] += min(free(group, task), left * share / weight)
    return {group: _round_within(planned[group], room[group], cap[group]) for group in group_sizes}


def _round_within(amounts: Mapping[str, float], total: int, caps: Mapping[str, int]) -> dict[str, int]:
    """Whole numbers summing to `total` (largest remainders first), none above its cap."""
    counts = {task: min(int(math.floor(amount + 1e-9)), caps[task]) for task, amount in amounts.items()}
    order = sorted(amounts, key=lambda task: (-(amounts[task] - counts[task]), task))
    while sum(counts.values()) < total:
        task = next((task for task in order if counts[task] < caps[task]), None)
        if task is None:
            break
        counts[task] += 1
        order.remove(task)
        order.append(task)
    return {task: n for task, n in counts.items() if n}


def layout_group(quotas: Mapping[str, int], seed_hashes: Iterable[int], *, task_order: Sequence[str]) -> GroupLayout:
    """Deal a group's requests out to its seeds (see the module doc): the seed of rank r gets
    positions r, r + n, ... of the requests laid out type by type in `task_order`."""
    hashes = sorted(seed_hashes)
    size = len(hashes)
    if not size:
        return GroupLayout(starts=(), types=())
    listed = [task for task in task_order if quotas.get(task)]
    bounds, position = [], 0
    for task in listed:
        bounds.append((position, task))
        position += quotas[task]
    per_seed = position // size

    def type_at(index: int) -> str:
        return bounds[bisect.bisect_right([start for start, _ in bounds], index) - 1][1]

    change_ranks = sorted({0} | {start % size for start, _ in bounds if start // size < per_seed})
    types = tuple(tuple(type_at(rank + column * size) for column in range(per_seed)) for rank in change_ranks)
    return GroupLayout(starts=tuple(hashes[rank] for rank in change_ranks), types=types)


def shares_of(counts: Mapping[str, int | float]) -> dict[str, float]:
    """Counts as shares of their total (empty for no counts)."""
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()} if total else {}
