"""Every user-facing sentence, in one place (Markdown; adapters render it natively).

Other areas append their own clearly separated blocks at the end of this file.
"""

from __future__ import annotations

# --- agent core -----------------------------------------------------------------------------

BOT_NAME = "supportbot"

ERROR_GENERIC = (
    "Sorry, something went wrong on my side while answering. "
    "Please try again in a moment; if it keeps happening, ask for a human."
)
# The inbox tried several times and every process that took the question died or stalled.
INBOX_GAVE_UP = (
    "Sorry, I couldn't answer your question this time (the service was restarting). "
    "Please ask it again."
)
ERROR_MODEL_TIMEOUT = (
    "Sorry, the language model took too long to answer. Please try again in a moment."
)
ERROR_MODEL_UNAVAILABLE = (
    "Sorry, the language model is not available right now. Please try again in a moment."
)
# The model's provider refused to finish this answer (its content filter).
ERROR_MODEL_FILTERED = (
    "Sorry, I can't answer that one. Try asking it differently, or ask for a human."
)
# Appended to an answer the model stopped because it ran out of room.
ANSWER_CUT_SHORT = "_(This answer was cut short. Ask a narrower question for the rest.)_"

# The refusal in the languages a channel may choose (`supportbot channels set
# --refusal-language`): what it says, then how to ask for a human, by what the reply has
# (``bot.messages.HumanRoute``): the "Talk to a human" button (Slack, Discord); no buttons at
# all, so one types it (the console: a "yes" to the offer, or the phrase, opens the hand-off);
# a slash command's reply without the button (Slack's /ask), so one asks again by mention.
_REFUSALS = {
    "en": (
        "I couldn't find this in the documentation, so I'd rather not guess. "
        "Would you like me to bring in a human?",
        {
            "button": "Use the *Talk to a human* button (or say “talk to a human”).",
            "typed": "Reply “yes”, or say “talk to a human”.",
            "mention": "To bring in a human, mention me with your question in the channel (or "
            "message me directly) and use the *Talk to a human* button under my reply.",
        },
    ),
    "fr": (
        "Je n'ai pas trouvé cela dans la documentation, je préfère donc ne pas deviner. "
        "Voulez-vous que je fasse appel à un humain ?",
        {
            "button": "Utilisez le bouton *Talk to a human* (ou écrivez « talk to a human »).",
            "typed": "Répondez « oui », ou écrivez « talk to a human ».",
            "mention": "Pour faire appel à un humain, mentionnez-moi avec votre question dans "
            "le canal (ou écrivez-moi en message direct) et utilisez le bouton "
            "*Talk to a human* sous ma réponse.",
        },
    ),
    "de": (
        "Das habe ich in der Dokumentation nicht gefunden, daher rate ich lieber nicht. "
        "Soll ich einen Menschen hinzuholen?",
        {
            "button": "Nutzen Sie die Schaltfläche *Talk to a human* "
            "(oder schreiben Sie „talk to a human“).",
            "typed": "Antworten Sie „ja“, oder schreiben Sie „talk to a human“.",
            "mention": "Um einen Menschen hinzuzuholen, erwähnen Sie mich mit Ihrer Frage im "
            "Kanal (oder schreiben Sie mir direkt) und nutzen Sie die Schaltfläche "
            "*Talk to a human* unter meiner Antwort.",
        },
    ),
    "es": (
        "No encontré esto en la documentación, así que prefiero no adivinar. "
        "¿Quiere que avise a una persona?",
        {
            "button": "Use el botón *Talk to a human* (o escriba «talk to a human»).",
            "typed": "Responda «sí», o escriba «talk to a human».",
            "mention": "Para avisar a una persona, mencióneme con su pregunta en el canal (o "
            "escríbame por mensaje directo) y use el botón *Talk to a human* bajo mi "
            "respuesta.",
        },
    ),
}
# The refusal for each route (``HumanRoute`` values), in each language.
NOT_IN_DOCS_BY_ROUTE = {
    route: {code: f"{lead} {ways[route]}" for code, (lead, ways) in _REFUSALS.items()}
    for route in ("button", "typed", "mention")
}
NOT_IN_DOCS_TRANSLATIONS = NOT_IN_DOCS_BY_ROUTE["button"]
# Where the platform has no buttons: the same refusal, saying what to type instead.
NOT_IN_DOCS_TYPED = NOT_IN_DOCS_BY_ROUTE["typed"]
# The agent's refusal; the Responder puts the channel's language and platform's way in.
NOT_IN_DOCS = NOT_IN_DOCS_TRANSLATIONS["en"]


