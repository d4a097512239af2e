"""Pure rendering of a neutral ``Reply`` into Slack messages (Block Kit blocks + fallback text).

Slack limits (docs/architecture.md, "Platform facts"): 3000 characters per section text, 50
blocks per message, about 4000 characters of message text. A long answer becomes several
messages, each with one section, split on line boundaries; a code fence cut by a split is
closed at the end of one part and reopened at the start of the next, so every part renders as
valid mrkdwn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot import splitting, texts
from bot.messages import Reply, ReplyKind, Source
from storage.passages import breadcrumb

SECTION_LIMIT = 3000
MESSAGE_TEXT_LIMIT = 4000
MAX_BLOCKS = 50
CONTEXT_ELEMENTS = 10
BUTTON_VALUE_LIMIT = 2000
# Room left under the section limit for the fence markers a split may add.
CHUNK_LIMIT = SECTION_LIMIT - 100

FEEDBACK_BLOCK = "sb_feedback"
HUMAN_BLOCK = "sb_human"
RESOLVE_BLOCK = "sb_resolve"
SHARE_BLOCK = "sb_share"

ACTION_HELPFUL = "sb_helpful"
ACTION_NOT_HELPFUL = "sb_not_helpful"
ACTION_HUMAN = "sb_human"
ACTION_RESOLVE = "sb_resolve"
ACTION_SHARE = "sb_share"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x01"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One message to post: fallback/notification ``text`` and its ``blocks``."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


# ---- Markdown -> mrkdwn ------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack needs only these three escaped; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Bold, italics, strike, links, headings, lists and quotes; code is kept verbatim."""
    out: list[str] = []
    in_fence = False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            # Slack shows a language tag as code, so fences lose it.
            out.append("```")
            in_fence = not in_fence
        elif in_fence:
            out.append(escape(line))
        else:
            out.append(_prose_line(line))
    if in_fence:
        out.append("```")
    return "\n".join(out).strip("\n")


def _prose_line(line: str) -> str:
    heading = _HEADING.match(line)
    if heading:
        title = _inline(heading.group(1)).replace("*", "").strip()
        return f"*{title}*" if title else ""
    quote = ""
    stripped = line.lstrip()
    if stripped.startswith(">"):
        quote, line = "> ", stripped[1:].lstrip()
    bullet = _BULLET.match(line)
    if bullet and not re.match(r"^\s*([-*_])\s*\1\s*\1[\s\1]*$", line):
        line = f"{bullet.group(1)}• {line[bullet.end() :]}"
    return quote + _inline(line)


def _inline(text: str) -> str:
    """Convert inline markup outside `code spans`; code spans are only escaped."""
    parts = re.split(r"(`[^`\n]+`)", text)
    return "".join(
        escape(part)
        if part.startswith("`") and part.endswith("`") and len(part) > 1
        else _inline_prose(part)
        for part in parts
    )


def _inline_prose(text: str) -> str:
    links: list[str] = []

    def keep(url: str, label: str) -> str:
        links.append(f"<{escape(url)}|{escape(label).replace('|', '¦')}>")
        return f"\x02{len(links) - 1}\x02"

    text = _IMAGE.sub(lambda m: keep(m.group(2), m.group(1) or m.group(2)), text)
    text = _LINK.sub(lambda m: keep(m.group(2), m.group(1)), text)
    text = escape(text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    return re.sub("\x02(\\d+)\x02", lambda m: links[int(m.group(1))], text)


# ---- mentions ----------------------------------------------------------------------------------
# User text is escaped, so "<@U1>" typed by a user never pings; the bot's own mentions are put in
# after escaping, through placeholders, and only in the shapes Slack documents.
_SLOT = re.compile("\x03(\\d+)\x03")
_MENTION = re.compile(
    r"^(?:<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>|<!date\^\d+\^[^|<>]+\|[^<>]+>)$"
)


def mention_slot(index: int) -> str:
    """A placeholder for ``mentions[index]`` in Markdown given to :func:`render_reply`."""
    return f"\x03{index}\x03"


def user_mention(user_id: str) -> str:
    return f"<@{user_id}>"


def group_mention(group_id: str) -> str:
    return f"<!subteam^{group_id}>"


def date_mention(timestamp: float, fallback: str) -> str:
    """A date each reader sees in their own time zone."""
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} {{time}}|{escape(fallback)}>"


