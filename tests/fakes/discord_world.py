"""A small Discord world for end-to-end tests: the fake REST API and gateway, one guild with a
help channel, a channel where threads are forbidden and a forum, plus helpers that act as users
(mention the bot, DM it, run slash commands, click buttons) through the real gateway protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import EPHEMERAL_FLAG, FakeDiscordAPI
from tests.fakes.discord_gateway import FakeDiscordGateway

FORUM_TAGS = ("answered by bot", "needs human", "solved")  # the forum's available tags

DOCS = {
    "passwords.md": (
        "# Passwords\n\n## Reset your password\n\n"
        "To reset your password, open Settings, choose Security and click Reset password. "
        "A reset link is emailed to you within five minutes.\n"
    ),
    "billing.md": (
        "# Billing\n\n## Invoices\n\n"
        "Invoices are sent on the first day of each month. Download past invoices from the "
        "Billing page under Account.\n"
    ),
}


def write_docs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in DOCS.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


@dataclass
class DiscordWorld:
    api: FakeDiscordAPI
    gateway: FakeDiscordGateway
    guild_id: str
    channel_id: str
    no_threads_channel_id: str
    forum_id: str
    alice: dict[str, Any] = field(default_factory=lambda: p.user(p.snowflake(), "alice"))
    bob: dict[str, Any] = field(default_factory=lambda: p.user(p.snowflake(), "bob"))
    support_role_id: str = ""  # a role in the guild, for the support team

    @classmethod
    async def start(cls, *, shards: int = 1, extra_guilds: int = 0) -> DiscordWorld:
        api = FakeDiscordAPI(shards=shards)
        await api.start()
        guild_id, channel_id, no_threads, forum = (p.snowflake() for _ in range(4))
        support_role = p.snowflake()
        guilds = [
            p.guild(
                guild_id,
                roles=[p.role(support_role, "support")],
                channels=[
                    p.text_channel(channel_id, guild_id, "help"),
                    p.text_channel(no_threads, guild_id, "announcements"),
                    {
                        **p.text_channel(forum, guild_id, "questions", kind=p.GUILD_FORUM),
                        "available_tags": [p.forum_tag(name) for name in FORUM_TAGS],
                    },
                ],
            )
        ]
        for _ in range(extra_guilds):
            other = p.snowflake()
            guilds.append(p.guild(other, channels=[p.text_channel(p.snowflake(), other, "x")]))
        for guild in guilds:
            for channel in guild["channels"]:
                api.channel_guild[channel["id"]] = guild["id"]
                api.channels[channel["id"]] = channel
        api.forbid_threads_in.add(no_threads)
        gateway = FakeDiscordGateway(
            bot_user=api.bot_user, application_id=api.application_id, guilds=guilds
        )
        api.gateway_url = await gateway.start()
        world = cls(api, gateway, guild_id, channel_id, no_threads, forum)
        world.support_role_id = support_role

        async def thread_created(thread: dict[str, Any]) -> None:
            # Discord tells the bot about threads it creates; so does the fake.
            with contextlib.suppress(AssertionError):
                await gateway.dispatch("THREAD_CREATE", {**thread, "newly_created": True})

        api.on_thread_created = thread_created

        async def message_deleted(event: dict[str, Any]) -> None:
            with contextlib.suppress(AssertionError):
                await gateway.dispatch("MESSAGE_DELETE", event, guild_id=event.get("guild_id"))

        api.on_message_deleted = message_deleted
        return world

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.api.stop()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings overrides pointing the bot at this world."""
        values: dict[str, Any] = {
            "discord_token": "fake-discord-token",
            "discord_api_url": self.api.base_url,
            "discord_message_content": True,
            "discord_forum_channels": self.forum_id,
        }
        values.update(overrides)
        return values

    # ----------------------------------------------------------------- acting as users
    def mention(self) -> str:
        return f"<@{self.api.bot_id}>"

    async def say(
        self,
        content: str,
        *,
        channel_id: str | None = None,
        author: dict[str, Any] | None = None,
        mention: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A user message in a guild channel or thread (MESSAGE_CREATE through the gateway)."""
        if mention:
            content = f"{self.mention()} {content}".rstrip()
        payload = p.message(
            message_id=message_id or p.snowflake(),
            channel_id=channel_id or self.channel_id,
            guild_id=self.guild_id,
            author=author or self.alice,
            content=content,
            mentions=[self.api.bot_user] if mention else [],
            attachments=attachments,
        )
        self.api.user_messages.append(payload)
        await self.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=self.guild_id)
        return payload

    async def delete(self, message: dict[str, Any]) -> None:
        """Someone (its author, or a moderator) deletes a message: it is gone from the channel
        and the gateway says MESSAGE_DELETE with its ids only, as Discord does."""
        message_id, channel_id = message["id"], message["channel_id"]
        self.api.user_deleted.add(message_id)
        self.api.user_messages[:] = [m for m in self.api.user_messages if m["id"] != message_id]
        if self.api.messages.pop(message_id, None) is not None:  # one of the bot's
            self.api.deleted.append(message)
            # An interaction's original response is also kept under its token.
            for key in [k for k, m in self.api.messages.items() if m["id"] == message_id]:
                del self.api.messages[key]
        event = self.api.delete_event(message_id, channel_id)
        if message.get("guild_id"):
            event["guild_id"] = message["guild_id"]
        await self.gateway.dispatch("MESSAGE_DELETE", event, guild_id=event.get("guild_id"))

    async def edit(self, message: dict[str, Any], content: str) -> dict[str, Any]:
        """Its author edits a message: the gateway says MESSAGE_UPDATE with the message as it
        is now (its ``edited_timestamp`` set), as Discord does. Returns the new version."""
        edited = {**message, "content": content, "edited_timestamp": p.timestamp()}
        self.api.user_messages[:] = [
            edited if m["id"] == message["id"] else m for m in self.api.user_messages
        ]
        await self.gateway.dispatch("MESSAGE_UPDATE", edited, guild_id=message.get("guild_id"))
        return edited

    async def bulk_delete(self, messages: list[dict[str, Any]]) -> None:
        """A moderator deletes several messages of one channel at once: MESSAGE_DELETE_BULK."""
        ids = [m["id"] for m in messages]
        self.api.user_deleted.update(ids)
        self.api.user_messages[:] = [m for m in self.api.user_messages if m["id"] not in ids]
        event = {"ids": ids, "channel_id": messages[0]["channel_id"], "guild_id": self.guild_id}
        await self.gateway.dispatch("MESSAGE_DELETE_BULK", event, guild_id=self.guild_id)

    async def dm(self, content: str, *, author: dict[str, Any] | None = None) -> dict[str, Any]:
        """A direct message; returns the payload (its channel_id is the DM channel)."""
        payload = p.message(
            message_id=p.snowflake(),
            channel_id=p.snowflake(),
            author=author or self.alice,
            content=content,
        )
        await self.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=None)
        return payload

    async def forum_post(self, content: str) -> tuple[str, dict[str, Any]]:
        """A new forum post: THREAD_CREATE in the forum, then its starter message."""
        thread_id = p.snowflake()
        thread = p.thread_channel(thread_id, self.guild_id, self.forum_id, content[:40], "1")
        self.api.channel_guild[thread_id] = self.guild_id
        self.api.threads[thread_id] = thread
        await self.gateway.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        message = await self.say(content, channel_id=thread_id, message_id=thread_id)
        return thread_id, message

    def thread_made_offline(self, parent_id: str | None = None, name: str = "a thread") -> str:
        """A thread someone started while the bot was not connected: Discord knows it, but no
        gateway event told the bot, so discord.py has not cached it. Returns its id."""
        thread_id = p.snowflake()
        self.api.threads[thread_id] = p.thread_channel(
            thread_id, self.guild_id, parent_id or self.channel_id, name, self.alice["id"]
        )
        self.api.channel_guild[thread_id] = self.guild_id
        return thread_id

    def channel_made_offline(self, name: str = "late") -> str:
        """A text channel discord.py has not cached (no gateway event named it). Returns its id."""
        channel_id = p.snowflake()
        self.api.channels[channel_id] = p.text_channel(channel_id, self.guild_id, name)
        self.api.channel_guild[channel_id] = self.guild_id
        return channel_id

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        channel: dict[str, Any] | None = None,
        author: dict[str, Any] | None = None,
        permissions: int | None = None,
    ) -> dict[str, Any]:
        """A slash command interaction (INTERACTION_CREATE, type 2); ``permissions``: the
        member's in that channel (default: a typical member's)."""
        data: dict[str, Any] = {"id": p.snowflake(), "name": name, "type": 1}
        if options:
            data["options"] = [
                {"name": k, "type": 5 if isinstance(v, bool) else 3, "value": v}
                for k, v in options.items()
            ]
        channel = channel or p.text_channel(self.channel_id, self.guild_id, "help")
        return await self.interact(
            kind=p.APPLICATION_COMMAND,
            data=data,
            author=author or self.alice,
            channel=channel,
            guild_id=channel.get("guild_id"),
            permissions=permissions,
        )

    async def interact(self, **fields: Any) -> dict[str, Any]:
        """Any interaction (``discord_payloads.interaction`` fields) through the gateway."""
        payload = p.interaction(application_id=self.api.application_id, **fields)
        self.api.interaction_channels[payload["token"]] = payload["channel_id"]
        self.api.interactions[payload["token"]] = payload
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=self.guild_id)
        return payload

    async def message_command(
        self,
        target: dict[str, Any],
        name: str = "Ask supportbot",
        *,
        author: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """Run a message command from ``target``'s Apps menu (INTERACTION_CREATE, type 2, data
        type 3 MESSAGE: ``target_id`` and the message in ``resolved.messages``), as ``author``
        (bob by default) in the channel or thread the message is in."""
        if channel is None:
            channel_id = target["channel_id"]
            thread = self.api.threads.get(channel_id)
            channel = thread or self.api.channels.get(channel_id)
            channel = channel or p.text_channel(channel_id, self.guild_id, "help")
        resolved = {k: v for k, v in target.items() if k not in ("guild_id", "member")}
        data = {
            "id": p.snowflake(),
            "name": name,
            "type": p.MESSAGE_COMMAND,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: resolved}},
        }
        return await self.interact(
            kind=p.APPLICATION_COMMAND,
            data=data,
            author=author or self.bob,
            channel=channel,
            guild_id=self.guild_id,
            app_permissions=app_permissions,
        )

    async def click(
        self,
        message: dict[str, Any],
        custom_id: str,
        *,
        author: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        roles: list[str] | None = None,
        dm: bool = False,
    ) -> dict[str, Any]:
        """Click a button of a message the bot sent (INTERACTION_CREATE, type 3); ``dm``: in
        the clicker's DM with the bot (no guild)."""
        if dm:
            channel = {"id": message["channel_id"], "type": p.DM}
        elif channel is None:
            channel_id = message["channel_id"]
            thread = self.api.threads.get(channel_id)
            channel = thread or p.text_channel(channel_id, self.guild_id, "help")
        return await self.interact(
            kind=p.MESSAGE_COMPONENT,
            data={"custom_id": custom_id, "component_type": 2},
            author=author or self.alice,
            channel=channel,
            guild_id=None if dm else self.guild_id,
            message_payload=message,
            roles=roles,
        )

    # ----------------------------------------------------------------- observing the bot
    async def bot_messages(
        self, channel_id: str, count: int = 1, *, timeout: float = 15.0, final: bool = True
    ) -> list[dict[str, Any]]:
        """Wait for ``count`` bot messages in a channel (final: the answer's buttons/edits done)."""

        def ready() -> list[dict[str, Any]] | None:
            found = self.api.channel_messages(channel_id)
            if len(found) < count:
                return None
            if final and any(m["content"].endswith("▌") for m in found):
                return None  # still streaming
            return found

        return await self.api.wait_for(ready, timeout=timeout, what=f"{count} bot message(s)")

    async def interaction_done(self, token: str, *, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until an interaction's deferred response has been filled in with the answer."""

        def ready() -> list[dict[str, Any]] | None:
            found = self.api.interaction_messages(token)
            if found and found[0].get("edits") and not found[0]["content"].endswith("▌"):
                return found
            return None

        return await self.api.wait_for(ready, timeout=timeout, what="interaction answer")

    async def answer_to(self, token: str, *, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until an interaction is answered, publicly or privately (see ``answered``)."""
        return await self.api.wait_for(
            lambda: self.answered(token), timeout=timeout, what="interaction answer"
        )

    def answered(self, token: str) -> dict[str, Any] | None:
        """An interaction's answer: its deferred response once filled in, or the ephemeral
        follow-up that took its place (``private_answer``); None until then."""
        found = self.api.interaction_messages(token)
        if found and (found[0].get("edits") or found[0].get("followup")):
            return found[0]
        return None

    async def private_answer(self, token: str, *, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until an interaction's public deferred response has given way to an answer for
        its user alone: the response deleted, one ephemeral follow-up."""

        def ready() -> dict[str, Any] | None:
            found = self.api.interaction_messages(token)
            private = [m for m in found if m.get("followup") and m["flags"] & EPHEMERAL_FLAG]
            gone = f"original:{token}" not in self.api.messages
            return private[0] if gone and len(found) == len(private) == 1 else None

        return await self.api.wait_for(ready, timeout=timeout, what="private answer")


async def wait_until(predicate: Any, *, timeout: float = 10.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
