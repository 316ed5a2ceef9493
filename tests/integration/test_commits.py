"""after_commit runs its action once the work has committed, and never for work a rollback undid."""

from __future__ import annotations

import asyncpg
import pytest

from giftcards.db.commits import after_commit, transaction


class Refused(Exception):
    pass


async def test_outside_a_transaction_the_action_runs_at_once(db: asyncpg.Connection) -> None:
    done: list[str] = []
    after_commit(db, lambda: done.append("now"))
    assert done == ["now"]


async def test_inside_a_transaction_the_action_waits_for_the_outermost_commit(db: asyncpg.Connection) -> None:
    done: list[str] = []
    async with transaction(db):
        async with db.transaction():  # the step's own block, a savepoint here
            await db.execute("SELECT 1")
        after_commit(db, lambda: done.append("issued"))
        async with transaction(db):
            after_commit(db, lambda: done.append("claimed"))
        assert done == []
    assert done == ["issued", "claimed"]


async def test_a_savepoint_rolled_back_drops_only_its_own_actions(db: asyncpg.Connection) -> None:
    done: list[str] = []
    async with transaction(db):
        after_commit(db, lambda: done.append("kept"))
        with pytest.raises(Refused):
            async with transaction(db):
                after_commit(db, lambda: done.append("undone"))
                raise Refused
    assert done == ["kept"]


async def test_a_transaction_rolled_back_runs_nothing(db: asyncpg.Connection) -> None:
    done: list[str] = []
    with pytest.raises(Refused):
        async with transaction(db):
            after_commit(db, lambda: done.append("undone"))
            raise Refused
    after_commit(db, lambda: done.append("later"))
    assert done == ["later"]
