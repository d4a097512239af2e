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
from dataclasses import dataclass

from bot import texts

# The reaction an acknowledgement gets instead of a message (Slack's name; Discord maps it).
ACKNOWLEDGED_REACTION = "+1"
MAX_WORDS = 8  # "ok that worked, thank you so much!" is eight; longer is a question or a story

_MENTION = re.compile(r"<[@#!][^>]*>")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # letters, with one inner apostrophe
POSITIVE_EMOJI = frozenset("👍🙏🎉✅👌❤🙌😊🙂💯🔥✨🥳😀😃😄🤝👏")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """One language's small talk, as words in lower case without accents ("merci", "si").

    A message is matched against one language at a time, never a mix, so that each list can
    stay loose within its own language without two of them adding up to a question."""

    thanks: frozenset[str]  # one of these makes a message an acknowledgement ...
    alongside: frozenset[str]  # ... which may also have these ("that worked, thank you so much")
    # A reply made only of these accepts the offer of a human. Never "ok" or its like ("vale",
    # "d'accord", "einverstanden"): those may only acknowledge, and a yes pings the team.
    yes: frozenset[str]
    no_first: frozenset[str]  # a decline starts with one of these ...
    no: frozenset[str]  # ... and has only these ("no thanks", "non merci", "nein danke")
    # Thanks that may ride on a yes ("yes thanks", "oui merci"): still a yes.
    gratitude: frozenset[str]


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# The languages a channel may choose for its refusal (texts.NOT_IN_DOCS_TRANSLATIONS).
# fmt: off
VOCABULARIES: dict[str, Vocabulary] = {
    "en": Vocabulary(
        thanks=_words(
            "thanks thank thx ty tysm tyvm cheers ok okay k kk great perfect awesome cool nice "
            "excellent brilliant wonderful worked works working solved fixed helped helpful "
            "appreciated appreciate nvm nevermind got gotcha understood noted sense"
        ),
        alongside=_words(
            "you so much a lot very many it that this now all for the help again makes just "
            "really good fine sounds super mate man guys bot indeed oh ah yes yeah yep mind "
            "never it's that's thats everyone i we"
        ),
        yes=_words("yes yeah yep yup sure y please do go ahead"),
        no_first=_words("no nope nah n"),
        no=_words("no nope nah not now thanks thank you n later"),
        gratitude=_words("thanks thank you thx ty so much a lot very many"),
    ),
    "fr": Vocabulary(
        thanks=_words(
            "merci mercii ok okay d'accord dac parfait super genial top nickel excellent cool "
            "impeccable marche fonctionne resolu regle compris entendu note bravo"
        ),
        alongside=_words(
            "beaucoup bien tres pour ton votre l'aide aide c'est ca tout a toi vous mille "
            "encore bon oui ah oh j'ai je"
        ),
        yes=_words("oui ouais volontiers svp stp s'il vous te plait"),
        no_first=_words("non nan"),
        no=_words("non nan merci pas maintenant plus tard ca va"),
        gratitude=_words("merci beaucoup bien mille"),
    ),
    "de": Vocabulary(
        thanks=_words(
            "danke dank dankeschon ok okay super perfekt prima toll klasse passt funktioniert "
            "klappt geklappt verstanden gelost erledigt klar einverstanden"
        ),
        alongside=_words(
            "vielen schon sehr fur die hilfe es das jetzt alles gut mal ja wieder dir ihnen "
            "echt wirklich herzlichen besten tausend hat ah oh"
        ),
        yes=_words("ja jawohl gerne gern bitte"),
        no_first=_words("nein nee ne"),
        no=_words("nein nee ne danke nicht jetzt spater"),
        gratitude=_words("danke dank dankeschon vielen schon sehr herzlichen"),
    ),
    "es": Vocabulary(
        thanks=_words(
            "gracias ok okay vale perfecto genial excelente listo funciona funciono "
            "solucionado resuelto entendido acuerdo"
        ),
        alongside=_words(
            "muchas mil muy por la tu su ayuda todo ya de te lo bien bueno super si ah oh"
        ),
        yes=_words("si claro porfa por favor"),
        no_first=_words("no"),
        no=_words("no gracias ahora todavia por favor"),
        gratitude=_words("gracias muchas mil"),
    ),
}
# fmt: on


class OfferReply(enum.Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"


def words_of(text: str, word: re.Pattern[str] = _WORD) -> list[str]:
    """The message's words in lower case without accents ("¡Sí!" -> ["si"]); ``word`` says
    what a word is (letters, with one inner apostrophe)."""
    plain = unicodedata.normalize("NFKD", _MENTION.sub(" ", text).lower().replace("’", "'"))
    return word.findall("".join(ch for ch in plain if not unicodedata.combining(ch)))


def is_acknowledgement(text: str) -> bool:
    """Thanks, "ok", "that worked" (in a language the bot speaks), or only positive emoji (skin
    tones and variation selectors allowed): something to acknowledge, not a question."""
    words = words_of(text)
    if not words:
        symbols = [
            ch
            for ch in _MENTION.sub("", text)
            if not ch.isspace() and unicodedata.category(ch) not in ("Po", "Mn", "Sk", "Cf")
        ]
        return bool(symbols) and all(_positive(ch) for ch in symbols)
    if len(words) > MAX_WORDS or _asks(text):
        return False
    return any(
        any(w in v.thanks for w in words) and all(w in v.thanks or w in v.alongside for w in words)
        for v in VOCABULARIES.values()
    )


def reply_to_offer(text: str, history: list[dict[str, str]]) -> OfferReply | None:
    """A yes or no to the human the bot offered in its last message (its refusal), else None."""
    if not history or history[-1].get("role") != "assistant":
        return None
    if not offered_human(history[-1].get("content", "")):
        return None
    words = words_of(text)
    if not words or len(words) > 6 or _asks(text):
        return None
    if any(_accepts(words, v) for v in VOCABULARIES.values()):
        return OfferReply.ACCEPTED
    if any(words[0] in v.no_first and all(w in v.no for w in words) for v in VOCABULARIES.values()):
        return OfferReply.DECLINED
    return None


def may_accept(text: str) -> bool:
    """Could this acknowledgement be a yes ("yes thanks", "oui merci") to a human on offer?
    Then the conversation decides (:func:`reply_to_offer`) before it is only acknowledged."""
    words = words_of(text)
    return any(_accepts(words, v) for v in VOCABULARIES.values())


def _accepts(words: list[str], v: Vocabulary) -> bool:
    """A yes, with thanks at most: "yes", "yes please", "yes thanks" (not "ok": a yes pings
    the team, so it must be said)."""
    return any(w in v.yes for w in words) and all(w in v.yes or w in v.gratitude for w in words)


def _asks(text: str) -> bool:
    return "?" in text or "¿" in text


def offered_human(answer: str) -> bool:
    """Was this (stored) answer the refusal that asks whether to bring in a human?"""
    return any(
        answer.startswith(refusal)
        for by_language in texts.NOT_IN_DOCS_BY_ROUTE.values()
        for refusal in by_language.values()
    )


def _positive(ch: str) -> bool:
    # Skin-tone modifiers and the emoji variation selector ride on the emoji before them.
    return ch in POSITIVE_EMOJI or "\U0001f3fb" <= ch <= "\U0001f3ff" or ch == "\ufe0f"
