"""The Discord bot under load: MESSAGE_CREATE at a steady rate through the real gateway protocol.

The bot runs as its own process (``supportbot run discord``) against the loopback fake Discord
(REST + gateway, tests/fakes) with the model served by the OpenAI fake (two model calls and one
BM25 search per question), a SQLite database and a LanceDB knowledge base of bot/sample_docs.
Half the messages are DMs, half are @mentions in a guild channel (each starts a thread).

Measured: every message answered exactly once (one answer message per conversation, one
``answered`` ledger row per message), time to first reply (the first message the bot posts for
a question, streamed) and to the final answer (sources and buttons attached), p50/p99, and the
RSS of the bot process after warm-up, at its peak and at the end.

Baseline, same run, same fakes and rate: a bare discord.py echo bot (``on_message`` ->
``channel.send``), i.e. what the platform plumbing alone costs; and the fake's raw REST round
trip from this process.

Also measured: the bot process's event-loop lag (bot/looplag.py samples it every 100 ms and
appends to SUPPORTBOT_LOOP_LAG_LOG), p50/p99/max over the load and its drain, against the same
process idle for a few seconds before the load (baseline). ``--embedder local`` runs retrieval
with the local sentence-transformers model (the knowledge base is built with it).

    .venv/bin/python bench/discord.py [--rate 100] [--seconds 30] [--embedder none|local]

Writes docs/bench-sections/discord.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named discord.py: drop its folder from the path so `import discord` finds
# discord.py the library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

REPORT = ROOT / "docs" / "bench-sections" / "discord.md"
SAMPLE_DOCS = ROOT / "bot" / "sample_docs"
ERROR_TEXTS: frozenset[str] = frozenset()  # filled in main() from bot.texts
IDLE_SECONDS = 3.0
PG_ADMIN_URL = os.environ.get("SUPPORTBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
QUESTIONS = (
    "How do I reset my password?",
    "How do I create an API token?",
    "What happens when I hit the rate limit?",
    "How do I configure webhooks?",
)


@dataclass
class LoadResult:
    name: str
    sent: int = 0
    send_seconds: float = 0.0
    answered_once: int = 0
    duplicates: int = 0
    missing: int = 0
    errors: int = 0  # answered, but with an apology instead of an answer
    first_reply_ms: list[float] = field(default_factory=list)
    final_ms: list[float] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    ledger_answered: int | None = None
    cpu_ms_per_message: float = 0.0
    fakes_cpu_ms_per_message: float = 0.0  # this process: the fakes and the load generator
    load_average: float = 0.0  # 1-minute load average of the machine at the end of sending
    drain_seconds: float = 0.0
    lag_ms: list[float] = field(default_factory=list)  # event-loop lag during load + drain
    idle_lag_ms: list[float] = field(default_factory=list)  # same process, idle (baseline)
    rest_calls: dict[str, int] = field(default_factory=dict)  # REST requests by kind (load only)

    @property
    def rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def prepare_kb(folder: Path, embedder_name: str = "none", fake_url: str = "") -> str:
    """The sample docs ingested with the embedder the bot will use (BM25 only for "none")."""
    from storage.embeddings import make_embedder
    from storage.knowledge import KnowledgeBase

    kb_uri = str(folder / f"kb-{embedder_name}")
    paths = [p for p in SAMPLE_DOCS.rglob("*") if p.is_file()]

    def ingest() -> None:
        embedder = make_embedder(
            embedder_name, openai_api_key="sk-test-fake", openai_base_url=fake_url or None
        )
        KnowledgeBase.open(kb_uri, embedder).ingest(paths)

    await asyncio.to_thread(ingest)
    return kb_uri


async def fresh_database(kind: str, folder: Path) -> str:
    """An empty database with the schema: a SQLite file, or a new PostgreSQL database."""
    from storage.db import Database
    from storage.models import Base

    name = f"bench_discord_{uuid.uuid4().hex[:10]}"
    if kind == "postgres":
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url += f"/{name}"
    else:
        url = f"sqlite+aiosqlite:///{folder / (name + '.db')}"
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await db.dispose()
    return url


async def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def ledger_answered(db_url: str) -> int:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import ProcessedEvent

    db = Database(db_url)
    try:
        async with db.sessions() as session:
            total = await session.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.status == "answered")
            )
        return int(total or 0)
    finally:
        await db.dispose()


async def run_load(
    name: str,
    command: list[str],
    env: dict[str, str],
    *,
    rate: float,
    seconds: float,
    echo: bool,
    db_url: str | None,
) -> LoadResult:
    from bot.looplag import read_samples
    from tests.fakes import discord_payloads as p
    from tests.fakes.discord_world import DiscordWorld

    world = await DiscordWorld.start()
    lag_log = Path(tempfile.mkdtemp(prefix="bench-lag-")) / "lag.txt"
    env = {**env, "DISCORD_API_URL": world.api.base_url, "SUPPORTBOT_LOOP_LAG_LOG": str(lag_log)}
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL
    )
    result = LoadResult(name)
    sent_at: dict[str, float] = {}  # reply key -> dispatch time
    try:
        await world.gateway.wait_ready(1, timeout=120)

        async def send(i: int) -> str:
            question = QUESTIONS[i % len(QUESTIONS)]
            if i % 2 == 0:
                payload = await world.dm(question)
                key = payload["id"] if echo else payload["channel_id"]
            else:
                payload = await world.say(question, mention=True)
                key = payload["id"]  # the thread (or, for the echo bot, the echoed id)
            sent_at[key] = time.monotonic()
            return key

        # Warm-up: imports, connection pools, the knowledge base's first search.
        warm = [await send(i) for i in range(20)]
        await wait_answered(world, warm, echo=echo, timeout=60)
        sent_at.clear()
        world.api.requests.clear()
        idle_from = time.time()
        await asyncio.sleep(IDLE_SECONDS)  # the baseline: the same process, idle
        result.idle_lag_ms = read_samples(lag_log, idle_from, time.time())
        result.rss_start_mb = result.rss_peak_mb = rss_mb(process.pid)
        cpu_before = cpu_seconds(process.pid)
        fakes_cpu_before = cpu_seconds(os.getpid())
        load_from = time.time()

        total = int(rate * seconds)
        started = time.monotonic()
        keys: list[str] = []
        next_sample = started
        for i in range(total):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            keys.append(await send(i))
            if time.monotonic() >= next_sample:
                result.rss_peak_mb = max(result.rss_peak_mb, rss_mb(process.pid))
                next_sample += 1.0
        result.sent = total
        result.send_seconds = time.monotonic() - started
        result.load_average = os.getloadavg()[0]
        drain_started = time.monotonic()
        while True:
            done = await wait_answered(world, keys, echo=echo, timeout=1.0, quiet=True)
            result.rss_peak_mb = max(result.rss_peak_mb, rss_mb(process.pid))
            if done or time.monotonic() - drain_started > 120:
                break
        result.drain_seconds = time.monotonic() - drain_started
        load_until = time.time()
        await asyncio.sleep(1.0)  # let stragglers (duplicates, if any) arrive
        result.rss_end_mb = rss_mb(process.pid)
        result.cpu_ms_per_message = (cpu_seconds(process.pid) - cpu_before) * 1000 / max(total, 1)
        fakes_cpu = cpu_seconds(os.getpid()) - fakes_cpu_before
        result.fakes_cpu_ms_per_message = fakes_cpu * 1000 / max(total, 1)
        collect(world, keys, sent_at, result, echo=echo)
        await asyncio.sleep(1.5)  # the bot appends its samples once a second
        result.lag_ms = read_samples(lag_log, load_from, load_until)
        del p
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await world.stop()
    if db_url is not None:
        result.ledger_answered = await ledger_answered(db_url)
    return result


def replies_by_key(world: Any, *, echo: bool) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for message in world.api.messages.values():
        if "interaction_token" in message:
            continue
        key = message["content"] if echo else message["channel_id"]
        found.setdefault(key, []).append(message)
    return found


def is_final(message: dict[str, Any], *, echo: bool) -> bool:
    return echo or bool(message.get("components"))


async def wait_answered(
    world: Any, keys: list[str], *, echo: bool, timeout: float, quiet: bool = False
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        replies = replies_by_key(world, echo=echo)
        if all(any(is_final(m, echo=echo) for m in replies.get(k, [])) for k in keys):
            return True
        if time.monotonic() > deadline:
            if not quiet:
                raise RuntimeError("the bot did not answer the warm-up messages in time")
            return False
        await asyncio.sleep(0.2)


def rest_kind(method: str, path: str) -> str:
    """A REST request's kind without its ids, e.g. ``PATCH /channels/{id}/messages/{id}``."""
    return f"{method} " + "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def collect(
    world: Any, keys: list[str], sent_at: dict[str, float], result: LoadResult, *, echo: bool
) -> None:
    replies = replies_by_key(world, echo=echo)
    for request in world.api.requests:
        kind = rest_kind(request.method, request.path)
        result.rest_calls[kind] = result.rest_calls.get(kind, 0) + 1
    first_post: dict[str, float] = {}
    final_at: dict[str, float] = {}
    for request in world.api.requests:
        if request.status >= 300 or not request.path.startswith("/channels/"):
            continue
        parts = request.path.split("/")  # ['', 'channels', id, 'messages', (id)]
        if len(parts) < 4 or parts[3] != "messages" or len(parts) > 5:
            continue
        body = request.body or {}
        key = body.get("content") if echo else parts[2]
        if key is None:
            continue
        if request.method == "POST":
            first_post.setdefault(key, request.at)
        if echo or body.get("components"):
            final_at[key] = request.at
    for key in keys:
        messages = replies.get(key, [])
        if not messages:
            result.missing += 1
            continue
        if len(messages) > 1:
            result.duplicates += 1
            continue
        result.answered_once += 1
        if messages[0]["content"] in ERROR_TEXTS:
            result.errors += 1
        if key in first_post:
            result.first_reply_ms.append((first_post[key] - sent_at[key]) * 1000)
        if key in final_at:
            result.final_ms.append((final_at[key] - sent_at[key]) * 1000)


