"""What the offline answer shows of a passage: a few of its sentences, quoted, and the code
block or the steps they introduce.

Sentences are compared with the question (bot.grounding, bot.answerability); code is not, so a
"how do I" answer used to quote "A snapshot is taken with `etcdctl`:" without the command. The
block that directly follows a quoted sentence, or follows the next sentence when that one only
introduces it (ends with a colon), is shown after the quote, shortened to a few lines.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Collection, Sequence

from storage.passages import CodeBlock

MAX_QUOTE_CHARS = 420
# A quote ending with a colon also shows what it introduces: up to this many more sentences
# (list items are sentences here), in up to this many more characters.
MAX_STEPS = 3
MAX_STEPS_CHARS = 300
MAX_CODE_LINES = 12
MAX_CODE_CHARS = 600
MAX_CODE_BLOCKS = 2  # in one quote: each after the sentence it follows
# A reference-style link ("[design doc][design-learner]") points at a definition the quote
# does not carry: shown as its text.
_REFERENCE_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")


def quote_markdown(
    sentences: Sequence[tuple[str, CodeBlock | None]],
    chosen: list[int],
    own_lines: Collection[int] = frozenset(),
) -> str:
    """The ``chosen`` sentences (indices, in document order) as a Markdown quote, each code
    block right after the sentence it follows (at most MAX_CODE_BLOCKS), as on the page: "To
    provide Basic credentials: [code] To provide Digest credentials: [code]" used to show the
    first block after both sentences, so the Digest question got the Basic example. A list
    item, what follows a list (``own_lines``, storage.passages.own_lines) and what follows a
    colon start a line of their own: "Modes are: linear exponential" read as one sentence."""
    chosen = sorted(i for i in chosen if 0 <= i < len(sentences))
    has_code = any(sentences[i][1] is not None for i in chosen)
    after = chosen[-1] + 1 if chosen else len(sentences)
    if not has_code and after < len(sentences):
        intro, block = sentences[after]
        if block is not None and intro.rstrip().endswith(":"):
            chosen, has_code = [*chosen, after], True
    parts: list[str] = []
    room, blocks, pending = MAX_QUOTE_CHARS, 0, []
    for i in chosen:
        if pending and (i in own_lines or sentences[i - 1][0].rstrip().endswith(":")):
            pending.append("\n> ")
        elif pending:
            pending.append(" ")
        pending.append(sentences[i][0])
        code = sentences[i][1]
        if code is not None and blocks < MAX_CODE_BLOCKS:
            text = shortened(readable("".join(pending)), max(room, 80))
            room -= len(text)
            parts += [f"> {text}", fenced(code)]
            blocks, pending = blocks + 1, []
    if pending or not parts:
        text = shortened(readable("".join(pending)), max(room, 80))
        if not has_code and chosen and sentences[chosen[-1]][0].rstrip().endswith(":"):
            # "This can be described as a three step process:" needs the steps that follow,
            # one a line (list items are sentences here).
            steps = MAX_STEPS_CHARS
            for step, _ in sentences[chosen[-1] + 1 : chosen[-1] + 1 + MAX_STEPS]:
                if steps <= 0:
                    break
                text += "\n> " + shortened(readable(step), steps)
                steps -= len(step)
        parts.append(f"> {text}")
    return "\n".join(parts)


def fenced(code: CodeBlock) -> str:
    """The block as a fence of at most MAX_CODE_LINES lines and MAX_CODE_CHARS characters."""
    lines = textwrap.dedent(code.body).strip("\n").splitlines()
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line) + 1
        if len(kept) == MAX_CODE_LINES or size > MAX_CODE_CHARS:
            kept.append("…")
            break
        kept.append(line)
    body = "\n".join(kept).replace("```", "'''")  # a fence inside would end ours
    return f"```{code.language}\n{body}\n```"


def shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def readable(text: str) -> str:
    return _REFERENCE_LINK.sub(r"\1", text)
