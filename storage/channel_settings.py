"""Per-channel behaviour (the ``channel_settings`` table): read, upsert, list, delete.

Keys are ``(platform, workspace_id, channel_id)``; an absent row means the defaults. Values are
validated by the caller (the core's :mod:`bot.channels`); this module only stores them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import ChannelSetting

# Columns an operator may set, with nothing else (ids and timestamps are ours).
SETTABLE = (
    "auto_answer",
    "ephemeral",
    "escalation_target",
    "knowledge_filter",
    "refusal_language",
    "unanswered_reaction",
    "forum_tags",
    "archive_on_resolve",
)


async def get_setting(
    db: Database, *, platform: str, workspace_id: str, channel_id: str
) -> ChannelSetting | None:
    async with db.single_statement() as session:
        return await session.scalar(
            select(ChannelSetting).where(
                ChannelSetting.platform == platform,
                ChannelSetting.workspace_id == workspace_id,
                ChannelSetting.channel_id == channel_id,
            )
        )


async def read_workspace(db: Database, *, platform: str, workspace_id: str) -> list[Row[Any]]:
    """``channel_id`` and the :data:`SETTABLE` columns of every configured channel of one
    workspace (Slack team, Discord server; "" for Discord DMs): a prebuilt Core SELECT on the
    (platform, workspace_id, channel_id) unique index, no ORM objects."""
    async with db.reads() as conn:
        result = await conn.execute(
            _READ_WORKSPACE, {"b_platform": platform, "b_workspace": workspace_id}
        )
        return list(result.all())


_TABLE: Table = ChannelSetting.__table__  # type: ignore[assignment]
_READ_WORKSPACE = select(_TABLE.c.channel_id, *(_TABLE.c[name] for name in SETTABLE)).where(
    _TABLE.c.platform == bindparam("b_platform"),
    _TABLE.c.workspace_id == bindparam("b_workspace"),
)


async def upsert_setting(
    db: Database, *, platform: str, workspace_id: str, channel_id: str, **values: Any
) -> ChannelSetting:
    """Create the channel's row or change the given columns; other columns keep their value."""
    unknown = set(values) - set(SETTABLE)
    if unknown:
        raise ValueError(f"unknown channel setting(s): {', '.join(sorted(unknown))}")
    key = {"platform": platform, "workspace_id": workspace_id, "channel_id": channel_id}
    try:
        return await _upsert(db, key, values)
    except IntegrityError:  # another writer created the row first: change theirs
        return await _upsert(db, key, values)


async def _upsert(db: Database, key: dict[str, str], values: dict[str, Any]) -> ChannelSetting:
    platform, workspace_id, channel_id = key["platform"], key["workspace_id"], key["channel_id"]
    async with db.session() as session:
        row = await session.scalar(
            select(ChannelSetting)
            .where(
                ChannelSetting.platform == platform,
                ChannelSetting.workspace_id == workspace_id,
                ChannelSetting.channel_id == channel_id,
            )
            .with_for_update()
        )
        if row is None:
            row = ChannelSetting(
                platform=platform, workspace_id=workspace_id, channel_id=channel_id
            )
            row.auto_answer = False
            row.ephemeral = False
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
    return row


async def list_settings(db: Database, *, platform: str | None = None) -> list[ChannelSetting]:
    async with db.single_statement() as session:
        query = select(ChannelSetting).order_by(
            ChannelSetting.platform, ChannelSetting.workspace_id, ChannelSetting.channel_id
        )
        if platform is not None:
            query = query.where(ChannelSetting.platform == platform)
        return list((await session.scalars(query)).all())


async def delete_setting(
    db: Database, *, platform: str, workspace_id: str, channel_id: str
) -> bool:
    async with db.session() as session:
        result = await session.execute(
            delete(ChannelSetting).where(
                ChannelSetting.platform == platform,
                ChannelSetting.workspace_id == workspace_id,
                ChannelSetting.channel_id == channel_id,
            )
        )
        return result.rowcount == 1