def not_in_docs(language: str | None, route: str = "button") -> str:
    """The refusal in ``language`` (an ISO code such as "fr"; English when unknown) that offers
    a human by ``route`` (a ``bot.messages.HumanRoute``)."""
    refusals = NOT_IN_DOCS_BY_ROUTE[route]
    return refusals.get((language or "en").lower(), refusals["en"])


OFFLINE_LABEL = "_Offline answer (no language model configured): quoted from the docs._"

EMPTY_QUESTION = (
    "Hi! Ask me a question about the docs, for example: `/ask How do I reset my password?`"
)
ATTACHMENT_ONLY = (
    "I can't read files or images yet. Please type your question in words, for example: "
    "How do I reset my password?"
)
UNREADABLE_INPUT = (
    "I couldn't read that message (it doesn't look like text). "
    "Please type your question in plain words."
)
ASK_USAGE = "Usage: `/ask <your question>`, for example `/ask How do I reset my password?`"


def truncated_note(limit: int) -> str:
    """Appended when a message was longer than we read."""
    return f"_(Your message was very long, so I only read its first {limit:,} characters.)_"


FORGOTTEN_NONE = "There was nothing to forget: I have no memory of this conversation."


def forgotten(count: int) -> str:
    return f"Done: I forgot this conversation ({_messages(count)})."


def thread_forgotten(count: int) -> str:
    return f"Done: I forgot this thread's conversation ({_messages(count)})."


FORGET_THREAD_NOT_ALLOWED = "Only the person who asked here or a moderator can clear this thread."
# After /forget in a channel, which reaches only the caller's own /ask exchanges there.
FORGET_THREAD_HINT = (
    "To clear what I remember of a thread, reply “forget” in that thread and mention me "
    "(the person who asked there or a moderator may)."
)


def thread_not_yours_to_forget(own: int) -> str:
    """``/forget`` in a thread by someone who may not clear it (``own``: their own /ask
    messages there, which were forgotten)."""
    if not own:
        return FORGET_THREAD_NOT_ALLOWED
    return f"{FORGET_THREAD_NOT_ALLOWED} I forgot only your own /ask messages ({_messages(own)})."


def _messages(count: int) -> str:
    return f"{count} {'message' if count == 1 else 'messages'}"


FEEDBACK_THANKS_HELPFUL = "Thanks for the feedback! Glad it helped."
FEEDBACK_THANKS_UNHELPFUL = (
    "Thanks for the feedback; it helps us improve the docs and the answers. "
    "If you still need help, ask for a human."
)
FEEDBACK_UNKNOWN_ANSWER = "Thanks! (I couldn't find that answer any more, so nothing was recorded.)"

ESCALATION_OPENED = (
    "I've asked a human to join this conversation. Someone from the team will reply here."
)
ESCALATION_ALREADY_OPEN = "A human has already been asked to join; someone will reply here soon."
# A hand-off asked for where nobody else can reply (a private /ask answer, a DM with the bot).
ESCALATION_OPENED_DIRECT = (
    "I've asked the team for help. Nobody else can write in this conversation, so someone "
    "from the team will message you directly."
)
ESCALATION_ALREADY_OPEN_DIRECT = (
    "The team has already been asked for help; someone will message you directly soon."
)


def escalation_recorded(escalation_id: int) -> str:
    """A hand-off asked for in the terminal, where no reply can reach the asker."""
    return (
        f"I've recorded a request for a human (hand-off #{escalation_id}). A reply can't reach "
        "this terminal: the team sees open hand-offs on the admin page and in `supportbot report`."
    )


ESCALATION_RESOLVED = "This conversation was handed back: the human hand-off is marked resolved."
ESCALATION_NOT_OPEN = "That hand-off is already resolved (or no longer exists)."
ESCALATION_NOTICE_FAILED = (
    "I couldn't reach the support team just now, so they have not seen this request yet. "
    "Please ask for a human again in a few minutes."
)


def escalation_notice(session_id: str, requested_by: str, reason: str | None) -> str:
    """The message the support team sees in their escalation channel."""
    why = f" Reason: {reason}" if reason else ""
    return f"Help needed in conversation `{session_id}` (asked by {requested_by}).{why}"


