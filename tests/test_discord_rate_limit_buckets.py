"""discord.py's rate-limit bucket sweep, throttled by the adapter's client.

Every thread the bot opens and every DM it answers is a new bucket; discord.py scanned all of
them (once it held 256) each time a new one was made.
"""

from __future__ import annotations

import asyncio

import discord
import discord.http
import pytest

from adapters.discord.client import SupportClient, throttle_bucket_sweeps


def count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many buckets discord.py looked at while sweeping (instrumenting discord.py)."""
    looked: list[int] = [0]
    is_inactive = discord.http.Ratelimit.is_inactive

    def counted(self: discord.http.Ratelimit) -> bool:
        looked[0] += 1
        return is_inactive(self)

    monkeypatch.setattr(discord.http.Ratelimit, "is_inactive", counted)
    return looked


async def test_a_burst_of_new_channels_sweeps_the_buckets_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = count_scans(monkeypatch)
    client = SupportClient(adapter=None, intents=discord.Intents.none())  # type: ignore[arg-type]
    for channel in range(2000):  # 2000 new threads and DMs within a minute
        client.http.get_ratelimit(f"POST:/channels/{channel}/messages")
    # At most one sweep within the minute; without the throttle, a sweep of every bucket for
    # each new one past 256 (about 2 million looks).
    assert looked[0] <= 2000
    await client.http.close()


async def test_inactive_buckets_still_go() -> None:
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    throttle_bucket_sweeps(http, every=0.0)  # sweep whenever discord.py asks
    for channel in range(300):
        http.get_ratelimit(f"POST:/channels/{channel}/messages")
    for bucket in http._buckets.values():
        bucket._last_request -= 301  # five minutes without a request: inactive
    http.get_ratelimit("POST:/channels/new/messages")
    assert list(http._buckets) == ["POST:/channels/new/messages"]
    await http.close()
