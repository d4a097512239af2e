"""adapters.discord.convert: gateway payloads -> IncomingMessage (pure)."""

from __future__ import annotations

from adapters.discord import convert
from adapters.discord.convert import ChannelContext, ChannelKind
from bot.messages import ConversationKey, Platform
from tests.fakes import discord_payloads as p

BOT = "900"
GUILD = "100"
CHANNEL = "200"
ALICE = p.user("300", "alice")


def _message(content: str, **kwargs) -> dict:
    return p.message(
        message_id="555",
        channel_id=CHANNEL,
        guild_id=GUILD,
        author=ALICE,
        content=content,
        **kwargs,
    )


def _incoming(payload: dict, kind: ChannelKind = ChannelKind.CHANNEL, names=None):
    return convert.message_to_incoming(
        payload, bot_user_id=BOT, context=ChannelContext(kind=kind, names=names or {})
    )


def test_mention_is_stripped_and_flagged() -> None:
    for mention in (f"<@{BOT}>", f"<@!{BOT}>"):
        msg = _incoming(
            _message(
                f"{mention} how do I  reset my password?", mentions=[p.user(BOT, "sb", bot=True)]
            )
        )
        assert msg is not None
        assert msg.text == "how do I reset my password?"
        assert msg.mentions_bot
        assert not msg.is_direct
        assert msg.conversation.session_id == f"discord:{GUILD}:{CHANNEL}"
        assert msg.author.display_name == "alice"


def test_other_markup_becomes_plain_text() -> None:
    bob = p.user("301", "bob")
    payload = _message(
        f"<@{BOT}> ask <@301> and <@&400> in <#200> about <:party:123> and </ask:77>",
        mentions=[bob],
    )
    msg = _incoming(payload, names={"400": "admins", "200": "help"})
    assert msg is not None
    assert msg.text == "ask @bob and @admins in #help about :party: and /ask"
    assert msg.mentions_bot  # from the content, even without a mentions list entry


def test_bots_itself_and_system_messages_are_ignored() -> None:
    other_bot = p.message(
        message_id="1",
        channel_id=CHANNEL,
        guild_id=GUILD,
        author=p.user("9", "b", bot=True),
        content="hi",
    )
    assert _incoming(other_bot) is None
    itself = p.message(message_id="2", channel_id=CHANNEL, author=p.user(BOT, "sb"), content="hi")
    assert _incoming(itself) is None
    system = _message("joined")
    system["type"] = 7
    assert _incoming(system) is None


def test_empty_and_malformed_payloads_are_ignored() -> None:
    assert _incoming(_message("")) is None  # no message-content intent: empty content
    assert _incoming({"id": "1"}) is None
    assert _incoming({"author": "nobody", "content": "x"}) is None
    assert _incoming({"author": {"id": "5"}, "content": "x"}) is None  # no ids


def test_attachments_only_message_is_kept() -> None:
    msg = _incoming(_message("", attachments=[p.attachment("log.txt", 10)]))
    assert msg is not None
    assert msg.text == ""
    assert msg.attachments[0].name == "log.txt"
    assert msg.attachments[0].size == 10


def test_sessions_per_thread_dm_and_channel() -> None:
    thread = convert.conversation_for(guild_id=GUILD, channel_id="700", kind=ChannelKind.THREAD)
    assert thread == convert.thread_conversation(guild_id=GUILD, thread_id="700")
    assert thread.session_id == f"discord:{GUILD}:700:700"
    dm = p.message(message_id="3", channel_id="800", author=ALICE, content="hello")
    msg = _incoming(dm, ChannelKind.DM)
    assert msg is not None and msg.is_direct
    assert msg.conversation.platform is Platform.DISCORD
    assert msg.conversation.session_id == "discord:-:800"


def test_channel_kinds_from_types() -> None:
    assert convert.kind_from_channel_type(1, guild_id=None) is ChannelKind.DM
    assert convert.kind_from_channel_type(None, guild_id=None) is ChannelKind.DM
    assert convert.kind_from_channel_type(11, guild_id=GUILD) is ChannelKind.THREAD
    assert convert.kind_from_channel_type(0, guild_id=GUILD) is ChannelKind.CHANNEL


def test_slash_command_interaction() -> None:
    payload = p.interaction(
        kind=p.APPLICATION_COMMAND,
        application_id="1",
        data={
            "name": "ask",
            "type": 1,
            "options": [{"name": "question", "type": 3, "value": " Why? "}],
        },
        author=ALICE,
        channel=p.thread_channel("701", GUILD, CHANNEL, "t", "300"),
        guild_id=GUILD,
    )
    msg = convert.interaction_to_incoming(payload)
    assert msg is not None
    assert msg.command == "ask"
    assert msg.text == "Why?"
    assert msg.conversation.session_id == f"discord:{GUILD}:701:ask-{ALICE['id']}"
    dm_payload = p.interaction(
        kind=p.APPLICATION_COMMAND,
        application_id="1",
        data={"name": "forget", "type": 1},
        author=ALICE,
        channel={"id": "801", "type": 1},
    )
    dm = convert.interaction_to_incoming(dm_payload)
    assert dm is not None and dm.is_direct and dm.command == "forget" and dm.text == ""


def test_unusable_interactions_give_none() -> None:
    assert convert.interaction_to_incoming({"type": 2}) is None
    assert convert.interaction_to_incoming({"type": 3, "data": {"custom_id": "x"}}) is None
    assert convert.interaction_to_incoming({"type": 2, "id": "1", "data": {"name": "ask"}}) is None


def test_session_ids_parse_back_into_their_conversation() -> None:
    thread = convert.thread_conversation(guild_id="11", thread_id="22")
    dm = ConversationKey(Platform.DISCORD, "", "33")
    for key in (thread, dm):
        assert ConversationKey.from_session_id(key.session_id) == key
    assert ConversationKey.from_session_id("discord:1") is None
    assert ConversationKey.from_session_id("teams:1:2") is None
