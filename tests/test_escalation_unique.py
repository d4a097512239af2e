"""At most one open escalation per conversation, enforced by the database (issue 12, point 3):
concurrent opens on PostgreSQL and SQLite, and revision 0007 settling pre-existing duplicates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.channels import ChannelSettings
from bot.escalation import EscalationPolicy, Resolvers
from bot.messages import ConversationKey, Platform
from storage import escalations, migrate
from storage.db import Database
from storage.models import ChannelSetting
from tests.test_migrations import execute

PREVIOUS = "0005_slack_oauth"


async def _open(db: Database, session_id: str, user: str) -> escalations.Opened:
    return await escalations.open_escalation(
        db,
        session_id=session_id,
        platform="slack",
        channel_id="C1",
        thread_id="1.0",
        requested_by=user,
    )


async def test_concurrent_opens_create_one_row_and_one_notice(db: Database) -> None:
    opened = await asyncio.gather(*(_open(db, "slack:T1:C1:1.0", f"U{i}") for i in range(12)))
    assert sum(o.created for o in opened) == 1
    assert len({o.escalation.id for o in opened}) == 1
    claims = await asyncio.gather(
        *(escalations.claim_notice(db, escalation_id=opened[0].escalation.id) for _ in range(6))
    )
    assert sum(claims) == 1
    # Once resolved, the conversation may be escalated again.
    assert await escalations.resolve_escalation(
        db, escalation_id=opened[0].escalation.id, resolved_by="UHELP"
    )
    again = await _open(db, "slack:T1:C1:1.0", "U1")
    assert again.created and again.escalation.id != opened[0].escalation.id


async def test_the_index_refuses_a_second_open_row(db: Database) -> None:
    await _open(db, "s1", "U1")
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(
                text(
                    "INSERT INTO escalations (session_id, platform, channel_id, requested_by, "
                    "status, created_at) VALUES ('s1', 'slack', 'C1', 'U2', 'open', "
                    "CURRENT_TIMESTAMP)"
                )
            )


async def test_upgrade_keeps_the_oldest_open_duplicate_and_downgrade_drops_the_rule(
    any_db_url: str,
) -> None:
    await migrate.upgrade(any_db_url, PREVIOUS)
    insert = (
        "INSERT INTO escalations (id, session_id, platform, channel_id, requested_by, status, "
        "created_at) VALUES (:id, :s, 'slack', 'C1', 'U1', :status, :at)"
    )
    rows = [
        (1, "dup", "open", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (2, "dup", "open", datetime(2024, 1, 1, 9, tzinfo=UTC)),  # the oldest: stays open
        (3, "dup", "open", datetime(2024, 1, 1, 11, tzinfo=UTC)),
        (4, "dup", "resolved", datetime(2024, 1, 1, 8, tzinfo=UTC)),
        (5, "single", "open", datetime(2024, 1, 1, 12, tzinfo=UTC)),
    ]
    for row_id, session_id, status, at in rows:
        stamp = at if any_db_url.startswith("postgresql") else at.strftime("%Y-%m-%d %H:%M:%S")
        await execute(
            any_db_url, insert, {"id": row_id, "s": session_id, "status": status, "at": stamp}
        )
    await migrate.upgrade(any_db_url, "head")
    found = await execute(any_db_url, "SELECT id, status, resolved_by FROM escalations ORDER BY id")
    assert [(r[0], r[1]) for r in found] == [
        (1, "resolved"),
        (2, "open"),
        (3, "resolved"),
        (4, "resolved"),
        (5, "open"),
    ]
    assert found[0][2] == found[2][2] == "system:duplicate"
    assert await migrate.check(any_db_url) == []
    await migrate.downgrade(any_db_url, PREVIOUS)
    await execute(any_db_url, "UPDATE escalations SET status = 'open'")  # allowed again
    await execute(any_db_url, "UPDATE escalations SET status = 'resolved' WHERE id <> 2")
    await migrate.upgrade(any_db_url, "head")


async def test_target_comes_from_channel_then_workspace_then_default(db: Database) -> None:
    async with db.session() as session:
        session.add(
            ChannelSetting(
                platform="slack", workspace_id="T1", channel_id="CBILL", escalation_target="CB S1"
            )
        )
        session.add(
            ChannelSetting(
                platform="discord", workspace_id="G1", channel_id="10", escalation_target="20"
            )
        )
    policy = EscalationPolicy(
        default_target="CDEFAULT", workspace_targets={"T2": "CTEAM2+U7"}, resolvers=Resolvers.TEAM
    )
    channels = ChannelSettings(db)

    def key(workspace: str, channel: str) -> ConversationKey:
        return ConversationKey(Platform.SLACK, workspace, channel, "1.0")

    assert await policy.target_for(channels, key("T1", "CBILL")) == ("CB", "S1")
    assert await policy.target_for(channels, key("T2", "CX")) == ("CTEAM2", "U7")
    assert await policy.target_for(channels, key("T1", "CX")) == ("CDEFAULT",)
    # A Discord thread's conversation names the thread: its channel's target applies.
    thread = ConversationKey(Platform.DISCORD, "G1", "30", "30")
    assert await policy.target_for(channels, thread, parent_channel_id="10") == ("20",)
    assert await policy.target_for(channels, thread) == ("CDEFAULT",)
