"""Per-channel behaviour as the core sees it, read per message through a short TTL cache.

``supportbot channels set`` (another process) writes the ``channel_settings`` table; every
process reads it here at most once per ``ttl`` seconds per workspace, so a change takes effect
within seconds, without a restart, at the cost of one cheap indexed query per workspace and TTL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

from bot import texts
from bot.messages import ConversationKey, Platform
from storage import channel_settings
from storage.db import Database, unreachable

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 5.0
# Past this many cached workspaces the expired ones go, or a bot in many Slack workspaces or
# Discord servers would keep the settings of every one it ever answered in.
CACHE_PRUNE_AT = 1024
FORUM_TAG_ROLES = ("answered", "needs_human", "solved")
MAX_PREFIX_CHARS = 255


@dataclass(frozen=True)
class ChannelPolicy:
    """What one channel asks of the bot; the defaults are the behaviour without a row."""

    auto_answer: bool = False
    ephemeral: bool = False
    escalation_target: str | None = None
    knowledge_filter: str | None = None  # a source prefix such as "billing/"
    refusal_language: str | None = None
    unanswered_reaction: str | None = None  # emoji name; None = stay silent
    forum_tags: dict[str, str] = field(default_factory=dict)  # role -> forum tag name
    archive_on_resolve: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ChannelPolicy:
        if row is None:
            return cls()
        return cls(
            auto_answer=bool(row.auto_answer),
            ephemeral=bool(row.ephemeral),
            escalation_target=row.escalation_target or None,
            knowledge_filter=row.knowledge_filter or None,
            refusal_language=row.refusal_language or None,
            unanswered_reaction=row.unanswered_reaction or None,
            forum_tags={k: str(v) for k, v in (row.forum_tags or {}).items() if v},
            archive_on_resolve=bool(row.archive_on_resolve),
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def refusal_text(self, platform: Platform, *, command: bool = False) -> str:
        """The refusal in this channel's language, offering a human the way the reply can:
        ``command`` when it answers a slash command (Slack's has no buttons)."""
        return texts.not_in_docs(self.refusal_language, platform.human_route(command=command))


DEFAULT_POLICY = ChannelPolicy()  # a channel without a row


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Operator input (CLI, admin page, slash command) -> column values; ValueError says why."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("auto_answer", "ephemeral", "archive_on_resolve"):
            out[name] = parse_bool(value, name)
        elif name == "knowledge_filter":
            prefix = str(value or "").strip().lstrip("/")
            if len(prefix) > MAX_PREFIX_CHARS or "'" in prefix or "%" in prefix:
                raise ValueError("knowledge filter: a folder prefix such as billing/")
            out[name] = prefix or None
        elif name == "refusal_language":
            language = str(value or "").strip().lower() or None
            if language and language not in texts.NOT_IN_DOCS_TRANSLATIONS:
                known = ", ".join(sorted(texts.NOT_IN_DOCS_TRANSLATIONS))
                raise ValueError(f"refusal language must be one of {known}")
            out[name] = language
        elif name == "unanswered_reaction":
            emoji = str(value or "").strip().strip(":")
            if len(emoji) > 64 or any(ch.isspace() for ch in emoji):
                raise ValueError("unanswered reaction: an emoji name such as eyes")
            out[name] = emoji or None
        elif name == "escalation_target":
            out[name] = str(value or "").strip()[:255] or None
        elif name == "forum_tags":
            tags = dict(value or {})
            bad = set(tags) - set(FORUM_TAG_ROLES)
            if bad:
                raise ValueError(f"forum tag roles are {', '.join(FORUM_TAG_ROLES)}")
            out[name] = {k: str(v).strip()[:100] for k, v in tags.items() if str(v).strip()}
        else:
            raise ValueError(f"unknown channel setting {name}")
    return out


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off")


class ChannelSettings:
    """Reads channel policies through a per-workspace TTL cache. A failed read means the last
    known settings, else the defaults (and a logged warning): a settings outage must not stop
    the bot from answering.

    One read fetches every configured channel of a workspace: only the channels an operator
    set up have rows, so most conversations (DMs, Discord threads, channels nobody configured)
    are answered from the cache, with no query of their own, and a burst of new DMs or threads
    costs one query per workspace and TTL instead of one per channel.
    """

    def __init__(
        self, db: Database, *, ttl: float = DEFAULT_TTL_SECONDS, prune_at: int = CACHE_PRUNE_AT
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.prune_at = prune_at
        self._cache: dict[tuple[str, str], tuple[float, dict[str, ChannelPolicy]]] = {}

    async def policy(
        self, conversation: ConversationKey, *, parent_channel_id: str | None = None
    ) -> ChannelPolicy:
        """The settings of the conversation's channel; for a Discord thread, of its parent
        channel (a row for the thread itself is not read)."""
        channel = parent_channel_id or conversation.channel_id
        configured = await self._workspace(conversation.platform.value, conversation.workspace_id)
        return configured.get(channel, DEFAULT_POLICY)

    async def _workspace(self, platform: str, workspace_id: str) -> dict[str, ChannelPolicy]:
        """Channel id -> policy of every configured channel of the workspace, at most ``ttl``
        seconds old."""
        key = (platform, workspace_id)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            rows = await channel_settings.read_workspace(
                self.db, platform=platform, workspace_id=workspace_id
            )
            configured = {row.channel_id: ChannelPolicy.from_row(row) for row in rows}
        except Exception as exc:
            passing = unreachable(exc)  # an outage is expected: its reason, not a traceback
            log.warning(
                "reading channel settings of %s %s failed%s; using %s",
                platform,
                workspace_id or "direct messages",
                f": the database is unreachable ({type(exc).__name__})" if passing else "",
                "the last known ones" if cached is not None else "defaults",
                exc_info=not passing,
            )
            configured = cached[1] if cached is not None else {}
        if len(self._cache) >= self.prune_at:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.ttl}
        self._cache[key] = (now, configured)
        return configured

    def cached(self) -> int:
        """How many workspaces' settings are held (tests, diagnostics)."""
        return len(self._cache)

    def invalidate(self) -> None:
        """Forget cached policies (this process changed a setting itself)."""
        self._cache.clear()