def escalation_notice_direct(requested_by: str, question: str | None) -> str:
    """The team's notice of a hand-off asked for privately (Slack's /ask, a DM with the bot):
    there is no thread to read or reply in, so it says what was asked and whom to message."""
    asked = f" They asked: {question}" if question else ""
    return (
        f"Help needed: {requested_by} asked for a human privately (with /ask or in a direct "
        f"message with the bot), where nobody else can reply. Please message them directly.{asked}"
    )


ESCALATION_RESOLVE_NOT_ALLOWED = (
    "Only the support team (or the person who asked) can mark this hand-off resolved."
)


def escalation_resolved_notice(resolved_by: str, when: str) -> str:
    """What the team's notice says once the hand-off is resolved."""
    return f"Resolved by {resolved_by} at {when}."


SOURCES_HEADING = "Sources"
# Over the pages offered with a refusal: leads, not an answer.
RELATED_HEADING = "Closest pages in the docs (they may not answer this)"


def help_text(commands: list[tuple[str, str]]) -> str:
    """The /help text; ``commands`` are (usage, description) pairs from bot.slash."""
    lines = [
        f"I'm {BOT_NAME}: I answer questions from the team's documentation, cite my sources, "
        "and bring in a human when the docs don't cover something.",
        "",
    ]
    lines += [f"• `{usage}`: {description}" for usage, description in commands]
    lines += [
        "",
        "You can also mention me or message me directly. I remember each thread until you "
        "use `/forget`, or, in a thread, mention me with “forget” (its asker or a moderator "
        "may clear a thread).",
    ]
    return "\n".join(lines)


# Console adapter (supportbot chat / ask).
CONSOLE_WELCOME = (
    "supportbot chat: ask a question about the docs. Commands: /help, /forget, /quit (or Ctrl-D)."
)
CONSOLE_DEMO_HINT = "Demo: try one of these questions, or type your own:"
CONSOLE_BYE = "Bye!"
CONSOLE_SCHEMA_MISSING = (
    "the database has no supportbot tables yet; run `supportbot db upgrade` first."
)


def schema_outdated(revision: str, needed: str) -> str:
    return (
        f"the database schema is at revision {revision}, and this version of supportbot needs "
        f"{needed}; run `supportbot db upgrade` first."
    )


CONSOLE_SCHEMA_CREATED = "(the database was empty: created the supportbot tables)"


# --- slack adapter --------------------------------------------------------------------------

SLACK_BUTTON_HELPFUL = "👍 Helpful"
SLACK_BUTTON_NOT_HELPFUL = "👎 Not helpful"
SLACK_BUTTON_HUMAN = "Talk to a human"
SLACK_BUTTON_RESOLVE = "Mark resolved"
SLACK_BUTTON_SHARE = "Share in channel"
SLACK_STATUS_THINKING = "thinking…"
# The start of a slow answer's own message where Slack cannot stream (it becomes the answer).
SLACK_ANSWER_COMING = "_Looking into it…_"
SLACK_ASSISTANT_PROMPTS_TITLE = "Try asking:"
SLACK_ASSISTANT_PROMPTS = (
    "What can you help me with?",
    "How do I get started?",
    "Who do I ask when the docs don't cover something?",
)
SLACK_ANSWER_GONE = "Sorry, I can't find that answer any more, so there is nothing to share."
SLACK_ESCALATION_REQUESTED = "A human was asked to join this conversation."


SLACK_INSTALL_RATE_LIMITED = "Too many install attempts from your address. Try again in a minute."


def slack_shared_by(user_id: str) -> str:
    """Shown above an /ask answer that its asker shared in the channel."""
    return f"<@{user_id}> shared an answer:"


def slack_escalation_group_ping(group_mention: str) -> str:
    """Appended to the hand-off reply when escalations go to a user group."""
    return f"{group_mention}, could someone take a look?"


# --- knowledge base (ingest, kb search/stats, eval) ------------------------------------------

