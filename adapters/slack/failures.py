"""Which failed Web API calls may work if tried again later, and which never will; what a
failing database raises."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from storage.db import unreachable

# ``ok: false`` errors that say "not now" rather than "never" (Slack's documented ones).
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# What a Web API call raises when it failed (slack_sdk's retries included).
CALL_FAILURES = (SlackApiError, aiohttp.ClientError, TimeoutError)
# What a database call raises when the database is unreachable, locked or failing.
DATABASE_FAILURES = (SQLAlchemyError, OSError)


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code for a refused call ("not_in_channel"), or "HTTP 500" for an HTTP
    error, whose body is no JSON to read a code from ("" if Slack gave no code)."""
    status = getattr(exc.response, "status_code", 200)
    if status != 200:
        return f"HTTP {status}"
    try:
        return str(exc.response.get("error") or "")
    except AttributeError:  # a body that is not a JSON object
        return ""


def transient_failure(exc: BaseException) -> str | None:
    """Why a failed Web API call may work if tried again later (None: it will not)."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        error = slack_error(exc) or f"HTTP {status}"
        if status == 429 or status >= 500 or error in TRANSIENT_ERRORS:
            return f"{error} from {_method(exc)}"
        return None
    return type(exc).__name__  # a dropped connection or a timeout


def database_failure(exc: BaseException) -> str:
    """A one-line reason for a database error: the driver's own error, without the SQL and
    its parameters (which hold user text)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    reason = f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__
    return f"the database is unreachable ({reason})" if unreachable(exc) else reason


def _method(exc: SlackApiError) -> str:
    url = str(getattr(exc.response, "api_url", "") or "")
    return url.rstrip("/").rsplit("/", 1)[-1] or "the Web API"
