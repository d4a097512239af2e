"""Messages that are not questions: thanks, "ok", a thumbs-up, and a yes or no to the bot's offer
of a human.

Searched like a question, "thanks!" in a thread gets "I couldn't find this in the documentation
... Would you like me to bring in a human?", which is wrong and noisy, and it would be counted
as an unanswered question in the report's coverage gaps. A "yes" right after that refusal means
"bring in a human", which the refusal itself offered.
"""

from __future__ import annotations

import enum
import re
import unicodedata

from bot import texts

# The reaction an acknowledgement gets instead of a message (Slack's name; Discord maps it).
ACKNOWLEDGED_REACTION = "+1"
MAX_WORDS = 8  # "ok that worked, thank you so much!" is eight; longer is a question or a story

_MENTION = re.compile(r"<[@#!][^>]*>")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Words that make a message an acknowledgement (at least one must be there) ...
# fmt: off
THANKS = frozenset({
    "thanks", "thank", "thx", "ty", "tysm", "tyvm", "cheers", "ok", "okay", "k", "kk", "great",
    "perfect", "awesome", "cool", "nice", "excellent", "brilliant", "wonderful", "worked", "works",
    "working", "solved", "fixed", "helped", "helpful", "appreciated", "appreciate", "nvm",
    "nevermind", "got", "gotcha", "understood", "noted", "sense",
})
# ... and words that may come with them ("that worked, thank you so much").
ALONGSIDE = frozenset({
    "you", "so", "much", "a", "lot", "very", "many", "it", "that", "this", "now", "all", "for",
    "the", "help", "again", "makes", "just", "really", "good", "fine", "sounds", "super", "mate",
    "man", "guys", "bot", "indeed", "oh", "ah", "yes", "yeah", "yep", "mind", "never", "it's",
    "that's", "thats", "everyone", "i", "we",
})
# fmt: on
# "ok" is not a yes: it may only acknowledge, and a yes pings the team.
YES = frozenset({"yes", "yeah", "yep", "yup", "sure", "y", "please", "do", "go", "ahead"})
NO = frozenset({"no", "nope", "nah", "not", "now", "thanks", "thank", "you", "n", "later"})
POSITIVE_EMOJI = frozenset("👍🙏🎉✅👌❤🙌😊🙂💯🔥✨🥳😀😃😄🤝👏")


class OfferReply(enum.Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"


def words_of(text: str) -> list[str]:
    return _WORD.findall(_MENTION.sub(" ", text).lower().replace("’", "'"))


def is_acknowledgement(text: str) -> bool:
    """Thanks, "ok", "that worked", or only positive emoji (skin tones and variation selectors
    allowed): something to acknowledge, not a question to search for."""
    words = words_of(text)
    if not words:
        symbols = [
            ch
            for ch in _MENTION.sub("", text)
            if not ch.isspace() and unicodedata.category(ch) not in ("Po", "Mn", "Sk", "Cf")
        ]
        return bool(symbols) and all(_positive(ch) for ch in symbols)
    if len(words) > MAX_WORDS or "?" in text:
        return False
    return any(w in THANKS for w in words) and all(w in THANKS or w in ALONGSIDE for w in words)


def reply_to_offer(text: str, history: list[dict[str, str]]) -> OfferReply | None:
    """A yes or no to the human the bot offered in its last message (its refusal), else None."""
    if not history or history[-1].get("role") != "assistant":
        return None
    if not offered_human(history[-1].get("content", "")):
        return None
    words = words_of(text)
    if not words or len(words) > 4 or "?" in text:
        return None
    if all(w in YES for w in words):
        return OfferReply.ACCEPTED
    if words[0] in ("no", "nope", "nah", "n") and all(w in NO for w in words):
        return OfferReply.DECLINED
    return None


def offered_human(answer: str) -> bool:
    """Was this (stored) answer the refusal that asks whether to bring in a human?"""
    return any(answer.startswith(refusal) for refusal in texts.NOT_IN_DOCS_TRANSLATIONS.values())


def _positive(ch: str) -> bool:
    # Skin-tone modifiers and the emoji variation selector ride on the emoji before them.
    return ch in POSITIVE_EMOJI or "\U0001f3fb" <= ch <= "\U0001f3ff" or ch == "\ufe0f"
