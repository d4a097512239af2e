"""All tables (docs/architecture.md, "Layout"), SQLAlchemy 2.0 typed declarative.

The JSON column of ``memories`` is ``tool_metadata``. It may never be called ``metadata``: the
Declarative API reserves that attribute for the table collection. SQLAlchemy 2.0 raises
``InvalidRequestError: Attribute name 'metadata' is reserved`` at import (the original bug);
2.1 only warns, and the column then hides ``Base.metadata`` on that class.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names on SQLite and PostgreSQL, so batch migrations can find them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON everywhere, JSONB on PostgreSQL. none_as_null: Python None is SQL NULL, not JSON 'null'.
JsonType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# BIGINT keys on PostgreSQL; SQLite only autoincrements a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite stores no zone and would return naive values (PostgreSQL returns aware ones); mixing
    the two makes comparisons raise. Values are stored as UTC; naive input is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Memory(Base):
    """One turn of a conversation (user, assistant, tool or running summary)."""

    __tablename__ = "memories"
    __table_args__ = (Index("ix_memories_session_id_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    content: Mapped[str] = mapped_column(Text, default="")
    tool_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        MutableDict.as_mutable(JsonType), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessedEvent(Base):
    """The exactly-once ledger: one row per platform event, carrying the state of its work.

    ``status`` is received -> answering (with ``lease_until``) -> answered | ignored | failed.
    ``payload`` keeps what is needed to answer, so a restarted process can finish acked work.
    ``asker`` names the asker and conversation of a question (None for other work): the
    inbox answers one asker's questions there one at a time, across processes, through it.
    """

    __tablename__ = "processed_events"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        Index("ix_processed_events_status_lease_until", "status", "lease_until"),
        # Only rows someone may still hold (a lease is set): small, whatever the ledger's size.
        Index(
            "ix_processed_events_asker_held",
            "platform",
            "asker",
            postgresql_where=text("lease_until IS NOT NULL"),
            sqlite_where=text("lease_until IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    asker: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Feedback(Base):
    """A helpful / not helpful vote on one answer; one vote per user per answer."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("memory_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    memory_id: Mapped[int | None] = mapped_column(
        ForeignKey("memories.id", ondelete="SET NULL"), nullable=True
    )
    session_id: Mapped[str] = mapped_column(String(255), default="")
    user_id: Mapped[str] = mapped_column(String(255))
    value: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Escalation(Base):
    """A request to hand a conversation to a human."""

    __tablename__ = "escalations"
    # At most one open hand-off per conversation, enforced by the database itself: a double
    # click or two replicas racing get one row (insert-or-conflict), hence one notice.
    __table_args__ = (
        Index(
            "uq_escalations_open_session",
            "session_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(255), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    notice_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ChannelSetting(Base):
    """Per-channel behaviour: auto-answer, ephemeral, escalation target, knowledge filter."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "channel_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(255), default="")
    channel_id: Mapped[str] = mapped_column(String(255))
    auto_answer: Mapped[bool] = mapped_column(Boolean, default=False)
    ephemeral: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_target: Mapped[str | None] = mapped_column(String(255), nullable=True)
    knowledge_filter: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Added by 0008_ops; nullable so existing rows need no default (None = the built-in one).
    refusal_language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unanswered_reaction: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Discord forum tag names by role: {"answered": ..., "needs_human": ..., "solved": ...}.
    forum_tags: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    archive_on_resolve: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class LearnedAnswer(Base):
    """A human's answer from a resolved hand-off, waiting for review before it enters the KB.

    One draft per escalation (unique), so resolving twice or a retried resolve adds nothing.
    ``status`` is draft -> approved | rejected; approval writes ``document_source`` to the KB.
    """

    __tablename__ = "learned_answers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    escalation_id: Mapped[int] = mapped_column(BigId, unique=True)
    session_id: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    thread_link: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    document_source: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- Slack OAuth (slack adapter) ----------------------------------------------------------------
# slack_sdk's AsyncSQLAlchemyInstallationStore / AsyncSQLAlchemyOAuthStateStore read and write
# these tables with their own Table objects; the definitions below mirror
# slack_sdk/oauth/installation_store/sqlalchemy and state_store/sqlalchemy column for column
# (naive DateTime included, as slack_sdk writes naive UTC), so Alembic manages them with the rest.
# Migration: migrations/versions/0005_slack_oauth.py.

from sqlalchemy import Column, Table, func  # noqa: E402

slack_installations = Table(
    "slack_installations",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index(
        "slack_installations_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)

slack_bots = Table(
    "slack_bots",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