KB_NO_PATHS = "name at least one docs folder or file to ingest (or use --sample)"
KB_SAMPLE_MISSING = "the bundled sample docs are missing from this installation"
# Operator log lines at start-up (%s: the knowledge base's URI, then the error's type).
KB_EMPTY_AT_START = (
    "the knowledge base at %s is empty or missing: every question will be answered "
    "'not in the docs' until you run `supportbot ingest DOCS`"
)
KB_UNREADABLE_AT_START = (
    "the knowledge base at %s cannot be read (%s): questions get an apology until it is "
    "rebuilt with `supportbot ingest DOCS`"
)
KB_NO_HITS = "No matching passages (the knowledge base may be empty: run `supportbot ingest`)."


def kb_ingest_summary(
    *, files: int, added: int, unchanged: int, removed: int, skipped: int, embedded: int,
    seconds: float,
) -> str:  # fmt: skip
    """The one line every ingest prints, terminal or not."""
    return (
        f"Ingested {files} file(s): {added} chunk(s) added, {unchanged} unchanged, "
        f"{removed} removed; {skipped} file(s) skipped; {embedded} embedded in {seconds:.1f} s."
    )


def kb_fetched_site(url: str, pages: int, skipped: int) -> str:
    left_out = f" ({skipped} left out: listed below)" if skipped else ""
    return f"Fetched {pages} page(s) from {url}{left_out}."


def kb_skipped_file(path: str, reason: str) -> str:
    return f"warning: skipped {path}: {reason}"


def kb_skipped_of_type(count: int, reason: str, example: str) -> str:
    return f"warning: skipped {count} files: {reason} (e.g. {example})"


KB_SEARCH_EMPTY = "nothing to search for: give a question or some words"


def eval_unknown_gold(gold: str, similar: str | None) -> str:
    hint = f" (did you mean {similar!r}?)" if similar else ""
    return (
        f"warning: gold source {gold!r} is not in the knowledge base, so its questions cannot "
        f"find it{hint}"
    )


def kb_file_warning(message: str) -> str:
    return f"warning: {message}"


def kb_redacted(path: str, lines: int, kinds: str) -> str:
    return f"warning: {path}: {lines} secret-looking line(s) not indexed ({kinds})"


def kb_not_found(pages: int, paths: list[str]) -> str:
    """Stored pages an ingest without --prune did not find and kept."""
    where = ", ".join(paths)
    are = "page is" if pages == 1 else "pages are"
    return f"note: {pages} stored {are} no longer in {where}; run with --prune to remove them"


def kb_learned_refreshed(count: int, folder: str) -> str:
    """Approved learned answers this machine's folder lacked, written from the database."""
    answers = "answer" if count == 1 else "answers"
    return f"note: {count} approved learned {answers} written to {folder} from the database"


def kb_learned_not_refreshed(reason: str, folder: str) -> str:
    return (
        f"warning: approved learned answers could not be read from the database ({reason}); "
        f"ingesting {folder} as it is"
    )


def kb_not_locked_for_other_hosts(reason: str) -> str:
    return (
        "warning: the database could not be reached to lock the knowledge base against other "
        f"hosts' ingests ({reason}); ingesting without that lock"
    )


# --- database CLI (supportbot db ..., supportbot memories export) ----------------------------


def purged(memories: int, feedback: int, escalations: int, ledger: int) -> str:
    return (
        f"Purged {memories} memories, {feedback} feedback votes, {escalations} escalations "
        f"and the text of {ledger} ledger rows."
    )


DB_CHECK_CLEAN = "No differences between the models and the database."
DB_EMPTY = "no revision: the database is empty (run `supportbot db upgrade`)"
DB_LEGACY_UNVERSIONED = (
    "no revision: this is a legacy database without migration history; "
    "`supportbot db upgrade` will adopt and upgrade it"
)


def db_adopted_legacy(revision: str) -> str:
    return (
        "Adopted a legacy database (it had a `memories` table but no migration history): "
        f"stamped revision {revision}."
    )


def db_upgraded(before: str | None, after: str | None) -> str:
    return f"Database upgraded from {before or 'an empty database'} to {after}."


def db_downgraded(before: str | None, after: str | None) -> str:
    return f"Database downgraded from {before} to {after or 'base (no tables)'}."


def db_unchanged(revision: str | None) -> str:
    return f"Database already at {revision or 'base'}; nothing to do."


def db_current(revision: str, head: str) -> str:
    if revision == head:
        return f"{revision} (head)"
    return f"{revision} (not the newest, {head}: run `supportbot db upgrade`)"


def db_check_differences(count: int) -> str:
    return f"{count} difference(s) between the models and the database:"