def with_mentions(mrkdwn: str, mentions: Sequence[str]) -> str:
    """Fill mention placeholders; a placeholder without a valid mention becomes nothing."""

    def fill(match: re.Match[str]) -> str:
        index = int(match.group(1))
        mention = mentions[index] if index < len(mentions) else ""
        return mention if _MENTION.match(mention) else ""

    return _SLOT.sub(fill, mrkdwn)


# ---- splitting ---------------------------------------------------------------------------------


def split_mrkdwn(text: str, limit: int = CHUNK_LIMIT) -> list[str]:
    """Section-sized parts with balanced code fences (the core's one splitter)."""
    return splitting.split_markdown(text, limit=limit)


# ---- blocks ------------------------------------------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value[:BUTTON_VALUE_LIMIT],
    }
    if style:
        button["style"] = style
    return button


def context_block(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}],
    }
    if block_id:
        block["block_id"] = block_id
    return block


def source_link(source: Source) -> str:
    place = breadcrumb(source.title, source.heading) or source.url_or_path or "source"
    title = escape(place).replace("|", "¦")
    target = source.url_or_path
    if target.startswith(("http://", "https://")):
        return f"<{escape(target)}|{title}>"
    return f"{title} (`{escape(target)}`)" if target else title


def sources_block(
    sources: tuple[Source, ...],
    *,
    heading: str = texts.SOURCES_HEADING,
    block_id: str = "sb_sources",
) -> dict[str, Any] | None:
    """A context block listing pages: an answer's sources, or (with its own heading) the pages
    offered with a refusal."""
    if not sources:
        return None
    elements = [{"type": "mrkdwn", "text": f"*{escape(heading)}:*"}]
    for source in sources[: CONTEXT_ELEMENTS - 1]:
        elements.append({"type": "mrkdwn", "text": source_link(source)[:SECTION_LIMIT]})
    return {"type": "context", "block_id": block_id, "elements": elements}


