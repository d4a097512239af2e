"""/admin (token, cookie login, CSRF, review buttons, channel form) and /metrics, on the real
aiohttp routes with a real runtime; both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.web.admin import mount_admin
from adapters.web.metrics import mount_metrics
from bot.config import Settings
from bot.runtime import build_runtime
from storage import channel_settings, learned
from tests.admin_support import DRAFT_QUESTION, THREAD_LINK, seed_admin_data
from tests.fakes.slack_harness import build_kb

TOKEN = "admin-token-for-tests-7f3a"


async def client_for(url: str, tmp_path: Path, token: str | None) -> tuple[TestClient, object]:
    settings = Settings(
        database_url=url,
        kb_uri=build_kb(tmp_path),
        embedder="none",
        admin_token=token,
        learned_dir=str(tmp_path / "learned_docs"),
    )
    runtime = await build_runtime(settings)
    app = web.Application()
    mount_admin(app, runtime)
    mount_metrics(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, runtime


@pytest.fixture
async def admin(any_db_url: str, tmp_path: Path) -> AsyncIterator[tuple[TestClient, object, int]]:
    draft_id = await seed_admin_data(any_db_url)
    client, runtime = await client_for(any_db_url, tmp_path, TOKEN)
    yield client, runtime, draft_id
    await client.close()
    await runtime.aclose()


async def test_admin_is_404_without_a_token(sqlite_url: str, tmp_path: Path) -> None:
    await seed_admin_data(sqlite_url)
    client, runtime = await client_for(sqlite_url, tmp_path, None)
    try:
        for path in ("/admin", "/admin/login"):
            response = await client.get(path) if path == "/admin" else await client.post(path)
            assert response.status == 404
    finally:
        await client.close()
        await runtime.aclose()


async def test_login_review_and_channel_form(admin) -> None:
    client, runtime, draft_id = admin
    response = await client.get("/admin")
    assert response.status == 401 and 'name="token"' in await response.text()
    wrong = await client.post("/admin/login", data={"token": "nope"}, allow_redirects=False)
    assert wrong.status == 401
    bearer = await client.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status == 200

    login = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert login.status == 303 and TOKEN not in login.headers["Set-Cookie"]
    assert (
        "HttpOnly" in login.headers["Set-Cookie"]
        and "SameSite=Strict" in login.headers["Set-Cookie"]
    )
    page = await (await client.get("/admin")).text()
    for fragment in (
        "Overview", "Open hand-offs (1)", "needs a refund &lt;today&gt;", DRAFT_QUESTION,
        f'id="approve-{draft_id}"', "slack:T1:CHELP", "billing/", "<svg",
        f'href="{THREAD_LINK}"',
    ):  # fmt: skip
        assert fragment in page, fragment
    assert "<today>" not in page

    # A POST without the page's CSRF field is refused; with it, the draft is approved.
    forged = await client.post(f"/admin/learned/{draft_id}/approve", data={})
    assert forged.status == 403
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    done = await client.post(f"/admin/learned/{draft_id}/approve", data={"csrf": csrf})
    assert done.status == 200 and "is in the knowledge base" in await done.text()
    [row] = await learned.list_answers(runtime.db, status="approved")
    assert row.document_source.startswith("learned/")
    assert row.document_source in runtime.knowledge.sources()

    saved = await client.post(
        "/admin/channels",
        data={"csrf": csrf, "platform": "discord", "workspace_id": "G1", "channel_id": "F1",
              "auto_answer": "on", "refusal_language": "de", "unanswered_reaction": ":eyes:"},
    )  # fmt: skip
    assert "Saved discord:G1:F1" in await saved.text()
    setting = await channel_settings.get_setting(
        runtime.db, platform="discord", workspace_id="G1", channel_id="F1"
    )
    assert setting.auto_answer and setting.refusal_language == "de"
    assert setting.unanswered_reaction == "eyes"
    bad = await client.post(
        "/admin/channels",
        data={"csrf": csrf, "platform": "discord", "channel_id": "F2", "refusal_language": "xx"},
    )
    assert "Not saved: refusal language" in await bad.text()

    await client.post("/admin/logout", data={"csrf": csrf})
    assert (await client.get("/admin")).status == 401


async def test_metrics_exposition(admin) -> None:
    from bot import metrics
    from bot.messages import Author, ConversationKey, IncomingMessage, Platform

    client, runtime, _ = admin
    before = metrics.ANSWERS.labels(kind="answer")._value.get()
    msg = IncomingMessage(
        id="m1",
        conversation=ConversationKey(Platform.SLACK, "T1", "C1", "t1"),
        author=Author("U1"),
        text="how do I reset my password?",
    )
    reply = await runtime.responder.handle(msg)
    assert reply.kind.value == "answer"

    async def inbox() -> None:
        metrics.observe_inbox(3, 12.5)

    metrics.register_collector(inbox)
    try:
        response = await client.get("/metrics")
        text = await response.text()
    finally:
        metrics.unregister_collector(inbox)
    assert response.status == 200 and response.content_type == "text/plain"
    assert metrics.ANSWERS.labels(kind="answer")._value.get() == before + 1
    for line in (
        f'supportbot_answers_total{{kind="answer"}} {before + 1}',
        "supportbot_inbox_queue_depth 3.0",
        "supportbot_inbox_oldest_age_seconds 12.5",
        'supportbot_model_latency_seconds_count{agent="offline"}',
        "supportbot_retrieval_latency_seconds_count",
        "supportbot_events_received_total",
        "supportbot_event_loop_lag_seconds",
    ):
        assert line in text, line