def db_not_at_head(revision: str | None, head: str) -> str:
    return (
        f"the database is at revision {revision or 'none'}, but this version needs {head}; "
        "run `supportbot db upgrade` first"
    )


def db_invalid_url(reason: str) -> str:
    return f"DATABASE_URL is invalid: {reason}"


# --- discord adapter ------------------------------------------------------------------------

DISCORD_BUTTON_HELPFUL = "Helpful"
DISCORD_BUTTON_UNHELPFUL = "Not helpful"
DISCORD_BUTTON_HUMAN = "Talk to a human"
DISCORD_BUTTON_RESOLVE = "Mark resolved"
DISCORD_THREAD_NAME_FALLBACK = "Question"
DISCORD_EPHEMERAL_OPTION = "Only you can see the answer"
# A mention in a channel set to private answers: Discord has no private reply to a message.
DISCORD_ANSWER_SENT_PRIVATELY = "I've sent you the answer in a direct message."
DISCORD_PRIVATE_ANSWER_NEEDS_ASK = (
    "Answers here are private, but I can't send you a direct message. "
    "Use `/ask` in this channel to get the answer privately."
)
DISCORD_INVALID_BUTTON = "Sorry, I couldn't understand that button. Please ask your question again."
DISCORD_UNKNOWN_COMMAND = "Sorry, I don't know that command. Try `/help` to see what I can do."


# --- "Ask supportbot" on a message (Slack message shortcut, Discord message command) --------

ASK_MESSAGE_EMPTY = "That message has no text, so there is nothing for me to answer."
ASK_MESSAGE_ONLY_ATTACHMENTS = (
    "That message only has attachments, and I can only answer text. Ask the question in words "
    "(mention me in its thread)."
)
ASK_MESSAGE_FROM_BOT = "That message was written by a bot; I only answer questions people asked."
ASK_MESSAGE_UNREADABLE = "I can't read that message as a question."
ASK_MESSAGE_ALREADY = "I have already taken that message: the answer is (or will be) in its thread."
ASK_MESSAGE_FAILED = "Sorry, I couldn't take that message just now. Please try again in a moment."
ASK_MESSAGE_ANSWERING_IN_THREAD = "On it: I'm answering that message in its thread."
ASK_MESSAGE_ANSWERING_PRIVATELY = (
    "Answers in this channel are private, so only that message's author will see the answer."
)
ASK_MESSAGE_ANSWERING_IN_PLACE = (
    "I can't start a thread on that message here, so I'm answering it as a reply in the channel."
)
SLACK_ASK_MESSAGE_NOT_IN_CHANNEL = (
    "I can't post in that conversation because I'm not a member of it. Add me first "
    "(type `/invite @supportbot` there, or open the channel's details → Integrations → "
    "Add apps), then use *Ask supportbot* again."
)
DISCORD_ASK_MESSAGE_NO_THREADS = (
    "I can't start a thread in this channel: give supportbot the *Create Public Threads* and "
    "*Send Messages in Threads* permissions here, or mention me in a thread instead."
)


# --- channel settings from chat (`/ask settings ...`, workspace or guild admins only) -------------
SETTINGS_ADMIN_ONLY = "Only workspace or server admins can change the bot's settings here."
SETTINGS_USAGE = (
    "Usage: `/ask settings` shows this channel's settings; `/ask settings auto-answer on "
    "ephemeral off knowledge-filter billing/ refusal-language fr reaction eyes` changes them "
    "(also `escalation-target`, `archive-on-resolve`, `tag-answered`, `tag-needs-human`, "
    "`tag-solved`; quote names with spaces)."
)


def settings_invalid(reason: str) -> str:
    return f"Those settings were not saved: {reason}.\n\n{SETTINGS_USAGE}"


def settings_summary(values: dict[str, object], *, saved: bool) -> str:
    lines = ["Saved. This channel now uses:" if saved else "This channel's settings:"]
    for name, value in values.items():
        shown = value if value not in (None, "", {}) else "–"
        if isinstance(value, bool):
            shown = "on" if value else "off"
        lines.append(f"- {name.replace('_', ' ')}: {shown}")
    return "\n".join(lines)


def channel_filter_matches_nothing(prefix: str, files: int, example: str) -> str:
    return (
        f"warning: no document in the knowledge base ({files} file(s)) is under {prefix!r}: "
        f"this channel will answer nothing until one is (sources look like {example!r})"
    )
