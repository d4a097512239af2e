"""No log level ever prints a credential: records are redacted as they are made.

Third-party clients log whole HTTP bodies at DEBUG (slack_sdk logs the ``oauth.v2.access``
answer, which carries a new bot token), so keeping our own messages clean is not enough. A
record factory redacts every record any logger creates, whoever later handles it (a handler
added after start-up, a test's capture), and a filter on the root handlers catches records made
outside the factory (``logging.makeLogRecord``). The shapes live in ``storage.secrets``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from storage.secrets import contains_secret, redact

_FORMATTER = logging.Formatter()


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with its message, traceback and stack text free of secret shapes (in place)."""
    if getattr(record, "_secrets_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error report
        return record
    if contains_secret(message):
        record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text and contains_secret(record.exc_text):
        record.exc_text = redact(record.exc_text)
    if record.stack_info and contains_secret(record.stack_info):
        record.stack_info = redact(record.stack_info)
    record._secrets_redacted = True
    return record


class RedactingFilter(logging.Filter):
    """Redacts, never drops: a record with a token still says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Redact every record from now on (idempotent): the factory, and each root handler."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacts_secrets", False):
        logging.setLogRecordFactory(_redacting_factory(factory))
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def _redacting_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(inner(*args, **kwargs))

    make.redacts_secrets = True  # type: ignore[attr-defined]
    make.inner = inner  # type: ignore[attr-defined]
    return make


def uninstall() -> None:
    """Undo :func:`install` (tests)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts_secrets", False):
        logging.setLogRecordFactory(factory.inner)  # type: ignore[attr-defined]
    for handler in logging.getLogger().handlers:
        handler.removeFilter(_FILTER)
