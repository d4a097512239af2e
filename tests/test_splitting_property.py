"""Every part of every split answer has balanced code fences and stays within the platform's
limit, on Slack and Discord alike (issue 12, point 9): property-based, over random Markdown with
fences (with and without a language, some left open), long lines, long words and unicode."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.discord import render as discord_render
from adapters.slack import render as slack_render
from bot import splitting
from bot.messages import Reply, ReplyKind

LANGUAGES = ["", "python", "js", "bash", "c++", "json {.x}", "ünï"]
_ALPHABET = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\r\n\u2028\u2029\x85"
)
word = st.text(_ALPHABET, min_size=1, max_size=12).filter(lambda w: not w.isspace())
long_word = st.text(st.sampled_from("abcXYZ0123456789/-_é漢😀"), min_size=300, max_size=4500)
prose_line = st.lists(st.one_of(word, word, word, long_word), min_size=0, max_size=60).map(" ".join)


@st.composite
def code_block(draw: st.DrawFn) -> str:
    marker = draw(st.sampled_from(["```", "~~~", "````", "```" * 7]))
    language = draw(st.sampled_from(LANGUAGES))
    body = draw(st.lists(st.one_of(prose_line, long_word, st.just("")), max_size=40))
    closed = draw(st.booleans()) or draw(st.booleans())
    lines = [f"{marker}{language}", *body]
    if closed:
        lines.append(marker)
    return "\n".join(lines)


block = st.one_of(
    prose_line,
    code_block(),
    prose_line.map(lambda text: "## " + text),
    st.lists(prose_line, max_size=5).map(lambda items: "\n".join("- " + i for i in items)),
    st.just("inline ```code``` and a stray ``` in prose"),
)
markdown = st.lists(block, min_size=1, max_size=14).map("\n\n".join)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _tamed(text: str) -> str:
    """The source as the splitter reads it: fence markers longer than MAX_MARKER shortened."""
    limit = splitting.MAX_MARKER
    return re.sub(
        rf"(?m)^( {{0,3}})(`{{{limit + 1},}}|~{{{limit + 1},}})",
        lambda m: m[1] + m[2][:limit],
        text,
    )


def _is_subsequence(needle: str, haystack: str) -> bool:
    found = iter(haystack)
    return all(ch in found for ch in needle)


def _fence_infos(text: str) -> set[str]:
    infos = set()
    fence = None
    for line in text.split("\n"):
        after = splitting.fence_after(fence, line)
        if fence is None and after is not None:
            infos.add(re.sub(r"^[`~]+", "", after).strip()[: splitting.MAX_INFO])
        fence = after
    return infos


def _check_parts(parts: list[str], limit: int, source: str) -> None:
    assert parts
    for part in parts:
        assert len(part) <= limit, (len(part), limit)
        assert splitting.fences_balanced(part), part
    # Nothing is lost: every visible character of the source survives, in order.
    assert _is_subsequence(_no_space(_tamed(source)), _no_space("".join(parts)))
    # A reopened fence keeps its language: no part opens a fence the source never had.
    known = {info for info in _fence_infos(source)} | {""}
    for part in parts:
        assert _fence_infos(part) <= known | {i[: splitting.MAX_INFO] for i in known}


@SETTINGS
@given(text=markdown, limit=st.integers(min_value=splitting.MIN_LIMIT, max_value=3000))
def test_shared_splitter_keeps_limits_fences_and_text(text: str, limit: int) -> None:
    parts = splitting.split_markdown(text, limit=limit)
    if not text.strip():
        assert parts == []
        return
    _check_parts(parts, limit, text.replace("\r\n", "\n"))


@SETTINGS
@given(text=markdown)
def test_discord_answers_fit_and_balance(text: str) -> None:
    payloads = discord_render.render_reply(Reply(text=text, kind=ReplyKind.ANSWER, memory_id=1))
    contents = [p.content for p in payloads]
    if text.strip():
        _check_parts(contents, discord_render.MESSAGE_LIMIT, text)
    for chunk in discord_render.render_progress(text):
        assert len(chunk) <= discord_render.MESSAGE_LIMIT
        assert splitting.fences_balanced(chunk)


@SETTINGS
@given(text=markdown)
def test_slack_answers_fit_and_balance(text: str) -> None:
    messages = slack_render.render_reply(Reply(text=text, kind=ReplyKind.ANSWER, memory_id=1))
    sections = [b["text"]["text"] for m in messages for b in m.blocks if b.get("type") == "section"]
    assert len(sections) == len(messages)
    for message, section in zip(messages, sections, strict=True):
        assert len(section) <= slack_render.SECTION_LIMIT
        assert len(message.text) <= slack_render.MESSAGE_TEXT_LIMIT
        assert splitting.fences_balanced(section), section
    preview = slack_render.preview_text(text)
    assert len(preview) <= slack_render.SECTION_LIMIT
    assert splitting.fences_balanced(preview)
