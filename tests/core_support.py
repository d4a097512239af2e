"""Helpers for the agent-core tests: a tiny real knowledge base, messages, responders."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.agent import Agent, OfflineAgent, OpenAIAgent
from bot.memory import MemoryPolicy
from bot.messages import Author, ConversationKey, IncomingMessage, Platform
from bot.responder import Responder
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI

DOCS = {
    "auth.md": """# Authentication

## Resetting your password

To reset your password, open Settings, choose Security and click "Reset password". A reset
link is emailed to you and expires after 30 minutes.

## API tokens

API tokens are created under Settings > Developer. Tokens expire after 90 days. Rotate a token
by creating a new one and deleting the old one.
""",
    "billing.md": """# Billing

## Invoices

Invoices are sent on the first day of each month to the billing email. You can download past
invoices from the Billing page.

## Refunds

Refunds are available within 14 days of purchase. Contact support to request a refund.
""",
}


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def build_kb(tmp_path: Path) -> KnowledgeBase:
    """A real LanceDB knowledge base over DOCS, BM25 only (fast, no model weights)."""
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([write_docs(tmp_path / "docs")])
    return kb


@pytest.fixture(name="kb")
def kb_fixture(tmp_path: Path) -> KnowledgeBase:
    return build_kb(tmp_path)


def conversation(thread: str | None = "t1", channel: str = "C1") -> ConversationKey:
    return ConversationKey(Platform.SLACK, "T1", channel, thread)


_MESSAGE_IDS = itertools.count(1)


def message(
    text: str,
    *,
    thread: str | None = "t1",
    channel: str = "C1",
    user: str = "U1",
    command: str | None = None,
    msg_id: str | None = None,
) -> IncomingMessage:
    """A user message; each gets its own id, as on a platform, unless ``msg_id`` is given
    (the Responder treats the same id in a conversation as the same message answered again)."""
    return IncomingMessage(
        id=msg_id or f"auto-{next(_MESSAGE_IDS)}",  # never one a test spells out ("m2")
        conversation=conversation(thread, channel),
        author=Author(id=user, display_name=user),
        text=text,
        command=command,
    )


def openai_agent(
    kb: KnowledgeBase, fake: FakeOpenAI, *, timeout: float = 5.0, max_retries: int = 2
) -> OpenAIAgent:
    return OpenAIAgent(
        kb,
        api_key=FAKE_API_KEY,
        model="fake-gpt",
        base_url=fake.base_url,
        timeout=timeout,
        max_retries=max_retries,
    )


def responder(
    db: Database, agent: Agent | None = None, *, kb: KnowledgeBase | None = None, turns: int = 5
) -> Responder:
    if agent is None:
        assert kb is not None
        agent = OfflineAgent(kb)
    return Responder(
        db=db, agent=agent, memory=MemoryPolicy(db, turns=turns), max_question_chars=4000
    )


async def words_held(db: Database, session_id: str) -> list[str]:
    """The words the bot still holds of a conversation (after a forget, the records of who
    asked there stay, with none)."""
    rows = await memories.export_session(db, session_id=session_id)
    return [row.content for row in rows if row.content]
