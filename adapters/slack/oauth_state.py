"""OAuth state rows that cannot pile up: every state expires, and expired ones are deleted.

Each visit to ``GET /slack/install`` stores a state (slack_sdk's SQLAlchemy state store). The
store deletes a state only when it is consumed, so abandoned visits (or a script hammering the
page) would fill the table forever; this store deletes expired rows as it issues new ones.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

log = logging.getLogger(__name__)

STATE_EXPIRATION_SECONDS = 600  # ten minutes to finish an install
PRUNE_INTERVAL_SECONDS = 30.0


class PruningOAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    def __init__(
        self,
        *,
        engine: Any,
        expiration_seconds: int = STATE_EXPIRATION_SECONDS,
        prune_interval: float = PRUNE_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(expiration_seconds=expiration_seconds, engine=engine)
        self.prune_interval = prune_interval
        self._pruned_at = float("-inf")

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        if time.monotonic() - self._pruned_at >= self.prune_interval:
            self._pruned_at = time.monotonic()
            await self.prune_expired()
        return await super().async_issue(*args, **kwargs)

    async def prune_expired(self) -> int:
        """Delete states past their expiry; returns how many."""
        # slack_sdk stores naive UTC; compare the same way.
        now = datetime.now(UTC).replace(tzinfo=None)
        table = self.oauth_states
        async with self.engine.begin() as conn:
            result = await conn.execute(table.delete().where(table.c.expire_at <= now))
        if result.rowcount:
            log.info("pruned %d expired OAuth state(s)", result.rowcount)
        return int(result.rowcount or 0)