async def raw_round_trip(samples: int = 300) -> list[float]:
    """The fake's own REST round trip from this process (aiohttp, keep-alive)."""
    import aiohttp

    from tests.fakes.discord_api import FakeDiscordAPI

    api = FakeDiscordAPI()
    await api.start()
    timings = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(samples):
                started = time.perf_counter()
                async with session.post(
                    f"{api.base_url}/channels/1/messages", json={"content": f"m{i}"}
                ) as response:
                    await response.read()
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await api.stop()
    return timings


def echo_bot() -> None:
    """The baseline bot: bare discord.py that echoes each message id back (no core at all)."""
    import discord
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = os.environ["DISCORD_API_URL"]
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.dm_messages = True
    client = discord.Client(
        intents=intents,
        max_messages=None,
        allowed_mentions=discord.AllowedMentions.none(),
        guild_ready_timeout=0.1,
    )

    async def setup_hook() -> None:
        _, url, _ = await client.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def on_message(message: discord.Message) -> None:
        if not message.author.bot:
            await message.channel.send(str(message.id))

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    client.event(on_message)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(client.close()))
        async with client:
            await client.start(os.environ["DISCORD_TOKEN"])

    asyncio.run(main())


def describe(result: LoadResult) -> list[str]:
    return [
        f"{result.name}: sent {result.sent} at {result.rate:.1f} msg/s; "
        f"answered exactly once {result.answered_once}, duplicates {result.duplicates}, "
        f"missing {result.missing}, apologies {result.errors}; "
        f"drained {result.drain_seconds:.1f} s after the last send",
        f"  first reply p50 {pct(result.first_reply_ms, 50):.0f} ms, "
        f"p99 {pct(result.first_reply_ms, 99):.0f} ms; final answer p50 "
        f"{pct(result.final_ms, 50):.0f} ms, p99 {pct(result.final_ms, 99):.0f} ms",
        f"  RSS after warm-up {result.rss_start_mb:.1f} MB, peak {result.rss_peak_mb:.1f} MB, "
        f"end {result.rss_end_mb:.1f} MB (growth {result.rss_end_mb - result.rss_start_mb:+.1f} MB)"
        + (f"; ledger rows answered: {result.ledger_answered}" if result.ledger_answered else ""),
        f"  bot process CPU: {result.cpu_ms_per_message:.1f} ms per message "
        f"(the fakes and load generator: {result.fakes_cpu_ms_per_message:.1f} ms)",
        f"  event-loop lag during load+drain: p50 {pct(result.lag_ms, 50):.1f} ms, "
        f"p99 {pct(result.lag_ms, 99):.1f} ms, max {max(result.lag_ms, default=0):.0f} ms "
        f"({len(result.lag_ms)} samples); idle baseline p99 {pct(result.idle_lag_ms, 99):.1f} ms",
        "  REST calls per message: "
        + ", ".join(
            f"{kind} {count / max(result.sent, 1):.2f}"
            for kind, count in sorted(result.rest_calls.items(), key=lambda kv: -kv[1])
        ),
    ]


def write_report(
    args: argparse.Namespace, results: list[LoadResult], echo: LoadResult | None, raw: list[float]
) -> str:
    def row(r: LoadResult) -> str:
        return (
            f"| {r.name} | {r.sent} | {r.rate:.1f} | {r.answered_once} | {r.duplicates} | "
            f"{r.missing} | {r.errors} | {r.drain_seconds:.1f} | {pct(r.first_reply_ms, 50):.0f} | "
            f"{pct(r.first_reply_ms, 99):.0f} | {pct(r.final_ms, 50):.0f} | "
            f"{pct(r.final_ms, 99):.0f} | {r.rss_start_mb:.0f} → {r.rss_end_mb:.0f} "
            f"(peak {r.rss_peak_mb:.0f}) | {r.cpu_ms_per_message:.1f} | "
            f"{pct(r.lag_ms, 99):.1f} / {max(r.lag_ms, default=0):.0f} | "
            f"{pct(r.idle_lag_ms, 99):.1f} | {r.load_average:.1f} |"
        )

    lines = [
        "## Discord adapter under load",
        "",
        f"`bench/discord.py --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--embedder {args.embedder}`: MESSAGE_CREATE "
        "events dispatched by the fake gateway (half DMs, half @mentions that start a thread), "
        "the bot as its own process (`supportbot run discord`, real discord.py 2.7) with the "
        "model served by the OpenAI fake (tool call + streamed answer, search over "
        f"bot/sample_docs with embedder `{args.embedder}`), on this {os.cpu_count()}-core "
        "machine, which also runs the load generator and all fakes. Times run from dispatch "
        "to the fake REST API receiving the "
        "bot's first message for that question / the final one carrying sources and buttons. "
        "'Drain' is how long after the last dispatch the last answer arrived. 'Loop lag' is how "
        "late the bot's event loop woke for a 100 ms timer, over the load and drain; 'idle' "
        "is the same process before the load (baseline).",
        "",
        "| run | messages | msg/s sent | answered once | duplicates | missing | apologies "
        "| drain s | "
        "first reply p50 ms | p99 ms | final p50 ms | p99 ms | RSS MB (after warm-up → end) "
        "| bot CPU ms/msg | loop lag p99 / max ms | idle lag p99 ms | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(row(r) for r in results),
    ]
    if echo is not None:
        lines.append(row(echo))
    lines += [""]
    for r in results:
        throughput = r.sent / (r.send_seconds + r.drain_seconds) if r.sent else 0.0
        lines.append(
            f"- {r.name}: {r.ledger_answered} `processed_events` rows `answered` for "
            f"{r.sent + 20} messages sent (incl. 20 warm-up); served {throughput:.1f} msg/s; "
            f"the fakes and load generator used {r.fakes_cpu_ms_per_message:.1f} ms CPU per "
            "message; REST calls per message: "
            + ", ".join(
                f"`{kind}` {count / max(r.sent, 1):.2f}"
                for kind, count in sorted(r.rest_calls.items(), key=lambda kv: -kv[1])
                if count / max(r.sent, 1) >= 0.005
            )
            + "."
        )
    lines.append(
        f"- Fake REST round trip from the load generator (baseline): p50 {pct(raw, 50):.2f} ms, "
        f"p99 {pct(raw, 99):.2f} ms."
    )
    sustained = next((r for r in results if r.sent < args.rate * args.seconds * 0.9), None)
    if echo is not None and echo.first_reply_ms and sustained and sustained.first_reply_ms:
        ratio = pct(sustained.first_reply_ms, 50) / max(pct(echo.first_reply_ms, 50), 1e-6)
        lines.append(
            f"- First reply at a sustainable rate vs the bare echo bot: {ratio:.0f}x at p50 (the "
            "echo bot makes one REST call per message; ours claims the event, opens a thread for "
            "mentions, searches, calls the model twice over HTTP, stores two memories, posts)."
        )
    lines += [
        "",
        "Reading the figures: 'load avg' is the machine's 1-minute load average when sending "
        "ended; other work (other benchmarks, test runs) shares these 2 cores, so served rates "
        "and latencies under saturation vary between runs (with the OpenAI fake we saw 25 to "
        "42 msg/s served across runs at load averages of 3 to 9); CPU per message is the "
        "steadier figure (with the OpenAI fake 17 to 26 ms in earlier versions, 7.5 to 13 ms since "
        "issue 15's Discord pass; 14 to 17 ms offline). "
        "The rows at the target rate are close to saturation on this machine: the bot's CPU per "
        "message times the rate is most of one core, and the load generator, the fakes and "
        "SQLite share the second, so when other work takes CPU a backlog builds and drains at "
        "the served rate: latency grows with the backlog, but no message is lost, duplicated or "
        "answered with an error (in-flight answers are bounded by a semaphore, so the database "
        "pool is never exhausted), and answers slower than 0.5 s each add a typing call and an "
        "edit (see the REST calls above). `--profile FILE` writes a cProfile of the bot process "
        "(wall clock; py-spy on the bot's pid gives CPU without the profiler's overhead). The "
        "sustainable row shows the latency users see when the bot keeps up. Scaling out is by "
        "shards and replicas on PostgreSQL (the ledger keeps answers exactly-once across "
        "processes).",
        "",
    ]
    text = "\n".join(lines)
    report = report_path(args)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text, encoding="utf-8")
    return text


