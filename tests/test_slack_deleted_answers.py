"""A message of an answer deleted by someone else (a moderator, the workspace owner) while the
answer is still being written: Slack refuses the next append, stop or update with
``message_not_found``, and the asker gets the answer posted anew, once, instead of an apology.
Through slack_sdk against the fake Slack, the model answering slowly from the OpenAI fake."""

from __future__ import annotations

import pytest

from bot import texts
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, model_settings
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "fake_openai", "kb_uri"]
BOT = DEFAULT_BOT_USER
ANSWER = "".join(f"Step {i}: open the settings page and choose item {i}. " for i in range(30))


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "update"])
async def test_an_answer_deleted_while_written_is_posted_anew_not_apologised_for(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    streaming: bool,
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "steps"})]),
        Turn(content=ANSWER, chunk_chars=60, chunk_delay=0.1),
    )
    settings = model_settings(sqlite_url, kb_uri, api, fake_openai)
    h = await SlackHarness.start(api, settings, db=sqlite_db, streaming=streaming)
    try:
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> list the steps", ts=new_ts()))
        [partial] = await api.wait_for(
            lambda: [m for m in api.posted() if m.text.startswith("Step 0")]
        )
        api.delete_by_someone(partial.channel, partial.ts)  # while it is still written
        await api.wait_for(
            lambda: any(b.get("block_id") == "sb_human" for m in api.posted() for b in m.blocks),
            timeout=20,
        )
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.ts != partial.ts
    assert answer.text.startswith("Step 0") and "Step 29" in answer.text
    assert texts.ERROR_GENERIC not in answer.text
