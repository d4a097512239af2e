"""The Responder: the one entry point and the single error boundary for every message.

Every platform adapter turns its event into an :class:`IncomingMessage` and calls
:meth:`Responder.handle` (or :meth:`Responder.stream`). Whatever fails inside (retrieval, the
model, storage) is logged with the conversation's session id and becomes a short
``Reply(kind=ERROR)``: no traceback ever reaches a user, and the next message works.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from bot import channel_admin, learning, metrics, slash, smalltalk, text_commands, texts
from bot.agent import Agent, AgentRequest, AgentResult, ModelFilteredError, ModelTimeoutError
from bot.autoanswer import (
    DEFAULT_MIN_COVERAGE,
    DEFAULT_MIN_PROBABILITY,
    is_auto_answer_post,
    judge,
    stay_silent,
)
from bot.channels import ChannelPolicy, ChannelSettings
from bot.deletion import Deleted
from bot.errors import KnowledgeBaseError, ModelError
from bot.inbox import SESSION_KEY, TryLater, Work
from bot.learning import ThreadReader
from bot.memory import EVENT, USER, MemoryPolicy
from bot.messages import (
    EDIT_MARK,
    Author,
    ConversationKey,
    IncomingMessage,
    Reply,
    ReplyKind,
    Slow,
)
from bot.progress import mark_slow
from storage import escalations, events, feedback, memories
from storage.db import Database, unreachable

log = logging.getLogger(__name__)

QUESTION_IN_METADATA_CHARS = 500

# Control characters other than newline and tab are noise from binary input.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LEADING_MENTION = re.compile(r"^(\s*<@[!&]?[A-Za-z0-9]+>)+")
_HUMAN_REQUEST = re.compile(
    r"^\s*(please\s+)?(talk|speak|connect me|escalate)( to)?( a| an)? (human|person|agent|someone)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class HandOff:
    """What asking for a human did: the reply for the conversation, the hand-off's id (0 when
    it failed) and whether this request opened it (False: one was already open)."""

    reply: Reply
    escalation_id: int
    created: bool


class Responder:
    def __init__(
        self,
        *,
        db: Database,
        agent: Agent,
        memory: MemoryPolicy,
        max_question_chars: int = 4000,
        channels: ChannelSettings | None = None,
        auto_answer_min_coverage: float = DEFAULT_MIN_COVERAGE,
        auto_answer_min_probability: float = DEFAULT_MIN_PROBABILITY,
        progress_after: float = 2.0,
    ) -> None:
        self.db = db
        self.agent = agent
        self.memory = memory
        self.max_question_chars = max_question_chars
        self.channels = channels or ChannelSettings(db)
        self.auto_answer_min_coverage = auto_answer_min_coverage
        self.auto_answer_min_probability = auto_answer_min_probability
        # Seconds after which an answer that has shown nothing is slow (bot/progress.py).
        self.progress_after = progress_after

    # --- messages ---------------------------------------------------------------------------

    async def handle(self, msg: IncomingMessage) -> Reply | None:
        """The final Reply for a message (None when there is nothing to say). Never raises."""
        final: Reply | None = None
        async for item in self.stream(msg):
            if isinstance(item, Reply):
                final = item
        return final

    def stream(
        self,
        msg: IncomingMessage,
        *,
        hand_back_storage_faults: bool = False,
        progress: Callable[[], bool] | None = None,
    ) -> AsyncGenerator[str | Reply | Slow, None]:
        """Text deltas as they are produced, then exactly one final Reply (see
        :meth:`_stream`). With ``progress`` (whether showing progress is allowed now), the
        stream also yields :data:`bot.messages.SLOW` once when the answer has shown nothing
        after ``progress_after`` seconds (bot/progress.py): the adapter shows progress then."""
        items = self._stream(msg, hand_back_storage_faults=hand_back_storage_faults)
        if progress is None:
            return items
        return mark_slow(items, after=self.progress_after, allowed=progress)

    async def _stream(
        self, msg: IncomingMessage, *, hand_back_storage_faults: bool = False
    ) -> AsyncGenerator[str | Reply, None]:
        """Text deltas as they are produced, then exactly one final Reply. Never raises, but
        with ``hand_back_storage_faults`` (work run by the inbox, whose question is safe in
        the ledger) a database that could not be reached raises :class:`TryLater` instead of
        an apology: the question is answered again once the database is back.

        The final Reply is authoritative: normally the deltas join to its text, but after an
        error mid-answer it carries the apology instead. Messages written by bots yield nothing.
        """
        if msg.author.is_bot:
            return
        session_id = _session_id(msg)
        try:
            # Closed with this stream, at once: the answer's clean-up (storing the question of
            # an answer cut short) is done before whoever stopped reading goes on, which may be
            # to take back what this work stored (its question was deleted, bot.inbox).
            async with aclosing(self._answer(msg, session_id)) as answer:
                async for item in answer:
                    if isinstance(item, Reply):
                        metrics.observe_answer("unanswered" if item.silent else item.kind.value)
                    yield item
        except Exception as exc:
            # A model or knowledge-base error is theirs, whatever lies underneath.
            expected = isinstance(exc, ModelError | KnowledgeBaseError)
            if hand_back_storage_faults and not expected and unreachable(exc):
                raise TryLater(f"the database is unreachable ({type(exc).__name__})") from exc
            # The error boundary: log for the operator (session id and the reason; never
            # message contents or credentials), apologise to the user. A fault we expect (the
            # model failed after its retries, the knowledge base cannot be read) is one line;
            # anything else carries its traceback.
            log.error(
                "answer failed for session %s (message %s): %s",
                session_id,
                msg.id,
                _reason(exc) if expected else type(exc).__name__,
                exc_info=not expected,
            )
            await self._record_error(session_id, exc)
            metrics.observe_answer(ReplyKind.ERROR.value)
            yield await self._failed(msg, session_id, exc)

    async def _failed(self, msg: IncomingMessage, session_id: str, exc: Exception) -> Reply:
        """The apology for an answer that failed. Not to a post nobody addressed to the bot in
        an auto-answer channel: there it speaks only with a grounded answer, and during a
        model outage it apologised under every new post; such a post gets the channel's
        reaction for unanswered posts, as when the gate holds an answer back. Where answers
        are private (:func:`private_answers`), so is the apology."""
        policy = await self.channels.policy(
            msg.conversation, parent_channel_id=msg.parent_channel_id
        )
        if is_auto_answer_post(msg, policy):
            return Reply(
                "",
                ReplyKind.ERROR,
                silent=True,
                reaction=policy.unanswered_reaction,
                session_id=session_id,
            )
        # Told the way the answer would have been: privately where answers are the asker's
        # alone (a failed private question is theirs too, not the channel's news).
        return Reply(
            text=_apology(exc),
            kind=ReplyKind.ERROR,
            ephemeral=private_answers(msg, policy),
            session_id=session_id,
        )

    async def _acknowledge(self, msg: IncomingMessage, session_id: str) -> Reply:
        """Thanks or "ok" (bot.smalltalk): a reaction, not a search and not a stored question;
        nothing at all for a new post in an auto-answer channel that nobody addressed to us."""
        policy = await self.channels.policy(
            msg.conversation, parent_channel_id=msg.parent_channel_id
        )
        reaction = None if is_auto_answer_post(msg, policy) else smalltalk.ACKNOWLEDGED_REACTION
        return Reply("", ReplyKind.INFO, silent=True, reaction=reaction, session_id=session_id)

    async def _record_error(self, session_id: str, exc: BaseException) -> None:
        """Best effort: count the failure for reports (the database may be what failed)."""
        try:
            await asyncio.wait_for(
                self.memory.remember(
                    session_id,
                    EVENT,
                    "",
                    {"kind": ReplyKind.ERROR.value, "error": type(exc).__name__},
                ),
                timeout=2.0,
            )
        except Exception:
            log.warning("could not record the failure of session %s", session_id)

    async def _answer(self, msg: IncomingMessage, session_id: str) -> AsyncIterator[str | Reply]:
        command = slash.find_command(msg.command) if msg.command else None
        if msg.command and command is None:
            yield self._info(self.help_text(), session_id, ephemeral=True)
            return
        if command is slash.HELP:
            yield self._info(self.help_text(), session_id, ephemeral=True)
            return
        if channel_admin.is_settings_request(msg):
            yield await channel_admin.handle(msg, self.channels, session_id)
            return
        if command is slash.FORGET or text_commands.forget_request(msg):
            yield self._info(await self._forget(msg, session_id), session_id, ephemeral=True)
            return

        acknowledgement = msg.command is None and smalltalk.is_acknowledgement(msg.text)
        if acknowledgement and not smalltalk.may_accept(msg.text):
            yield await self._acknowledge(msg, session_id)
            return
        question, problem = clean_text(msg.text, self.max_question_chars)
        if problem == "empty":
            usage = texts.ASK_USAGE if command is slash.ASK else texts.EMPTY_QUESTION
            if msg.attachments and command is None:  # a screenshot or file, and no words
                usage = texts.ATTACHMENT_ONLY
            yield self._info(usage, session_id, ephemeral=True)
            return
        if problem == "unreadable":
            yield self._info(texts.UNREADABLE_INPUT, session_id)
            return
        in_place = msg.conversation.platform.team_replies_in_place(
            command=bool(msg.command), direct=msg.is_direct
        )
        if _HUMAN_REQUEST.match(question):
            hand_off = await self.escalate(
                conversation=msg.conversation,
                requested_by=msg.author.id,
                reason=question if in_place else None,
                in_place=in_place,
            )
            yield hand_off.reply
            return

        started = time.perf_counter()
        policy = await self.channels.policy(
            msg.conversation, parent_channel_id=msg.parent_channel_id
        )
        auto = is_auto_answer_post(msg, policy)
        # Work the inbox runs again (a platform fault, a crash, a lost lease) may find what
        # its earlier attempt stored: set apart by the load, replaced when this one stores.
        context = await self.memory.load(session_id, msg.id)
        offer = smalltalk.reply_to_offer(question, context.history)
        if offer is smalltalk.OfferReply.ACCEPTED:  # "yes" to the refusal's "bring in a human?"
            hand_off = await self.escalate(
                conversation=msg.conversation,
                requested_by=msg.author.id,
                reason=context.previous_question or question,
                in_place=in_place,
            )
            yield hand_off.reply
            return
        if offer is smalltalk.OfferReply.DECLINED or acknowledgement:
            # "yes thanks" with no offer of a human before it is thanks, nothing to search.
            yield await self._acknowledge(msg, session_id)
            return
        # Who asked: a thread started for this question may be cleared by its asker.
        question_metadata = {memories.MESSAGE_KEY: msg.id, memories.AUTHOR_KEY: msg.author.id}
        request = AgentRequest(
            question=question,
            context=context,
            session_id=session_id,
            source_prefix=policy.knowledge_filter,
            check_grounding=auto,
        )
        first_token_ms: float | None = None
        stored = False
        try:
            result: AgentResult | None = None
            async for item in self.agent.run(request):
                if isinstance(item, AgentResult):
                    result = item
                    continue
                if first_token_ms is None:
                    first_token_ms = round((time.perf_counter() - started) * 1000, 2)
                if not auto:  # an auto-answer is held back until the gate has judged it
                    yield _localized(item, policy, msg)
            if result is None:  # an agent must end with a result; treat a silent one as a bug
                raise RuntimeError("agent finished without a result")
            metrics.observe_latency(result.tool_metadata, first_token_ms)

            if auto:
                verdict = judge(
                    result,
                    min_coverage=self.auto_answer_min_coverage,
                    min_probability=self.auto_answer_min_probability,
                )
                if not verdict.answer:
                    await self._keep_question(
                        session_id, question, question_metadata, context.earlier_attempt
                    )
                    stored = True
                    yield await stay_silent(
                        self.memory,
                        session_id,
                        question,
                        result,
                        policy,
                        verdict.reason,
                        message_id=msg.id,
                    )
                    return
                yield result.text
            text, kind = result.text, result.kind
            if kind is ReplyKind.NO_ANSWER and text == texts.NOT_IN_DOCS:
                text = _localized(text, policy, msg)
            if problem == "truncated":
                note = "\n\n" + texts.truncated_note(self.max_question_chars)
                text += note
                yield note
            escalation_id = None
            if result.escalation_reason:
                opened = await escalations.open_escalation(
                    self.db,
                    session_id=session_id,
                    platform=msg.conversation.platform.value,
                    channel_id=msg.conversation.channel_id,
                    thread_id=msg.conversation.thread_id,
                    requested_by=msg.author.id,
                    reason=result.escalation_reason,
                )
                escalation_id = opened.escalation.id
                kind = ReplyKind.ESCALATED
                opened_text = (
                    texts.ESCALATION_OPENED if in_place else texts.ESCALATION_OPENED_DIRECT
                )
                if opened_text not in text:
                    addition = ("\n\n" if text else "") + opened_text
                    text += addition
                    yield addition
            metadata: dict[str, Any] = dict(result.tool_metadata)
            metadata["kind"] = kind.value
            metadata[memories.REPLY_KEY] = msg.id
            metadata["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
            if metadata.get("first_token_ms") is None:
                metadata["first_token_ms"] = first_token_ms
            if auto:
                metadata["auto_answer"] = True
            if kind is not ReplyKind.ANSWER:  # reports group the questions the docs left open
                metadata["question"] = question[:QUESTION_IN_METADATA_CHARS]
            if escalation_id is not None:
                metadata["escalation_id"] = escalation_id
            related = result.related if kind is ReplyKind.NO_ANSWER else ()
            if related:
                metadata["related"] = [source.url_or_path for source in related]
            # The question and its answer are stored together, in one statement.
            memory_id = await self.memory.remember_turn(
                session_id,
                question,
                question_metadata,
                text,
                metadata,
                replacing=context.earlier_attempt,
            )
            stored = True
        finally:
            if not stored:  # a failed (or cancelled) answer still keeps the question
                await asyncio.shield(
                    self._keep_question(
                        session_id, question, question_metadata, context.earlier_attempt
                    )
                )
        if self.memory.needs_compaction(context):
            await self.memory.compact(session_id)
        yield Reply(
            text=text,
            kind=kind,
            sources=result.sources,
            ephemeral=private_answers(msg, policy) and kind in PRIVATE_KINDS,
            memory_id=memory_id,
            session_id=session_id,
            escalation_id=escalation_id,
            related=related,
        )

    async def _keep_question(
        self,
        session_id: str,
        question: str,
        metadata: dict[str, Any],
        replacing: tuple[int, ...],
    ) -> None:
        try:
            await self.memory.remember(session_id, USER, question, metadata, replacing=replacing)
        except Exception as exc:  # the answer's own failure is what the boundary reports
            passing = unreachable(exc)  # an outage is expected: its reason, not a traceback
            log.warning(
                "could not store the question of session %s%s",
                session_id,
                f": the database is unreachable ({type(exc).__name__})" if passing else "",
                exc_info=not passing,
            )

    async def answers_privately(self, msg: IncomingMessage) -> bool:
        """Whether an answer to ``msg`` is for its asker alone (the channel's ephemeral
        setting). Adapters ask before answering: a private answer is not streamed where others
        see it, and its final Reply says ``ephemeral``."""
        policy = await self.channels.policy(
            msg.conversation, parent_channel_id=msg.parent_channel_id
        )
        return private_answers(msg, policy)

    def replies_with_a_note(self, msg: IncomingMessage) -> bool:
        """Whether the reply to ``msg`` is a short note for its sender (help, usage for an
        empty question, settings, forget, unreadable input) rather than an answer, as
        :meth:`_answer` decides it. An adapter that must choose public or private before
        answering (a Discord command's deferral) keeps such a note private: an empty `/ask`
        showed its usage line to the whole channel."""
        command = slash.find_command(msg.command) if msg.command else None
        if (msg.command and command is None) or command in (slash.HELP, slash.FORGET):
            return True
        if channel_admin.is_settings_request(msg) or text_commands.forget_request(msg):
            return True
        return clean_text(msg.text, self.max_question_chars)[1] in ("empty", "unreadable")

    # --- commands and buttons -----------------------------------------------------------------

    async def forget(self, conversation: ConversationKey) -> int:
        return await self.memory.forget(conversation)

    async def forget_deleted(
        self, *, platform: str, message_id: str, sessions: Sequence[str], ledger_prefix: str
    ) -> Deleted:
        """Someone deleted the message ``message_id``: forget it (bot.deletion). ``sessions``:
        the conversations it may belong to; ``ledger_prefix`` + a version's id is the ledger
        key of the work that answered it. Work still answering it or one of its edits is
        withdrawn first, so it stores and posts nothing more (and takes back what it did,
        bot.inbox)."""
        question_key = ledger_prefix + message_id
        rows = await events.withdraw(
            self.db,
            platform=platform,
            event_ids=[question_key],
            hold=question_key,
            in_flight_prefix=question_key + EDIT_MARK,
        )
        found = {str(r.payload[SESSION_KEY]) for r in rows if r.payload.get(SESSION_KEY)}
        forgotten, versions = 0, set()
        for session_id in dict.fromkeys([*sessions, *sorted(found)]):
            turn = await self.memory.forget_message(session_id, message_id)
            forgotten += turn.rows
            versions.update(turn.versions)
        edits = {ledger_prefix + version for version in versions} - {r.event_id for r in rows}
        edits.discard(question_key)
        rows += await events.withdraw(self.db, platform=platform, event_ids=edits)
        answers = tuple(Work(r.event_id, r.payload, r.attempts) for r in rows)
        return Deleted(forgotten, answers)

    async def _forget(self, msg: IncomingMessage, session_id: str) -> str:
        """``/forget`` or "forget" said in words (bot.text_commands), and what it did,
        truthfully. In a shared thread the bot takes part in, its asker or a moderator clears
        the whole thread's memory; anyone else is told who may, and only their own exchanges
        there (a command's conversation of its own) are forgotten."""
        if msg.command is None and not msg.is_direct:
            # Said in a thread (or channel): that conversation is the shared one.
            return await self._forget_shared(msg.conversation, msg.author, own=0)
        own = await self.memory.forget(msg.conversation)
        if msg.shared_thread is not None:
            return await self._forget_shared(msg.shared_thread, msg.author, own=own)
        said = texts.forgotten(own) if own else texts.FORGOTTEN_NONE
        # A channel's command reaches only the caller's own exchanges: say how a thread's go.
        return said if msg.is_direct else f"{said}\n{texts.FORGET_THREAD_HINT}"

    async def _forget_shared(self, thread: ConversationKey, person: Author, *, own: int) -> str:
        """Clear a shared thread's memory if ``person`` may (``own``: their own exchanges there,
        already forgotten)."""
        if not await self.memory.follows(thread):
            return texts.forgotten(own) if own else texts.FORGOTTEN_NONE
        if not await self.memory.may_clear_thread(thread, person):
            return texts.thread_not_yours_to_forget(own)
        return texts.thread_forgotten(own + await self.memory.forget(thread))

    def help_text(self) -> str:
        return texts.help_text([(c.usage, c.description) for c in slash.COMMANDS])

    async def feedback(
        self, *, memory_id: int, session_id: str, user_id: str, helpful: bool
    ) -> Reply:
        try:
            answer = await memories.get_memory(self.db, memory_id=memory_id)
            if answer is None or answer.session_id != session_id:
                # Forgotten (or never ours): nothing to attach the vote to.
                return self._info(texts.FEEDBACK_UNKNOWN_ANSWER, session_id, ephemeral=True)
            await feedback.record_feedback(
                self.db,
                memory_id=memory_id,
                session_id=session_id,
                user_id=user_id,
                value=1 if helpful else -1,
            )
        except Exception:
            log.error("feedback failed for session %s", session_id, exc_info=True)
            return Reply(
                texts.ERROR_GENERIC, ReplyKind.ERROR, ephemeral=True, session_id=session_id
            )
        text = texts.FEEDBACK_THANKS_HELPFUL if helpful else texts.FEEDBACK_THANKS_UNHELPFUL
        return self._info(text, session_id, ephemeral=True)

    async def follows(
        self, conversation: ConversationKey, author_id: str | None = None, *, open_: bool = False
    ) -> bool:
        """Is a message of ``author_id`` in this thread that does not mention the bot for it?
        When the bot has taken part, this person asked it something here (``open_``: or the
        thread is one the bot answers unasked and has no turn yet; :meth:`MemoryPolicy.follows`),
        and no hand-off is open there (:meth:`handed_off`: the team has the thread)."""
        followed = await self.memory.follows(conversation, author_id, open_=open_)
        return followed and not await self.handed_off(conversation)

    async def handed_off(self, conversation: ConversationKey) -> bool:
        """Is a hand-off open in this conversation? Then the team has it: the bot answers only
        when mentioned, so that it never talks over the person helping (nor answers their
        replies as questions) until the hand-off is resolved."""
        return await escalations.has_open(self.db, session_id=conversation.session_id)

    async def escalate(
        self,
        *,
        conversation: ConversationKey,
        requested_by: str,
        reason: str | None = None,
        in_place: bool = True,
    ) -> HandOff:
        """Open (or find) the conversation's hand-off. On failure the id is 0 and kind ERROR.
        ``in_place``: the team can reply where it was asked for (not under a private /ask
        answer, nor in a DM with the bot, where the asker is told someone will message them).
        There the team has no thread to read: without a ``reason``, the conversation's last
        question is what their notice says was asked."""
        session_id = conversation.session_id
        try:
            if reason is None and not in_place:
                reason = (await self.memory.load(session_id)).previous_question
            opened = await escalations.open_escalation(
                self.db,
                session_id=session_id,
                platform=conversation.platform.value,
                channel_id=conversation.channel_id,
                thread_id=conversation.thread_id,
                requested_by=requested_by,
                reason=(reason or "")[:1000] or None,
            )
        except Exception:
            log.error("escalation failed for session %s", session_id, exc_info=True)
            error = Reply(texts.ERROR_GENERIC, ReplyKind.ERROR, session_id=session_id)
            return HandOff(error, 0, created=False)
        escalation_id = int(opened.escalation.id)
        if not conversation.platform.delivers_replies:  # a terminal: nobody can reply there
            text = texts.escalation_recorded(escalation_id)
        elif opened.created:
            text = texts.ESCALATION_OPENED if in_place else texts.ESCALATION_OPENED_DIRECT
        else:
            text = (
                texts.ESCALATION_ALREADY_OPEN if in_place else texts.ESCALATION_ALREADY_OPEN_DIRECT
            )
        reply = Reply(text, ReplyKind.ESCALATED, session_id=session_id, escalation_id=escalation_id)
        return HandOff(reply, escalation_id, created=opened.created)

    async def resolve_escalation(
        self,
        *,
        escalation_id: int,
        resolved_by: str,
        read_thread: ThreadReader | None = None,
        thread_link: str | None = None,
        resumed: bool = False,
    ) -> Reply:
        """Close a hand-off; with ``read_thread`` (the adapter's thread history), the team's
        answer is captured as a draft for review (bot.learning). Capture never fails a resolve.
        ``resumed``: a later attempt of the same request, whose earlier attempt may have closed
        it and died before capturing the draft: a closed hand-off is finished, not "not open"
        (capturing adds nothing when the draft exists)."""
        try:
            resolved = await escalations.resolve_escalation(
                self.db, escalation_id=escalation_id, resolved_by=resolved_by
            )
            if resolved is None and resumed:
                row = await escalations.get_escalation(self.db, escalation_id=escalation_id)
                if row is not None and row.status == escalations.RESOLVED:
                    resolved = row
        except Exception:
            log.error("resolving escalation %s failed", escalation_id, exc_info=True)
            return Reply(texts.ERROR_GENERIC, ReplyKind.ERROR, ephemeral=True)
        if resolved is not None and read_thread is not None:
            try:
                await learning.capture_resolution(
                    self.db,
                    escalation_id=escalation_id,
                    read_thread=read_thread,
                    thread_link=thread_link,
                )
            except Exception:
                log.warning(
                    "capturing the answer of escalation %s failed", escalation_id, exc_info=True
                )
        if resolved is None:
            # Said to the clicker alone: a double click's second answer must not replace the
            # "resolved" note everyone sees.
            return Reply(texts.ESCALATION_NOT_OPEN, ReplyKind.INFO, ephemeral=True)
        return Reply(texts.ESCALATION_RESOLVED, ReplyKind.INFO)

    @staticmethod
    def _info(text: str, session_id: str, *, ephemeral: bool = False) -> Reply:
        return Reply(text=text, kind=ReplyKind.INFO, ephemeral=ephemeral, session_id=session_id)


def _localized(delta: str, policy: ChannelPolicy, msg: IncomingMessage) -> str:
    """The refusal streamed in the channel's language, saying how to ask for a human with what
    the reply to ``msg`` has (a button, or not on a Slack /ask); other text is the model's."""
    if delta != texts.NOT_IN_DOCS:
        return delta
    return policy.refusal_text(msg.conversation.platform, command=msg.command is not None)


# What "answers" means for that rule: an answer, and a refusal ("not in the docs") to the
# question. A hand-off (ESCALATED) stays public on purpose: the team must see it.
PRIVATE_KINDS = frozenset({ReplyKind.ANSWER, ReplyKind.NO_ANSWER})


def private_answers(msg: IncomingMessage, policy: ChannelPolicy) -> bool:
    """The one rule: answers (and refusals, :data:`PRIVATE_KINDS`) in a channel set to
    ephemeral go to the asker alone (a DM is private already)."""
    return policy.ephemeral and not msg.is_direct


def _session_id(msg: IncomingMessage) -> str:
    try:
        return msg.conversation.session_id
    except Exception:  # a malformed key must not escape the boundary
        return "unknown"


def _reason(exc: BaseException) -> str:
    """One line for the operator: the error's own message, and what caused it underneath."""
    reason = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None:
        detail = " ".join(str(cause).split())[:200]
        reason += f" ({type(cause).__name__}{': ' + detail if detail else ''})"
    return reason


def _apology(exc: BaseException) -> str:
    if isinstance(exc, ModelTimeoutError):
        return texts.ERROR_MODEL_TIMEOUT
    if isinstance(exc, ModelFilteredError):
        return texts.ERROR_MODEL_FILTERED
    if isinstance(exc, ModelError):
        return texts.ERROR_MODEL_UNAVAILABLE
    return texts.ERROR_GENERIC


def clean_text(raw: object, limit: int) -> tuple[str, str | None]:
    """Normalise user input. Returns (text, problem): problem is None, "empty", "unreadable"
    (binary garbage) or "truncated" (only the first ``limit`` characters are kept)."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", errors="replace")
    text = str(raw or "")
    # Lone surrogates cannot be encoded (and would break JSON and the database): replace them.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    if not text.strip():
        return "", "empty"
    text = unicodedata.normalize("NFC", text)
    noise = sum(1 for ch in text if _is_noise(ch))
    text = _CONTROL.sub(" ", text)
    text = _LEADING_MENTION.sub("", text).strip()  # adapters strip mentions; be safe anyway
    if not text:
        return "", "empty" if _LEADING_MENTION.match(str(raw)) else "unreadable"
    if noise / max(1, len(text)) > 0.2 or not any(ch.isalnum() for ch in text):
        return "", "unreadable"
    if len(text) > limit:
        return text[:limit].rstrip(), "truncated"
    return text, None


def _is_noise(ch: str) -> bool:
    """Characters that come from decoding binary data, not from a person typing."""
    if ch in "\n\t\r ":
        return False
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs")
