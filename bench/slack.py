"""Slack HTTP benchmark: signed ``app_mention`` events posted to the real ``supportbot serve``.

Usage: ``.venv/bin/python bench/slack.py [--rate 200] [--seconds 30] [--db sqlite|postgres]
[--embedder none|local]``

Three processes on loopback: this load generator (open loop: a request is sent on schedule
whether or not earlier ones were answered), ``supportbot serve`` (SQLite or PostgreSQL, a small
LanceDB knowledge base, the model served by the OpenAI fake), and the fakes (Slack Web API +
OpenAI) in their own process. Measured:

* ack latency (HTTP 200 back to the sender) of answered mentions, p50/p99 (target p99 < 50 ms);
* baseline in the same run: the ack latency of events the bot ignores (channel chatter without a
  mention, interleaved at 10 % of the rate), i.e. bolt + signature + ledger check, no answer;
* answers posted == unique events (5 % of the mentions are re-sent as Slack retries, with
  ``X-Slack-Retry-Num``; they must not produce answers);
* the ``serve`` process's event-loop lag (bot/looplag.py samples it every 100 ms into
  SUPPORTBOT_LOOP_LAG_LOG), p50/p99/max over the load and its drain, against the same process
  idle for a few seconds before the load (baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.looplag import read_samples  # noqa: E402
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
BOT_USER = "UBOT00001"
PG_ADMIN = os.environ.get("SUPPORTBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_fakes(slack_port: int, openai_port: int, ready: multiprocessing.Event) -> None:
    """The fake Slack Web API and the fake OpenAI API, in a process of their own."""
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    from aiohttp import web

    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.slack_api import FakeSlackAPI

    async def serve() -> None:
        slack = FakeSlackAPI()
        model = FakeOpenAI()
        # Bind the fixed ports chosen by the parent (the fakes normally pick free ports).
        slack_app = web.Application()
        slack_app.router.add_post("/api/{method}", slack._handle_api)
        slack_app.router.add_get("/_fake/stats", slack._handle_stats)
        runner = web.AppRunner(slack_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", slack_port).start()
        model_app = web.Application()
        model_app.router.add_post("/v1/chat/completions", model._chat)
        model_runner = web.AppRunner(model_app, access_log=None)
        await model_runner.setup()
        await web.TCPSite(model_runner, "127.0.0.1", openai_port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc), to report CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


IDLE_SECONDS = 3.0


async def _prepare(workdir: Path, db: str, embedder: str = "none") -> dict[str, str]:
    docs = workdir / "docs"
    docs.mkdir()
    from tests.fakes.slack_harness import DOCS

    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    if db == "postgres":
        import asyncpg

        name = f"sb_bench_{os.getpid()}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{workdir / 'bench.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "SUPPORTBOT_KB_URI": str(workdir / "kb"),
            "SUPPORTBOT_EMBEDDER": embedder,
            "SUPPORTBOT_LOG_LEVEL": "WARNING",
            "SUPPORTBOT_LOOP_LAG_LOG": str(workdir / "loop-lag.txt"),
            "HF_HUB_OFFLINE": "1",
        }
    )
    for args in (["db", "upgrade"], ["ingest", str(docs)]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=env,
            cwd=workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"supportbot {' '.join(args)} failed: {err.decode()[-400:]}")
    return env


async def _wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("supportbot serve did not become healthy")


async def _load(url: str, rate: float, seconds: float) -> dict[str, list[float]]:
    """Open-loop load: mentions at ``rate``/s, 10 % extra ignored events, 5 % retries."""
    latencies: dict[str, list[float]] = {"mention": [], "ignored": [], "retry": []}
    errors: list[str] = []
    unique = 0
    connector = aiohttp.TCPConnector(limit=256)
    sender = SlackSender(url + "/slack/events", SECRET)
    sender._session = aiohttp.ClientSession(connector=connector)
    tasks: list[asyncio.Task[None]] = []

    async def send(kind: str, body: dict, retry: int | None = None) -> None:
        try:
            response = await sender.event(body, retry_num=retry)
        except aiohttp.ClientError as exc:
            errors.append(type(exc).__name__)
            return
        if response.status != 200:
            errors.append(str(response.status))
            return
        latencies[kind].append(response.elapsed * 1000)

    started = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = app_mention(
            text=f"<@{BOT_USER}> how do I reset my password? ({i})", channel=f"C{i % 20:08d}"
        )
        unique += 1
        tasks.append(asyncio.create_task(send("mention", body)))
        if i % 20 == 0:  # Slack retrying a delivery it thinks timed out
            tasks.append(asyncio.create_task(send("retry", body, retry=1)))
        if i % 10 == 0:  # chatter the bot must ignore (the baseline)
            chatter = app_mention(
                text="lunch anyone?", ts=new_ts(), event_type="message", channel_type="channel"
            )
            tasks.append(asyncio.create_task(send("ignored", chatter)))
    elapsed = time.perf_counter() - started  # the sending phase
    await asyncio.gather(*tasks)
    await sender._session.close()
    latencies["_meta"] = [unique, elapsed, len(errors)]
    return latencies


async def _stats(slack_url: str) -> dict:
    async with (
        aiohttp.ClientSession() as session,
        session.get(slack_url.removesuffix("api/") + "_fake/stats") as r,
    ):
        return await r.json()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--embedder", choices=["none", "local"], default="none")
    parser.add_argument(
        "--native-threads",
        type=int,
        default=0,
        help="OMP/MKL threads for `serve` (0: its default, one per call); 2 = the old default",
    )
    parser.add_argument(
        "--workers",
        default="auto",
        help="`supportbot serve --workers N|auto` (0: answer inline; auto, the default: "
        "serve's own choice, workers on PostgreSQL and inline on SQLite)",
    )
    parser.add_argument(
        "--pause-workers",
        action="store_true",
        help="SIGSTOP the answer workers during the load and resume them after (acks only, as "
        "when workers run on other machines)",
    )
    parser.add_argument(
        "--priority",
        action="store_true",
        help="run the load generator and `serve` at nice -10 (a machine shared with other work)",
    )
    args = parser.parse_args()

    if args.priority:
        os.nice(-10)  # inherited by `serve`; its answer workers lower themselves by 10 again
    slack_port, openai_port, port = _free_port(), _free_port(), _free_port()
    ready = multiprocessing.Event()
    # The fakes stand for Slack's and OpenAI's servers: they run at normal priority.
    fakes = multiprocessing.Process(
        target=_run_fakes, args=(slack_port, openai_port, ready), daemon=True
    )
    fakes.start()
    ready.wait(20)
    slack_url = f"http://127.0.0.1:{slack_port}/api/"
    with tempfile.TemporaryDirectory(prefix="bench_slack_") as tmp:
        workdir = Path(tmp)
        env = await _prepare(workdir, args.db, args.embedder)
        if args.native_threads:
            for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[variable] = str(args.native_threads)
        env.update(
            {
                "SLACK_API_URL": slack_url,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_BOT_TOKEN": TOKEN,
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"http://127.0.0.1:{openai_port}/v1",
                "OPENAI_MODEL": "fake-gpt",
                "HOST": "127.0.0.1",
                "PORT": str(port),
            }
        )
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--workers",
            str(args.workers),
            env=env,
            cwd=workdir,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait_healthy(url)
            # warm-up: the first request makes bolt call auth.test
            await _load(url, 10, 0.5)
            for _ in range(100):
                warm_stats = await _stats(slack_url)
                if warm_stats["threads_answered"] >= 5 and not warm_stats["still_streaming"]:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            warm = (await _stats(slack_url))["threads_answered"]
            idle_from = time.time()
            await asyncio.sleep(IDLE_SECONDS)  # the loop-lag baseline: the same process, idle
            idle_until = load_from = time.time()
            load_before = os.getloadavg()[0]
            cpu_before = _cpu_seconds(server.pid)
            workers = _children(server.pid) if args.pause_workers else []
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            result = await _load(url, args.rate, args.seconds)
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
            result["_load"] = [load_before]
            result["_cpu"] = [_cpu_seconds(server.pid) - cpu_before]
            unique, elapsed, errors = result.pop("_meta")
            drain_started = time.perf_counter()
            while True:
                stats = await _stats(slack_url)
                done = stats["threads_answered"] - warm >= unique and not stats["still_streaming"]
                if done or time.perf_counter() - drain_started > args.drain_timeout:
                    break
                await asyncio.sleep(0.5)
            drain = time.perf_counter() - drain_started
            load_until = time.time()
            await asyncio.sleep(1.5)  # serve appends its lag samples once a second
            lag_log = env["SUPPORTBOT_LOOP_LAG_LOG"]
            result["_lag"] = read_samples(lag_log, load_from, load_until)
            result["_idle_lag"] = read_samples(lag_log, idle_from, idle_until)
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 15)
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
            fakes.terminate()
    _report(args, result, int(unique), float(elapsed), int(errors), stats, warm, drain)


def _report(
    args: argparse.Namespace,
    result: dict[str, list[float]],
    unique: int,
    elapsed: float,
    errors: int,
    stats: dict,
    warm: int,
    drain: float,
) -> None:
    mention, ignored, retry = result["mention"], result["ignored"], result["retry"]
    lag, idle_lag = result.get("_lag") or [0.0], result.get("_idle_lag") or [0.0]
    answered = stats["threads_answered"] - warm
    rows = {
        "mentions sent (unique events)": unique,
        "retries sent (X-Slack-Retry-Num: 1)": len(retry),
        "ignored events sent (baseline)": len(ignored),
        "achieved mention rate (events/s)": round(unique / elapsed, 1),
        "non-200 or failed requests": errors,
        "ack p50, mentions (ms)": round(statistics.median(mention), 2),
        "ack p99, mentions (ms)": round(_percentile(mention, 0.99), 2),
        "ack max, mentions (ms)": round(max(mention), 2),
        "ack p50, ignored events: baseline (ms)": round(statistics.median(ignored), 2),
        "ack p99, ignored events: baseline (ms)": round(_percentile(ignored, 0.99), 2),
        "ack p99, retries (ms)": round(_percentile(retry, 0.99), 2) if retry else None,
        "p99 ratio mention / baseline": round(
            _percentile(mention, 0.99) / _percentile(ignored, 0.99), 2
        ),
        "serve process CPU during the load (s)": round(result["_cpu"][0], 2),
        "serve process CPU per request (ms)": round(
            result["_cpu"][0] * 1000 / (unique + len(retry) + len(ignored)), 2
        ),
        "answers posted (threads answered)": answered,
        "threads answered twice": stats["threads_answered_twice"],
        "answers == unique events": answered == unique and not stats["threads_answered_twice"],
        "time to drain the answer backlog after the load (s)": round(drain, 1),
        "answer throughput over load + drain (answers/s)": round(answered / (elapsed + drain), 1),
        "event-loop lag p50, load + drain (ms)": round(_percentile(lag, 0.50), 1),
        "event-loop lag p99, load + drain (ms)": round(_percentile(lag, 0.99), 1),
        "event-loop lag max, load + drain (ms)": round(max(lag, default=0.0), 1),
        "event-loop lag p99, idle: baseline (ms)": round(_percentile(idle_lag, 0.99), 1),
    }
    print(
        f"bench/slack.py  load average before/after: {result['_load'][0]:.2f} / "
        f"{os.getloadavg()[0]:.2f} (2 cores; other work on the machine inflates latencies)"
    )
    print(
        f"bench/slack.py  rate={args.rate}/s  seconds={args.seconds}  db={args.db}  "
        f"workers={args.workers}{' (paused during the load)' if args.pause_workers else ''}  "
        f"embedder={args.embedder}  native threads={args.native_threads or 'default'}  "
        f"priority={'nice -10' if args.priority else 'normal'}"
    )
    for key, value in rows.items():
        print(f"  {key:<55} {value}")
    print("  Slack Web API calls:", json.dumps(stats["calls"], sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
