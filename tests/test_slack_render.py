"""Pure rendering of replies into Slack Block Kit (adapters/slack/render.py)."""

from __future__ import annotations

import json

from adapters.slack.render import (
    MAX_BLOCKS,
    MESSAGE_TEXT_LIMIT,
    SECTION_LIMIT,
    markdown_to_mrkdwn,
    parse_button_value,
    render_reply,
    split_mrkdwn,
)
from bot.messages import Reply, ReplyKind, Source


def test_markdown_becomes_mrkdwn() -> None:
    md = (
        "# Title\n"
        "Some **bold**, *italic*, _also_, ~~gone~~ and [a link](https://x.io/?a=1&b=2).\n"
        "- one\n"
        "* two\n"
        "1. first\n"
        "> quoted <b>\n"
        "Use `**not bold**` here.\n"
        "```python\n"
        "x = a ** 2 < 3 & *y*\n"
        "```"
    )
    assert markdown_to_mrkdwn(md).split("\n") == [
        "*Title*",
        "Some *bold*, _italic_, _also_, ~gone~ and <https://x.io/?a=1&amp;b=2|a link>.",
        "• one",
        "• two",
        "1. first",
        "> quoted &lt;b&gt;",
        "Use `**not bold**` here.",
        "```",
        "x = a ** 2 &lt; 3 &amp; *y*",
        "```",
    ]


def _fences_balanced(text: str) -> bool:
    return sum(1 for line in text.split("\n") if line.strip() == "```") % 2 == 0


def _long_answer() -> str:
    parts = []
    i = 0
    while sum(len(p) for p in parts) < 10_000:
        parts.append(f"## Step {i}\nRun the **tool** with care, see [docs](https://d.io/{i}).\n")
        parts.append("```bash\n" + "\n".join(f"echo line {i}-{j}" for j in range(40)) + "\n```\n")
        i += 1
    return "".join(parts)[:10_000]


def test_ten_thousand_chars_with_code_fit_slack_limits_with_fences_intact() -> None:
    text = _long_answer()
    assert len(text) == 10_000
    reply = Reply(
        text=text,
        sources=(Source(title="Guide", url_or_path="https://d.io/guide"),),
        memory_id=7,
        session_id="slack:T1:C1:1.2",
    )
    messages = render_reply(reply)
    assert len(messages) > 1
    for message in messages:
        assert len(message.text) <= MESSAGE_TEXT_LIMIT
        assert len(message.blocks) <= MAX_BLOCKS
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SECTION_LIMIT
                assert _fences_balanced(block["text"]["text"])
    # no content lost: every code line shows up exactly once
    joined = "\n".join(m.text for m in messages)
    assert joined.count("echo line 0-39") == 1
    footer = messages[-1].blocks
    assert footer[-3]["block_id"] == "sb_sources"
    assert "<https://d.io/guide|Guide>" in json.dumps(footer)
    value = parse_button_value(footer[-2]["elements"][0]["value"])
    assert value == {"m": 7, "s": "slack:T1:C1:1.2"}
    assert footer[-1]["elements"][0]["action_id"] == "sb_human"


def test_split_reopens_a_cut_fence_and_wraps_giant_lines() -> None:
    text = "intro\n```\n" + "\n".join("x" * 50 for _ in range(200)) + "\n```\nafter"
    parts = split_mrkdwn(text, limit=1000)
    assert all(len(p) <= 1000 and _fences_balanced(p) for p in parts)
    assert parts[1].startswith("```") and parts[0].endswith("```")
    giant = split_mrkdwn("y" * 5000, limit=1000)
    assert "".join(giant) == "y" * 5000 and all(len(p) <= 1000 for p in giant)


def test_buttons_depend_on_kind() -> None:
    info = render_reply(Reply(text="done", kind=ReplyKind.INFO, session_id="s"))
    assert [b["type"] for b in info[0].blocks] == ["section"]
    error = render_reply(Reply(text="oops", kind=ReplyKind.ERROR, session_id="slack:T:C"))
    assert [b.get("block_id") for b in error[0].blocks][1:] == ["sb_human"]
    shared = render_reply(Reply(text="a", memory_id=3, session_id="s"), share=True)
    assert shared[0].blocks[-1]["elements"][0]["action_id"] == "sb_share"
    local = Source(title="Install", url_or_path="docs/install.md", heading="Linux")
    with_path = render_reply(Reply(text="a", sources=(local,)))
    assert "Install › Linux (`docs/install.md`)" in json.dumps(
        with_path[0].blocks, ensure_ascii=False
    )
