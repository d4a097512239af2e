"""One place that knows what a secret looks like, for everything that must never keep one.

Used by ingest (a secret-looking line is never indexed) and by the logging filter (no log level
prints a token). Patterns match the *shape* of credentials that the bot itself handles or that
tend to sit next to documentation in a repository (``.env`` files, config samples): Slack,
Discord, OpenAI, AWS and PEM private keys. A false positive costs one redacted line; a false
negative leaks a credential, so the shapes lean towards matching.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

REDACTED = "[redacted]"

# Each name is what ingest reports ("2 slack-token lines redacted"); the value never is.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    # xoxb- bot, xoxp- user, xoxa-/xoxr- app/refresh, xoxe- rotating, xoxs- legacy; xapp- app-level.
    "slack-token": re.compile(r"\bxox[abeoprs]-(?:\d+-)?[A-Za-z0-9-]{8,}"),
    "slack-app-token": re.compile(r"\bxapp-\d+-[A-Za-z0-9-]{8,}"),
    # Discord bot token: base64(user id) . base64(timestamp) . HMAC (27+ chars).
    "discord-token": re.compile(
        r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}"
    ),
    # A Discord interaction token (a webhook credential for 15 minutes): base64("interaction:...").
    "discord-interaction-token": re.compile(r"\baW50ZXJhY3Rpb246[A-Za-z0-9_-]{20,}"),
    # Any token in a webhook or interaction URL path (discord.py logs those URLs at DEBUG), and a
    # JSON "token" field (the gateway's INTERACTION_CREATE, also logged whole at DEBUG).
    "webhook-token": re.compile(r"/(?:webhooks|interactions)/\d+/[A-Za-z0-9_.-]{20,}"),
    "token-field": re.compile(r"""["']token["']\s*:\s*["'][A-Za-z0-9_.:-]{20,}["']"""),
    # OpenAI: sk-..., sk-proj-..., sk-svcacct-... (older keys are sk- + 48 chars).
    "openai-key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    "aws-access-key": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    # A secret access key is 40 base64 chars; only flagged next to a name that says what it is,
    # because 40 random-looking characters alone are also git hashes.
    "aws-secret-key": re.compile(
        r"(?i:aws_?secret_?(?:access_?)?key)\s*[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}\b"
    ),
    "private-key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
}

_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

# One alternation for the fast path: most text has no secret at all.
ANY_SECRET = re.compile("|".join(f"(?:{p.pattern})" for p in SECRET_PATTERNS.values()))


def redact(text: str) -> str:
    """``text`` with every secret-shaped substring replaced by ``[redacted]``.

    For log messages: the rest of the line stays readable. A PEM block is replaced whole.
    """
    if not ANY_SECRET.search(text):
        return text
    text = _redact_pem_blocks(text)
    for pattern in SECRET_PATTERNS.values():
        text = pattern.sub(REDACTED, text)
    return text


def contains_secret(text: str) -> bool:
    return ANY_SECRET.search(text) is not None


@dataclass
class RedactionReport:
    """What :func:`drop_secret_lines` removed: counts per kind, never the secret."""

    lines: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return self.lines > 0

    def describe(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.kinds.items()))


def drop_secret_lines(text: str) -> tuple[str, RedactionReport]:
    """``text`` without any line that holds a secret (a whole PEM block counts as lines).

    For indexing: a line like ``SLACK_BOT_TOKEN=xoxb-...`` has nothing worth searching once
    the token is gone, and dropping the line avoids indexing a half-masked credential.
    """
    report = RedactionReport()
    if not ANY_SECRET.search(text):
        return text, report
    kept: list[str] = []
    in_pem = False
    for line in text.splitlines(keepends=True):
        if in_pem:
            report.lines += 1
            if _PEM_END.search(line):
                in_pem = False
            continue
        kinds = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(line)]
        if not kinds:
            kept.append(line)
            continue
        report.lines += 1
        report.kinds.update(kinds)
        if "private-key" in kinds and not _PEM_END.search(line):
            in_pem = True
    return "".join(kept), report


def _redact_pem_blocks(text: str) -> str:
    pem = SECRET_PATTERNS["private-key"]
    out: list[str] = []
    pos = 0
    for start in pem.finditer(text):
        if start.start() < pos:
            continue
        end = _PEM_END.search(text, start.end())
        stop = end.end() if end else len(text)
        out.append(text[pos : start.start()])
        out.append(REDACTED)
        pos = stop
    out.append(text[pos:])
    return "".join(out)