def button_value(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def parse_button_value(value: str | None) -> dict[str, Any]:
    """The fields of one of our button values that have the types we gave them (ids "m" and
    "e" integers, session "s" a string); anything else is dropped, so a forged or mangled
    value is an unusable button, not a crashed handler."""
    try:
        parsed = json.loads(value or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    fields: dict[str, Any] = {}
    for key in ("m", "e"):
        raw = parsed.get(key)
        if isinstance(raw, int) and not isinstance(raw, bool):
            fields[key] = raw
        elif isinstance(raw, str) and raw.isdigit():
            fields[key] = int(raw)
    if isinstance(parsed.get("s"), str):
        fields["s"] = parsed["s"]
    return fields


def feedback_blocks(reply: Reply) -> list[dict[str, Any]]:
    """Helpful / not helpful (carrying the answer's memory id) and "Talk to a human"."""
    blocks: list[dict[str, Any]] = []
    if reply.memory_id is not None and reply.kind in (ReplyKind.ANSWER, ReplyKind.NO_ANSWER):
        value = button_value(m=reply.memory_id, s=reply.session_id or "")
        blocks.append(
            {
                "type": "actions",
                "block_id": FEEDBACK_BLOCK,
                "elements": [
                    _button(texts.SLACK_BUTTON_HELPFUL, ACTION_HELPFUL, value),
                    _button(texts.SLACK_BUTTON_NOT_HELPFUL, ACTION_NOT_HELPFUL, value),
                ],
            }
        )
    if reply.session_id and reply.kind in (ReplyKind.ANSWER, ReplyKind.NO_ANSWER, ReplyKind.ERROR):
        blocks.append(
            {
                "type": "actions",
                "block_id": HUMAN_BLOCK,
                "elements": [
                    _button(
                        texts.SLACK_BUTTON_HUMAN, ACTION_HUMAN, button_value(s=reply.session_id)
                    )
                ],
            }
        )
    return blocks


def resolve_block(escalation_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": RESOLVE_BLOCK,
        "elements": [
            _button(
                texts.SLACK_BUTTON_RESOLVE,
                ACTION_RESOLVE,
                button_value(e=escalation_id),
                style="primary",
            )
        ],
    }


def share_block(reply: Reply) -> dict[str, Any] | None:
    if reply.memory_id is None:
        return None
    return {
        "type": "actions",
        "block_id": SHARE_BLOCK,
        "elements": [
            _button(texts.SLACK_BUTTON_SHARE, ACTION_SHARE, button_value(m=reply.memory_id))
        ],
    }


def footer_blocks(
    reply: Reply, *, share: bool = False, buttons: bool = True
) -> list[dict[str, Any]]:
    """What goes under the last part of an answer: sources, then the buttons."""
    blocks: list[dict[str, Any]] = []
    for listed in (
        sources_block(reply.sources),
        sources_block(reply.related, heading=texts.RELATED_HEADING, block_id="sb_related"),
    ):
        if listed is not None:
            blocks.append(listed)
    if share:
        block = share_block(reply)
        if block is not None:
            blocks.append(block)
    elif buttons:
        blocks.extend(feedback_blocks(reply))
    return blocks


def render_reply(
    reply: Reply,
    *,
    share: bool = False,
    buttons: bool = True,
    extra_blocks: list[dict[str, Any]] | None = None,
    mentions: Sequence[str] = (),
) -> list[SlackMessage]:
    """A Reply -> one or more messages within Slack's limits; the footer goes on the last.

    ``mentions`` fill the :func:`mention_slot` placeholders in the text, unescaped."""
    body = with_mentions(markdown_to_mrkdwn(reply.text), mentions) or " "
    chunks = split_mrkdwn(body) or [" "]
    messages = [SlackMessage(text=chunk, blocks=[_section(chunk)]) for chunk in chunks]
    footer = footer_blocks(reply, share=share, buttons=buttons) + list(extra_blocks or [])
    last = messages[-1]
    messages[-1] = SlackMessage(text=last.text, blocks=(last.blocks + footer)[:MAX_BLOCKS])
    return messages


def resplit(message: SlackMessage) -> list[SlackMessage] | None:
    """``message`` cut into two or more smaller messages, for when Slack refused it as too long
    (its counting can differ from ours, multi-byte text for instance). The blocks before its
    text's section go with the first part, those after it (the footer) with the last. None
    when it cannot be cut smaller (no section of its text, or the text is short already)."""
    index = next(
        (
            i
            for i, block in enumerate(message.blocks)
            if block.get("type") == "section"
            and (block.get("text") or {}).get("text") == message.text
        ),
        None,
    )
    limit = len(message.text) // 2
    if index is None or limit < splitting.MIN_LIMIT:
        return None
    chunks = split_mrkdwn(message.text, limit=limit)
    if len(chunks) < 2:
        return None
    parts = [SlackMessage(text=chunk, blocks=[_section(chunk)]) for chunk in chunks]
    first, last = parts[0], parts[-1]
    parts[0] = SlackMessage(first.text, message.blocks[:index] + first.blocks)
    last = parts[-1]
    parts[-1] = SlackMessage(last.text, last.blocks + message.blocks[index + 1 :])
    return parts


def preview_text(markdown: str, limit: int = CHUNK_LIMIT) -> str:
    """An in-progress answer for ``chat.update``: the tail is cut to fit one message."""
    text = markdown_to_mrkdwn(markdown)
    if len(text) > limit:
        text = split_mrkdwn(text, limit=limit)[0] + "\n…"
    return text or "…"


def replace_block(
    blocks: list[dict[str, Any]], block_id: str, replacement: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The message's blocks with ``block_id`` swapped for ``replacement`` (or removed)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("block_id") == block_id:
            if replacement is not None:
                out.append(replacement)
        else:
            out.append(block)
    return out
