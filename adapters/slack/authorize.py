"""Authorizing requests before the ack: who the bot is in the request's workspace.

bolt's own authorizations call ``auth.test`` (multi-workspace installs: on every request) and
answer every failure with a 200 (an apology text): an event that arrives while Slack's API has
a blip is acked without being claimed, so Slack never sends it again and the question is lost.
Here the single-workspace token's identity is asked once and kept, and a failure that may pass
raises: the request gets a 500 and Slack delivers it again (over Socket Mode: no ack, so it is
redelivered). Multi-workspace installs read the bot's ids stored at install time and call
nothing before the ack; if that read fails or hangs (a database blip, a table locked by a
migration), the request gets a 500 in time as well.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.failures import (
    CALL_FAILURES,
    DATABASE_FAILURES,
    database_failure,
    slack_error,
    transient_failure,
)

log = logging.getLogger(__name__)

# auth.test runs before the ack of the first request: leave time for it within Slack's 3 s.
AUTH_TIMEOUT_SECONDS = 1.5
# Reading the installation store runs before the ack too.
STORE_TIMEOUT_SECONDS = 1.5


class NotTakenNow(Exception):
    """The request cannot be taken right now (Slack or our database failed for a while): it is
    not acked (a 500; over Socket Mode, no ack), so Slack delivers it again."""


class SlackUnavailable(NotTakenNow):
    """Slack could not say who the bot is right now; the request must not be acked."""


class StoreUnavailable(NotTakenNow):
    """The installation store (our database) could not be read right now."""


async def find_bot(
    store: AsyncInstallationStore,
    *,
    enterprise_id: str | None,
    team_id: str | None,
    is_enterprise_install: bool | None = False,
) -> Bot | None:
    """The bot installed in a workspace; raises :class:`StoreUnavailable` when the store fails
    or does not answer within STORE_TIMEOUT_SECONDS (the database is down or a lock holds it)."""
    lookup = store.async_find_bot(
        enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
    )
    try:
        return await asyncio.wait_for(lookup, STORE_TIMEOUT_SECONDS)
    except TimeoutError as exc:
        raise StoreUnavailable(
            f"the installation store did not answer within {STORE_TIMEOUT_SECONDS:g} s"
        ) from exc
    except DATABASE_FAILURES as exc:
        raise StoreUnavailable(
            f"reading the installation store failed: {database_failure(exc)}"
        ) from exc


class TokenAuthorize(AsyncAuthorize):
    def __init__(self, token: str, base_url: str) -> None:
        super().__init__()
        self.token = token
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=AUTH_TIMEOUT_SECONDS,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1)],
        )
        self._result: AuthorizeResult | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, **_request: Any) -> AuthorizeResult | None:
        if self._result is not None:
            return self._result
        async with self._lock:  # a burst at start-up asks Slack once
            if self._result is None:
                self._result = await self._ask_slack()
        return self._result

    async def _ask_slack(self) -> AuthorizeResult | None:
        try:
            response = await self.client.auth_test()
        except CALL_FAILURES as exc:
            reason = transient_failure(exc)
            if reason is None and isinstance(exc, SlackApiError):
                # The token was revoked or is wrong: bolt tells the user to reinstall.
                log.error("Slack refused the bot token: %s", slack_error(exc))
                return None
            raise SlackUnavailable(f"auth.test failed: {reason}") from exc
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=response, bot_token=self.token
        )


class InstallationAuthorize(AsyncAuthorize):
    """The bot installed in the request's workspace (or organisation), from the store."""

    def __init__(self, store: AsyncInstallationStore) -> None:
        super().__init__()
        self.store = store

    async def __call__(
        self,
        *,
        context: Any,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_actor: Any,
    ) -> AuthorizeResult | None:
        bot = await find_bot(
            self.store,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=context.is_enterprise_install,
        )
        if bot is None or not bot.bot_token:
            return None  # not installed there: bolt answers with its "reinstall" text
        return AuthorizeResult(
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id,
            bot_token=bot.bot_token,
            bot_id=bot.bot_id,
            bot_user_id=bot.bot_user_id,
            bot_scopes=bot.bot_scopes,
        )
