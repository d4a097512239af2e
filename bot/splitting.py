"""One Markdown splitter for every platform: parts within a size limit, code fences balanced.

Slack (3000-character sections) and Discord (2000-character messages) both need a long answer
cut into parts. Every part must render on its own, so a code fence open at a cut is closed at the
end of that part and reopened, with the same info string (language), at the start of the next.

The fence state is tracked on the lines actually emitted, with the CommonMark rules (an opening
line of three or more backticks or tildes indented at most three spaces; a backtick fence's info
string has no backtick; the closing line uses the same character, at least as many, and nothing
else), so :func:`fences_balanced` agrees with the splitter by construction.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
# Reopened fences carry their info string, clipped: a cut must never cost more than this much.
MAX_MARKER = 16
MAX_INFO = 40
# Below this, the room kept for closing and reopening a fence would leave too little for text.
MIN_LIMIT = 200


def split_markdown(text: str, *, limit: int) -> list[str]:
    """``text`` cut into parts of at most ``limit`` characters, each with balanced fences.

    Cuts fall between lines where possible, else between words, and inside a word only when
    the word alone is longer than a part. Blank lines at the start of a part are dropped.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    reserve = 2 * (MAX_MARKER + MAX_INFO + 2)  # a reopening line and a closing line
    room = limit - reserve
    parts: list[str] = []
    lines: list[str] = []
    size = 0  # len("\n".join(lines))
    fence: str | None = None  # the opening line of the fence open after ``lines``
    carried = False  # ``lines`` holds only the fence reopened from the previous part

    def flush() -> None:
        nonlocal lines, size, fence, carried
        body = "\n".join(lines).rstrip()
        if body.strip() and not carried:
            parts.append(body + ("\n" + _marker(fence) if fence is not None else ""))
        if fence is not None:
            fence = _reopening(fence)
            lines, size, carried = [fence], len(fence), True
        else:
            lines, size, carried = [], 0, False

    for line in text.split("\n"):
        for piece in _fit(_tame_marker(line), room):
            after = fence_after(fence, piece)
            added = len(piece) + (1 if lines else 0)
            if lines and size + added + _closing_size(after) > limit:
                flush()
                after = fence_after(fence, piece)
                added = len(piece) + (1 if lines else 0)
            if not lines and not piece.strip():
                continue  # no blank lines at the top of a part
            lines.append(piece)
            size += added
            fence = after
            carried = False
    flush()
    return parts


def fence_after(fence: str | None, line: str) -> str | None:
    """The fence state after ``line``: the opening line of the open fence, or None."""
    match = _FENCE.match(line)
    if not match:
        return fence
    marker, info = match[1], match[2]
    if fence is None:
        if marker[0] == "`" and "`" in info:
            return None  # inline code such as ```x```, not a fence
        return line.strip()
    opening = _marker(fence)
    if marker[0] == opening[0] and len(marker) >= len(opening) and not info.strip():
        return None
    return fence


def fences_balanced(part: str) -> bool:
    """True when every code fence opened in ``part`` is closed in it."""
    fence: str | None = None
    for line in part.replace("\r\n", "\n").split("\n"):
        fence = fence_after(fence, line)
    return fence is None


def _marker(fence: str | None) -> str:
    match = _FENCE.match(fence or "")
    return match[1] if match else ""


def _closing_size(fence: str | None) -> int:
    return len(_marker(fence)) + 1 if fence is not None else 0


def _reopening(fence: str) -> str:
    """The line that reopens ``fence`` in the next part: same marker, same (clipped) info."""
    match = _FENCE.match(fence)
    if not match:
        return fence
    return match[1] + match[2].strip()[:MAX_INFO]


def _tame_marker(line: str) -> str:
    """Fence markers longer than MAX_MARKER are shortened, so a cut's cost stays bounded."""
    match = _FENCE.match(line)
    if not match or len(match[1]) <= MAX_MARKER:
        return line
    return line[: match.start(1)] + match[1][:MAX_MARKER] + match[2]


def _fit(line: str, room: int) -> list[str]:
    """Pieces of one line, each at most ``room`` characters, cut between words when possible."""
    pieces: list[str] = []
    while len(line) > room:
        cut = line.rfind(" ", 0, room + 1)
        if cut <= room // 4:  # no sensible space: a very long word (URL, hash) is cut hard
            cut = room
        pieces.append(line[:cut].rstrip())
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces
