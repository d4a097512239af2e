"""How late the event loop runs: a task that asks to wake every ``interval`` and records by how
much it oversleeps. Lag means everything else waited too: acks, heartbeats, streamed edits.

Every long-running process starts one (the Runtime does). A lag over ``warn_ms`` is logged (at
most once per ``warn_every`` seconds, with the worst seen since). While the loop is stuck, a
watchdog thread logs where the loop thread is (its stack), which names the blocking call.
Recent figures are in
``snapshot()`` (``/healthz`` shows them), and with ``SUPPORTBOT_LOOP_LAG_LOG`` set every sample
is appended to that file ("<unix time> <lag ms>" lines) for benchmarks to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from bot import metrics

log = logging.getLogger(__name__)

INTERVAL = 0.1  # seconds between wake-ups: 10 samples a second
WARN_MS = 250.0
WARN_EVERY = 10.0  # seconds between two warnings
WINDOW = 3000  # samples kept for snapshot(): five minutes at the default interval
FLUSH_EVERY = 1.0  # seconds between appends to the sample log
# The process is CPU-bound when over the last second it used, or waited for, this much of one
# core: the most a Python process's own code gets (the GIL). Then cosmetic work (a typing
# indicator, edits of a streamed answer) only slows every answer down and is left out.
SATURATED_SHARE = 0.9
CPU_WINDOW = 1.0  # seconds of process CPU time that saturated() looks at
# Linux: the event loop thread's time on a CPU and waiting for one (ns), "run wait slices".
SCHEDSTAT = Path("/proc/thread-self/schedstat")


class LoopLagMonitor:
    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        warn_ms: float = WARN_MS,
        warn_every: float = WARN_EVERY,
        sample_log: str | Path | None = None,
    ) -> None:
        self.interval = interval
        self.warn_ms = warn_ms
        self.warn_every = warn_every
        self.sample_log = Path(sample_log) if sample_log else None
        self.samples: deque[float] = deque(maxlen=WINDOW)  # lag in ms
        # (monotonic time, CPU time used or waited for) at recent ticks, for saturated()
        self._cpu: deque[tuple[float, float]] = deque(maxlen=int(CPU_WINDOW / interval) + 1)
        self._schedstat = SCHEDSTAT.exists()
        self.over_threshold = 0
        self.worst_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._pending: list[tuple[float, float]] = []
        self._warned_at = float("-inf")
        self._worst_unreported = 0.0
        self._last_tick = time.monotonic()
        self._stack_logged_at = float("-inf")
        self._loop_thread: int | None = None
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, *, watchdog: bool = True) -> None:
        if self._task is None or self._task.done():
            self._last_tick = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")
        if watchdog and self._watchdog is None:
            self._loop_thread = threading.get_ident()
            self._stopping.clear()
            self._watchdog = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
            self._watchdog.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)
            self._watchdog = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._flush()

    async def _run(self) -> None:
        flushed_at = time.monotonic()
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval)
            now = self._last_tick = time.monotonic()
            self._cpu.append((now, self._cpu_demand()))
            self.record(max(0.0, (now - asked - self.interval) * 1000))
            if self.sample_log is not None and now - flushed_at >= FLUSH_EVERY:
                flushed_at = now
                self._flush()

    def record(self, lag_ms: float) -> None:
        self.samples.append(lag_ms)
        self.worst_ms = max(self.worst_ms, lag_ms)
        metrics.LOOP_LAG.set(lag_ms / 1000)
        if self.sample_log is not None:
            self._pending.append((time.time(), lag_ms))
        if lag_ms <= self.warn_ms:
            return
        self.over_threshold += 1
        self._worst_unreported = max(self._worst_unreported, lag_ms)
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning(
                "event loop lag %.0f ms (over %.0f ms; something blocked the loop)",
                self._worst_unreported,
                self.warn_ms,
            )
            self._worst_unreported = 0.0

    def _watch(self) -> None:
        """Runs in its own thread: while the loop has not ticked for ``warn_ms``, say where the
        loop thread is (once per stall, and at most once per ``warn_every``)."""
        reported_tick = None
        while not self._stopping.wait(self.interval / 2):
            tick = self._last_tick
            stalled_ms = (time.monotonic() - tick - self.interval) * 1000
            if stalled_ms <= self.warn_ms or tick == reported_tick:
                continue
            now = time.monotonic()
            if now - self._stack_logged_at < self.warn_every:
                continue
            reported_tick, self._stack_logged_at = tick, now
            frame = sys._current_frames().get(self._loop_thread or -1)
            stack = "".join(traceback.format_stack(frame, limit=12)) if frame else "(unknown)\n"
            log.warning(
                "event loop blocked for %.0f ms so far; the loop thread is at:\n%s",
                stalled_ms,
                stack.rstrip(),
            )

    def cpu_share(self) -> float:
        """The share of one core this process used or waited for over about the last second (0
        until half a second has been watched)."""
        if len(self._cpu) < 2:
            return 0.0
        (start, start_cpu), (end, end_cpu) = self._cpu[0], self._cpu[-1]
        if end - start < CPU_WINDOW / 2:
            return 0.0
        return (end_cpu - start_cpu) / (end - start)

    def _cpu_demand(self) -> float:
        """Seconds of CPU this process used (every thread), plus those its event loop waited
        for a CPU while runnable: on a machine other processes keep busy, a loop that never
        idles gets less than a core but is just as CPU-bound."""
        used = time.process_time()
        if not self._schedstat:
            return used
        try:
            waited_ns = int(SCHEDSTAT.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            self._schedstat = False  # not this kernel: CPU used only
            return used
        return used + waited_ns / 1e9

    def saturated(self) -> bool:
        """Whether the process is CPU-bound now (see SATURATED_SHARE): answers wait for the
        CPU, not for the model, so work that only shows progress is best left out."""
        return self.cpu_share() >= SATURATED_SHARE

    def snapshot(self) -> dict[str, Any]:
        """Recent lag figures (ms) for health checks."""
        ordered = sorted(self.samples)
        return {
            "samples": len(ordered),
            "p50_ms": round(percentile(ordered, 50), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
            "over_threshold": self.over_threshold,
            "threshold_ms": self.warn_ms,
        }

    def _flush(self) -> None:
        if self.sample_log is None or not self._pending:
            return
        lines = "".join(f"{at:.3f} {lag:.3f}\n" for at, lag in self._pending)
        self._pending.clear()
        try:
            with self.sample_log.open("a", encoding="utf-8") as out:
                out.write(lines)
        except OSError as exc:
            log.warning("cannot append loop-lag samples to %s: %s", self.sample_log, exc)
            self.sample_log = None


def shed_progress(monitor: LoopLagMonitor | None, in_flight: int) -> bool:
    """Whether to leave out work that only shows progress (a typing indicator, a first partial
    post and its edits): during a burst, with other answers in flight, that has made the
    process CPU-bound. Then answers are late because they wait for the CPU, not for the model,
    and each such call would make every answer later still."""
    return in_flight > 1 and monitor is not None and monitor.saturated()


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of already sorted values (nearest rank); 0 when empty."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def read_samples(path: str | Path, since: float = 0.0, until: float = float("inf")) -> list[float]:
    """Lag samples (ms) appended to ``path`` between two unix times (for benchmarks)."""
    found: list[float] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and since <= float(parts[0]) <= until:
            found.append(float(parts[1]))
    return found
