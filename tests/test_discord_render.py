"""adapters.discord.render: splitting, fences, embeds within limits, buttons, no mentions."""

from __future__ import annotations

import re

from adapters.discord import render
from bot.messages import Reply, ReplyKind, Source


def _long_answer_with_code(total: int = 7000) -> str:
    parts: list[str] = []
    block = 0
    while sum(len(p) + 2 for p in parts) < total:
        parts.append(
            f"Step {block}: configure the worker pool carefully before you deploy it. " * 4
        )
        code = "\n".join(
            f"    result_{block}_{i} = compute(value={i})  # line {i}" for i in range(25)
        )
        parts.append(f"```python\ndef step_{block}():\n{code}\n```")
        block += 1
    return "\n\n".join(parts)


def test_short_text_is_one_chunk() -> None:
    assert render.split_markdown("Hello **world**") == ["Hello **world**"]


def test_empty_text_gives_no_chunks() -> None:
    assert render.split_markdown("  \n\n ") == []


def test_long_answer_splits_under_limit_with_balanced_fences() -> None:
    text = _long_answer_with_code(7000)
    chunks = render.split_markdown(text)
    assert len(chunks) >= 4
    for chunk in chunks:
        assert len(chunk) <= render.MESSAGE_LIMIT
        assert render.fences_balanced(chunk), chunk
    # Nothing lost: every code line and every sentence survives the split.
    joined = "\n".join(chunks)
    for line in text.split("\n"):
        if line.strip() and not line.startswith("```"):
            assert line.strip() in joined


def test_fence_cut_is_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})  # {'x' * 40}" for i in range(100))
    chunks = render.split_markdown(f"Intro\n```python\n{code}\n```\nOutro", limit=500)
    assert len(chunks) > 3
    for chunk in chunks[1:-1]:
        assert chunk.startswith("```python\n")
        assert chunk.endswith("\n```")
    assert all(len(c) <= 500 for c in chunks)
    assert chunks[-1].endswith("Outro")


def test_words_are_not_broken() -> None:
    words = [f"word{i}" for i in range(1500)]
    chunks = render.split_markdown(" ".join(words), limit=300)
    rebuilt = " ".join(chunks).split()
    assert rebuilt == words
    assert all(len(c) <= 300 for c in chunks)


def test_giant_word_is_cut_hard_but_fits() -> None:
    chunks = render.split_markdown("x" * 5000)
    assert "".join(chunks) == "x" * 5000
    assert all(len(c) <= render.MESSAGE_LIMIT for c in chunks)


def test_unclosed_fence_in_input_is_closed() -> None:
    chunks = render.split_markdown("look:\n```\ncode without end")
    assert chunks == ["look:\n```\ncode without end\n```"]


def test_tilde_and_longer_fences() -> None:
    text = "~~~~sh\necho ```\n~~~~\nafter"
    assert render.split_markdown(text) == [text]
    assert render.fences_balanced(text)


def test_sources_embed_respects_every_limit() -> None:
    sources = tuple(
        Source(
            title="T" * 400,
            url_or_path=f"https://docs.example.com/page/{i}",
            snippet="s" * 3000,
            heading="H" * 50,
        )
        for i in range(40)
    )
    embed = render.sources_embed(sources)
    assert embed is not None
    assert len(embed["title"]) <= render.EMBED_TITLE_LIMIT
    assert len(embed["fields"]) <= render.EMBED_FIELDS_LIMIT
    for item in embed["fields"]:
        assert len(item["name"]) <= render.EMBED_FIELD_NAME_LIMIT
        assert len(item["value"]) <= render.EMBED_FIELD_VALUE_LIMIT
    assert render.embed_size(embed) <= render.EMBED_TOTAL_LIMIT


def test_local_paths_and_urls_in_sources() -> None:
    embed = render.sources_embed(
        (
            Source(title="Guide", url_or_path="docs/guide.md", snippet="How to\n  install"),
            Source(title="API", url_or_path="https://x.dev/api", heading="Auth"),
        )
    )
    assert embed is not None
    assert embed["fields"][0]["value"] == "`docs/guide.md`\nHow to install"
    assert embed["fields"][1]["value"] == "[API › Auth](https://x.dev/api)"
    assert render.sources_embed(()) is None


