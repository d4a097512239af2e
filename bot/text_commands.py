"""Commands said in words: a message whose whole text is "forget" (or "forget this thread").

Slack slash commands carry no thread, so ``/forget`` cannot reach a conversation held in a
channel thread; saying it in the thread can, on every platform. Only a message that is nothing
but the command counts: "how do I forget my password?" is a question, not a command.
"""

from __future__ import annotations

import re

from bot.messages import IncomingMessage

_MENTION = re.compile(r"<[@#!][^>]*>")
_WORD = re.compile(r"\w+")
# Whole messages (as words, case and punctuation aside) that ask the bot to forget where they
# are said; "please" may come before or after any of them.
FORGET_PHRASES = frozenset(
    tuple(phrase.split())
    for phrase in (
        "forget",
        "forget this",
        "forget it",
        "forget this conversation",
        "forget this thread",
        "forget the conversation",
        "forget the thread",
        "forget everything",
    )
)
POLITE = frozenset({"please", "pls"})


def is_forget_request(text: str) -> bool:
    """Is ``text`` (a leading slash, mentions, case and punctuation aside) a forget command?"""
    words = [w for w in _WORD.findall(_MENTION.sub(" ", text).lower()) if w not in POLITE]
    return tuple(words) in FORGET_PHRASES


def forget_request(msg: IncomingMessage) -> bool:
    """A forget command said to the bot: mentioning it, in a DM, or as a reply in a thread
    (the adapters deliver those only in threads the bot follows). A new post that nobody
    addressed to the bot (an auto-answer channel's) is not one: it starts its own thread."""
    if msg.command is not None or not is_forget_request(msg.text):
        return False
    thread = msg.conversation.thread_id
    return msg.mentions_bot or msg.is_direct or thread not in (None, msg.id)