async def main(args: argparse.Namespace) -> None:
    from bot import texts
    from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI

    global ERROR_TEXTS
    ERROR_TEXTS = frozenset(
        {texts.ERROR_GENERIC, texts.ERROR_MODEL_TIMEOUT, texts.ERROR_MODEL_UNAVAILABLE}
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-discord-"))
    raw = await raw_round_trip()
    runs = [("sqlite", args.rate, True), ("sqlite", args.sustained_rate, True)]
    # Same rate again with torch/OpenMP allowed more native threads (the old default): the
    # loop-lag comparison the serving default (one thread per call) is judged against.
    threads = [int(n) for n in args.compare_native_threads.split(",") if n.strip()]
    if args.only_offline:
        runs = []
    if args.postgres:
        runs.append(("postgres", args.rate, True))
    if args.offline or args.only_offline:
        runs.append(("sqlite", args.rate, False))
    results: list[LoadResult] = []
    async with FakeOpenAI() as fake:
        kb_uri = await prepare_kb(folder, args.embedder, fake.base_url)
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DISCORD", "SUPPORTBOT", "OPENAI", "DATABASE"))
        }
        base_env.update(
            DISCORD_TOKEN="bench-token",
            SUPPORTBOT_KB_URI=kb_uri,
            SUPPORTBOT_EMBEDDER=args.embedder,
            SUPPORTBOT_LOG_LEVEL="WARNING",
            OPENAI_API_KEY=FAKE_API_KEY,
            OPENAI_BASE_URL=fake.base_url,
            PYTHONPATH=str(ROOT),
            HF_HUB_OFFLINE="1",
        )
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        plan = [(kind, rate, with_model, None) for kind, rate, with_model in runs]
        plan += [("sqlite", args.sustained_rate or args.rate, True, n) for n in threads]
        for kind, rate, with_model, native in plan:
            if rate <= 0:
                continue
            db_url = await fresh_database(kind, folder)
            env = {**base_env, "DATABASE_URL": db_url}
            model = "OpenAI fake"
            if native is not None:
                for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                    env[variable] = str(native)
                model += f", {native} native threads"
            if not with_model:
                env.pop("OPENAI_API_KEY")
                model = "offline answerer"
            try:
                result = await run_load(
                    f"supportbot, {model}, {args.embedder} embedder, {kind}, {rate:g} msg/s",
                    [sys.executable, *profile, "-m", "bot", "run", "discord"],
                    env,
                    rate=rate,
                    seconds=args.seconds,
                    echo=False,
                    db_url=db_url,
                )
            finally:
                await drop_database(db_url)
            results.append(result)
            for line in describe(result):
                print(line, flush=True)
    echo = None
    if not args.no_baseline:
        echo = await run_load(
            f"bare discord.py echo bot (baseline), {args.rate:g} msg/s",
            [sys.executable, str(Path(__file__).resolve()), "--echo-bot"],
            base_env,
            rate=args.rate,
            seconds=args.seconds,
            echo=True,
            db_url=None,
        )
        for line in describe(echo):
            print(line, flush=True)
    print(f"fake REST round trip: p50 {pct(raw, 50):.2f} ms, p99 {pct(raw, 99):.2f} ms")
    write_report(args, results, echo, raw)
    print(f"wrote {report_path(args).relative_to(ROOT)}")


def report_path(args: argparse.Namespace) -> Path:
    """One report per embedder: the default (BM25 only) keeps the historical name."""
    if args.embedder == "none":
        return REPORT
    return REPORT.with_name(f"discord-{args.embedder}.md")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to send")
    parser.add_argument(
        "--sustained-rate",
        type=float,
        default=20.0,
        help="a second run at a rate this machine sustains (0: skip)",
    )
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument(
        "--embedder",
        choices=("none", "local", "openai"),
        default="none",
        help="the bot's embedder (openai: served by the fake); none = BM25 only",
    )
    parser.add_argument(
        "--compare-native-threads",
        default="",
        help="also run at the sustained rate with OMP/MKL threads set to each of these (e.g. 2)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="also run with the offline answerer (no model)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the echo-bot run")
    parser.add_argument("--echo-bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only-offline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="write a cProfile of the bot process to this file")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.echo_bot:
        echo_bot()
    else:
        asyncio.run(main(arguments))
