from storage import events, memories
from storage.db import Database


async def test_append_load_forget_roundtrip(db: Database) -> None:
    for i in range(5):
        await memories.append_memory(db, session_id="s1", role="user", content=f"m{i}")
    await memories.append_memory(db, session_id="s2", role="user", content="other")
    recent = await memories.load_recent(db, session_id="s1", limit=3)
    assert [m.content for m in recent] == ["m2", "m3", "m4"]
    assert await memories.forget_session(db, session_id="s1") == 5
    assert await memories.count_memories(db, session_id="s2") == 1
    # Any stored turn (the thread-follow check): s2 has one, s1 none left.
    assert await memories.recent_askers(db, session_id="s2", roles=("user",)) is not None
    assert await memories.recent_askers(db, session_id="s1", roles=("user",)) is None


async def test_event_ledger_claims_once(db: Database) -> None:
    assert await events.claim_event(db, platform="slack", event_id="Ev1")
    assert not await events.claim_event(db, platform="slack", event_id="Ev1")
    assert await events.claim_event(db, platform="discord", event_id="Ev1")
