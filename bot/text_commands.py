"""Commands said in words: a message whose whole text is "forget" (or "forget this thread"),
in a language the bot speaks ("oublie ça", "vergiss das", "olvídalo").

Slack slash commands carry no thread, so ``/forget`` cannot reach a conversation held in a
channel thread; saying it in the thread can, on every platform. Only a message that is nothing
but the command counts: "how do I forget my password?" is a question, not a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.messages import IncomingMessage
from bot.smalltalk import words_of

# Letters and digits, with one inner apostrophe ("s'il", "l'historique"): "forget 2" is no
# command.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True, slots=True)
class ForgetWords:
    """One language's ways to say "forget" as a whole message, as words in lower case without
    accents. A message is matched against one language at a time, never a mix."""

    phrases: frozenset[tuple[str, ...]]
    # Said before or after a phrase, or both ("please forget this", "oublie ça stp").
    polite: frozenset[tuple[str, ...]]


def _phrases(*spaced: str) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(phrase.split()) for phrase in spaced)


# The languages a channel may choose for its refusal (texts.NOT_IN_DOCS_TRANSLATIONS), as in
# bot.smalltalk.
FORGET_WORDS: dict[str, ForgetWords] = {
    "en": ForgetWords(
        phrases=_phrases(
            "forget", "forget this", "forget it", "forget this conversation",
            "forget this thread", "forget the conversation", "forget the thread",
            "forget everything",
        ),
        polite=_phrases("please", "pls"),
    ),
    "fr": ForgetWords(
        phrases=_phrases(
            "oublie", "oubliez", "oublie ca", "oubliez ca", "oublie cela", "oubliez cela",
            "oublie tout", "oubliez tout", "oublie cette conversation",
            "oubliez cette conversation", "oublie la conversation", "oubliez la conversation",
            "oublie ce fil", "oubliez ce fil", "oublie le fil", "oubliez le fil",
            "oublie cette discussion", "oubliez cette discussion",
        ),
        polite=_phrases("svp", "stp", "s'il te plait", "s'il vous plait", "merci"),
    ),
    "de": ForgetWords(
        phrases=_phrases(
            "vergiss", "vergiss das", "vergiss es", "vergiss alles", "vergessen sie das",
            "vergessen sie alles", "vergiss diesen thread", "vergiss den thread",
            "vergiss dieses gesprach", "vergiss das gesprach", "vergiss diese unterhaltung",
            "vergiss die unterhaltung", "vergessen sie diesen thread",
            "vergessen sie dieses gesprach", "vergessen sie diese unterhaltung",
        ),
        polite=_phrases("bitte", "danke"),
    ),
    "es": ForgetWords(
        phrases=_phrases(
            # Not the formal "olvide ...": without its accent it reads "olvidé" (I forgot).
            "olvida", "olvidalo", "olvidelo", "olvida esto", "olvida todo",
            "olvida esta conversacion", "olvida la conversacion", "olvida este hilo",
            "olvida el hilo",
        ),
        polite=_phrases("por favor", "porfa", "gracias"),
    ),
}  # fmt: skip


def is_forget_request(text: str) -> bool:
    """Is ``text`` (a leading slash, mentions, case, accents and punctuation aside) a forget
    command in one of the bot's languages?"""
    words = tuple(words_of(text, _WORD))
    return any(_says(words, language) for language in FORGET_WORDS.values())


def _says(words: tuple[str, ...], language: ForgetWords) -> bool:
    """``words`` are one of the language's phrases, with polite words before or after it."""
    for before in (None, *language.polite):
        if before is not None and words[: len(before)] != before:
            continue
        rest = words[len(before or ()) :]
        for after in (None, *language.polite):
            if after is not None and rest[len(rest) - len(after) :] != after:
                continue
            if rest[: len(rest) - len(after or ())] in language.phrases:
                return True
    return False


def forget_request(msg: IncomingMessage) -> bool:
    """A forget command said to the bot: mentioning it, in a DM, or as a reply in a thread
    (the adapters deliver those only in threads the bot follows). A new post that nobody
    addressed to the bot (an auto-answer channel's) is not one: it starts its own thread."""
    if msg.command is not None or not is_forget_request(msg.text):
        return False
    thread = msg.conversation.thread_id
    return msg.mentions_bot or msg.is_direct or thread not in (None, msg.id)
