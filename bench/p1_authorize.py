"""P1: the in-process decision ``can``/``authorize(actor, task, catalog)`` with a warm actor.

The actor is built by ``build_actor`` (the function ``load_actor`` ends with) from the grants a
delegated user would hold in a tenant of N catalogs: catalog owner / package manager / reader on
1% of them (at least 3), a catalog-creator tenant role and the built-in member-user right. The
decisions mix allowed and denied catalogs and tasks, so neither branch is favoured.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import Table, median, per_call_us, scale
from remit.authz.actor import TENANT, Actor, Grant, build_actor
from remit.authz.decide import authorize, can
from remit.authz.roles import (
    CATALOG_CREATOR,
    CATALOG_OWNER,
    CATALOG_READER,
    MEMBER_USER,
    PACKAGE_MANAGER,
)
from remit.authz.tasks import Task
from remit.errors import Forbidden

SIZES = (10, 1_000, 100_000)
TARGET_US = 3.0
FLAT = 1.5  # "flat": the 100,000-catalog median within 1.5x of the 10-catalog one
TASKS = (Task.CATALOG_READ, Task.CATALOG_UPDATE, Task.PACKAGE_CREATE, Task.POLICY_MANAGE)


def tenant_actor(catalogs: list[str], rng: random.Random) -> Actor:
    user, group = str(uuid.uuid4()), str(uuid.uuid4())
    held = rng.sample(catalogs, max(3, len(catalogs) // 100))
    roles = (CATALOG_OWNER.id, PACKAGE_MANAGER.id, CATALOG_READER.id)
    grants = [
        Grant(MEMBER_USER, TENANT, "builtin", None, user),
        Grant(CATALOG_CREATOR.id, TENANT, "entitlementManagement", str(uuid.uuid4()), group),
    ]
    grants += [
        Grant(roles[i % 3], c, "entitlementManagement", str(uuid.uuid4()), (user, group)[i % 2])
        for i, c in enumerate(held)
    ]
    return build_actor(user, "bench@contoso.example", "Member", frozenset({group}), grants)


def decisions(actor: Actor, catalogs: list[str], rng: random.Random) -> list[tuple[Task, str]]:
    held = list(actor.catalog_tasks)
    mix = [(rng.choice(TASKS), rng.choice(held)) for _ in range(512)]
    mix += [(rng.choice(TASKS), rng.choice(catalogs)) for _ in range(512)]
    rng.shuffle(mix)
    return mix


def cycling(call: Callable[..., object], arguments: list[tuple[Any, ...]]) -> Callable[[], None]:
    """A no-argument function that calls ``call`` with the next arguments, round and round."""
    turns = itertools.cycle(arguments)

    def one() -> None:
        call(*next(turns))

    return one


def refused(actor: Actor, task: Task, catalog_id: str) -> bool:
    try:
        authorize(actor, task, catalog_id)
    except Forbidden:
        return True
    return False


def run() -> Table:
    rng = random.Random(1)
    calls, repeats = scale(200_000, 2_000), scale(15, 3)
    table = Table(
        "P1 authorize: in-process decision with a warm actor",
        f"µs per call; median of {repeats} runs of {calls:,} calls (loop included)",
    )
    medians: dict[int, float] = {}
    for size in SIZES:
        catalogs = [str(uuid.uuid4()) for _ in range(size)]
        actor = tenant_actor(catalogs, rng)
        mix = decisions(actor, catalogs, rng)
        allowed = [(t, c) for t, c in mix if can(actor, t, c)]
        denied = [(t, c) for t, c in mix if not can(actor, t, c)]
        can_mixed = cycling(can, [(actor, t, c) for t, c in mix])
        authorize_allowed = cycling(authorize, [(actor, t, c) for t, c in allowed])
        authorize_denied = cycling(refused, [(actor, t, c) for t, c in denied])
        held = len(actor.catalog_tasks)
        medians[size] = median(per_call_us(can_mixed, calls, repeats))
        table.row(
            f"can(), {size:,} catalogs (roles on {held:,}), half allowed",
            f"{medians[size]:.2f} µs",
            f"≤ {TARGET_US:g} µs",
            medians[size] <= TARGET_US,
        )
        for name, fn in (("allowed", authorize_allowed), ("denied, raises", authorize_denied)):
            figure = median(per_call_us(fn, calls // 2, repeats))
            table.row(
                f"authorize(), {size:,} catalogs, {name}",
                f"{figure:.2f} µs",
                f"≤ {TARGET_US:g} µs",
                figure <= TARGET_US,
            )
    ratio = medians[SIZES[-1]] / medians[SIZES[0]]
    table.row(
        f"flatness: can() at {SIZES[-1]:,} / at {SIZES[0]:,}",
        f"{ratio:.2f}x",
        f"≤ {FLAT:g}x",
        ratio <= FLAT,
    )
    return table