def test_answer_gets_feedback_and_human_buttons_on_last_message_only() -> None:
    reply = Reply(
        text="word " * 900,
        kind=ReplyKind.ANSWER,
        sources=(Source(title="Guide", url_or_path="docs/guide.md"),),
        memory_id=42,
    )
    payloads = render.render_reply(reply)
    assert len(payloads) == 3
    assert all(not p.buttons and not p.embeds for p in payloads[:-1])
    ids = [b.custom_id for b in payloads[-1].buttons]
    assert ids == ["sb:fb:up:42", "sb:fb:down:42", "sb:esc:42"]
    for custom_id in ids:
        assert len(custom_id) <= render.CUSTOM_ID_LIMIT
        assert any(
            re.fullmatch(t, custom_id)
            for t in (render.FEEDBACK_TEMPLATE, render.ESCALATE_TEMPLATE, render.RESOLVE_TEMPLATE)
        )
    assert payloads[-1].embeds[0]["fields"][0]["name"] == "1. Guide"


def test_no_answer_offers_a_human_and_info_has_no_buttons() -> None:
    no_answer = render.render_reply(Reply(text="Not in the docs", kind=ReplyKind.NO_ANSWER))
    assert [b.custom_id for b in no_answer[-1].buttons] == ["sb:esc:0"]
    assert render.render_reply(Reply(text="Done", kind=ReplyKind.INFO))[-1].buttons == ()
    match = re.fullmatch(render.RESOLVE_TEMPLATE, render.resolve_custom_id(7))
    assert match is not None and match["escalation_id"] == "7"


def test_every_payload_pings_nobody() -> None:
    payloads = render.render_reply(Reply(text="@everyone please read <@&123> and @here"))
    for payload in payloads:
        assert payload.allowed_mentions["parse"] == []
        assert payload.allowed_mentions["replied_user"] is False


def test_progress_is_balanced_while_streaming() -> None:
    chunks = render.render_progress("Here is code:\n```js\nconst a = 1;")
    assert chunks[-1].endswith("```")
    assert render.fences_balanced(chunks[-1])


def test_custom_ids_parse_back() -> None:
    up = render.parse_custom_id(render.feedback_custom_id(5, helpful=True))
    assert up == render.ParsedButton(render.ButtonAction.HELPFUL, 5)
    down = render.parse_custom_id(render.feedback_custom_id(5, helpful=False))
    assert down is not None and down.action is render.ButtonAction.UNHELPFUL
    assert render.parse_custom_id("sb:esc:0") == render.ParsedButton(
        render.ButtonAction.ESCALATE, 0
    )
    assert render.parse_custom_id("sb:resolve:9") == render.ParsedButton(
        render.ButtonAction.RESOLVE, 9
    )
    for bad in ("sb:fb:maybe:1", "sb:resolve:x", "other:1", ""):
        assert render.parse_custom_id(bad) is None
    for good in ("sb:fb:up:1", "sb:esc:0", "sb:resolve:12"):
        assert re.fullmatch(render.BUTTON_TEMPLATE, good)


def test_application_commands_come_from_the_core_definitions() -> None:
    from bot import slash

    rendered = render.application_commands(slash.COMMANDS)
    assert [c["name"] for c in rendered] == [c.name for c in slash.COMMANDS]
    ask = next(c for c in rendered if c["name"] == "ask")
    assert ask["options"][0] == {
        "type": 3,
        "name": "question",
        "description": slash.ASK.options[0].description,
        "required": True,
    }
    assert ask["options"][1]["name"] == "ephemeral" and ask["options"][1]["type"] == 5
    assert all(len(c["description"]) <= 100 for c in rendered)


def test_a_cited_passages_snippet_carries_no_code_fence_markers() -> None:
    """A source's snippet is one line: "Setting a timeout: ```python client = ..." was no code
    block, and cut short it left the embed (and `kb search`) with an unclosed fence."""
    from bot.tools import source_of
    from storage.knowledge import SearchHit

    text = (
        "You can set a timeout on a client instance:\n\n```python\n"
        + "\n".join(
            f"client = httpx.Client(timeout={n})  # a default {n}s timeout" for n in range(9)
        )
        + "\n```\n\nTimeouts apply to every request."
    )
    hit = SearchHit(
        chunk_id="c1", source="timeouts.md", title="Timeouts", heading="", text=text, score=1.0
    )
    snippet = source_of(hit).snippet
    assert "```" not in snippet and "`" not in hit.snippet(300)
    assert snippet.startswith("You can set a timeout on a client instance: client = httpx.Client(")
    assert snippet.endswith("…") and len(snippet) <= 240
