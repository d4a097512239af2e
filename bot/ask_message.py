""" "Ask supportbot" on a message someone already wrote (docs/architecture.md, "Asking about a
message"): a Slack message shortcut or a Discord message command points the bot at a question
in a channel, and the bot answers it in that message's thread as if it had been mentioned.

What is not wire format lives here, once for both platforms:

- **Who asks.** The message's author is the asker, not the person who clicked: the question is
  stored under their name, so they can follow up in the thread without mentioning the bot
  (``MemoryPolicy.follows``) and may clear that thread with ``/forget``. The clicker is told
  privately what happened (or what is wrong); the answer itself is public, in the thread,
  unless the channel's answers are private (``Responder.answers_privately``): then, as for a
  mention there, only the author sees it.
- **Once per message.** The claim key is the message's own ledger key, the one a mention of it
  is claimed with (Slack: ``msg:<team>:<channel>:<ts>``; Discord: the message id). A double
  click, a second teammate, or a click on a message the bot already answered as a mention all
  find the row taken, and the clicker is told that instead of the thread getting a second answer.
  Not so the same click delivered again (it finds its own claim: nothing is told or done), nor
  a message whose earlier answer failed (the explicit ask answers it anew).
- **What cannot be asked.** A bot's message, a message without text (or with only
  attachments), or text that does not read as a question: the clicker gets one short sentence.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from bot import texts
from bot.inbox import Deliver, Inbox
from bot.messages import IncomingMessage
from bot.responder import clean_text

log = logging.getLogger(__name__)

# The payload key of such work naming the moment it was asked (Slack: the click's ts; Discord:
# the interaction's snowflake): replies of ours in the thread from before it are not this
# answer's, so another attempt never removes them (the question may be old, its thread busy).
ANSWER_AFTER_KEY = "answer_after"
# The payload key naming the request (click) that claimed the message: the same request
# delivered again finds it and is not told the message was taken (by itself).
REQUEST_KEY = "asked_by_request"


def refusal(*, from_bot: bool, text: str, attachments: int = 0) -> str | None:
    """Why this message cannot be asked about (a sentence for the clicker), or None.

    ``text`` is the message's plain text (markup and the bot's mention removed)."""
    if from_bot:
        return texts.ASK_MESSAGE_FROM_BOT
    _question, problem = clean_text(text, limit=len(text) or 1)
    if problem == "empty":
        return texts.ASK_MESSAGE_ONLY_ATTACHMENTS if attachments else texts.ASK_MESSAGE_EMPTY
    if problem == "unreadable":
        return texts.ASK_MESSAGE_UNREADABLE
    return None


def as_question(message: IncomingMessage) -> IncomingMessage:
    """The message as a question to the bot: addressed to it (so an auto-answer channel's
    confidence gate does not hold it back: someone asked explicitly), by its own author."""
    return replace(message, mentions_bot=True, command=None)


def claim_key(message_key: str) -> str:
    """The ledger key that asking about a message is claimed with: the key of the message
    itself (see the module doc), so every way of asking about it answers it once."""
    return message_key


async def claim(
    inbox: Inbox,
    key: str,
    payload: dict[str, Any],
    *,
    request: str,
    run: Deliver | None = None,
) -> str | None:
    """Claim the message (``key``, from :func:`claim_key`) for this request (``request``: the
    click's own id, the same when the platform delivers it again); what the clicker is told
    then: nothing when the answer is theirs to see in the thread, else that it was taken.

    - The same click delivered again (a Socket Mode redelivery whose ack was lost) finds its
      own claim: nothing is told and nothing is done twice.
    - A message whose earlier answer failed (given up, or refused by the platform) does not
      count as taken: the explicit ask claims it again, as new work.
    """
    payload = {**payload, REQUEST_KEY: request}
    if await inbox.submit(key, payload, run=run):
        return None
    held = await inbox.claimed_payload(key)
    if held is not None and held.get(REQUEST_KEY) == request:
        log.info("%s: the same request delivered again; already taken by it", key)
        return None
    if await inbox.submit_again(key, payload, run=run):
        log.info("%s: its earlier answer failed; answering it again as asked", key)
        return None
    return texts.ASK_MESSAGE_ALREADY
