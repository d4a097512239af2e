"""`supportbot ingest --every`: a failed round is tried again soon (at most twice) instead of
waiting a whole period, and the schedule's next round still comes on time. Driven through the
real loop (bot.commands.every.run_every), its SIGTERM handling included."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable

import pytest

from bot.commands.every import run_every
from bot.errors import IngestError

PERIOD = 1.2  # a retry comes a quarter of it later: 0.3 s


def _rounds(outcomes: list[bool]) -> tuple[list[float], Callable[[], None]]:
    """A job that fails or succeeds in the order given and stops the loop (SIGTERM, as an
    operator would) on its last call; the times it was called at."""
    calls: list[float] = []

    def job() -> None:
        calls.append(time.monotonic())
        if len(calls) == len(outcomes):
            os.kill(os.getpid(), signal.SIGTERM)
        if not outcomes[len(calls) - 1]:
            raise IngestError("https://docs.example.com/ answered HTTP 503")

    return calls, job


def test_a_failed_round_is_retried_twice_then_the_next_round_is_on_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls, job = _rounds([False, False, False, True])
    run_every(PERIOD, job)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith(("error:", "Retrying"))] == [
        "error: https://docs.example.com/ answered HTTP 503",
        "Retrying this round in 0.3 s (1 of 2).",
        "error: https://docs.example.com/ answered HTTP 503",
        "Retrying this round in 0.3 s (2 of 2).",
        "error: https://docs.example.com/ answered HTTP 503",
    ]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert 0.25 < gaps[0] < 0.6 and 0.25 < gaps[1] < 0.6  # retried soon, not a period later
    assert PERIOD - 0.1 < calls[3] - calls[0] < PERIOD + 0.4  # the next round on schedule
    assert err[-1] == "Stopped (SIGTERM)."


def test_a_retry_that_works_ends_the_retries_and_keeps_the_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls, job = _rounds([False, True, True])
    run_every(PERIOD, job)
    err = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("Retrying") for line in err) == 1
    assert 0.25 < calls[1] - calls[0] < 0.6
    assert PERIOD - 0.1 < calls[2] - calls[0] < PERIOD + 0.4
