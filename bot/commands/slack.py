"""`supportbot serve`, `supportbot run slack [--socket-mode]` and `supportbot slack manifest`.

The Slack adapter (slack_bolt) is imported inside the commands, so other commands never load it.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from bot.commands import load_settings

if TYPE_CHECKING:
    from bot.config import Settings

slack_app = typer.Typer(help="Slack app helpers.", no_args_is_help=True)


class ManifestFormat(StrEnum):
    json = "json"
    yaml = "yaml"


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add `serve`, `run slack` and the `slack` group."""
    app.command("serve")(serve)
    run_app.command("slack")(run_slack)
    app.add_typer(slack_app, name="slack")


def _require_slack(settings: Settings, *, socket_mode: bool) -> None:
    """Refuse to start without credentials, naming the missing variable(s)."""
    needed = ["slack_app_token"] if socket_mode else ["slack_signing_secret"]
    if settings.slack_client_id or settings.slack_client_secret:
        needed += ["slack_client_id", "slack_client_secret"]
    else:
        needed.append("slack_bot_token")
    settings.require(*needed)


def _start(*, socket_mode: bool = False, worker: bool = False, workers: str = "0") -> None:
    from bot import malloc
    from bot.cli import configure_logging

    malloc.tune_for_long_run()  # before any thread or pyarrow exists

    settings = load_settings()
    configure_logging(settings.log_level)
    if worker:
        # Workers never receive requests from Slack: no signing secret or app token needed.
        oauth = settings.slack_client_id or settings.slack_client_secret
        settings.require(
            *(("slack_client_id", "slack_client_secret") if oauth else ("slack_bot_token",))
        )
        from adapters.slack.worker import run_worker

        asyncio.run(run_worker(settings))
        return
    _require_slack(settings, socket_mode=socket_mode)
    if socket_mode:
        from adapters.slack.socket_mode import run_socket_mode

        asyncio.run(run_socket_mode(settings))
    else:
        from adapters.slack.server import serve as serve_http
        from bot.supervisor import workers_for

        try:
            count = workers_for(workers, database_url=settings.database_url)
        except ValueError:
            raise typer.BadParameter(
                "a number of worker processes, or auto", param_hint="--workers"
            ) from None
        asyncio.run(serve_http(settings, workers=count))


WORKERS_HELP = (
    "Answer in this many supervised worker processes; this one then only acks and queues, so "
    "acks never wait behind answers. auto (default): one per spare core on PostgreSQL, none "
    "(answer in this process) on SQLite. 0: answer in this process."
)


def serve(workers: str = typer.Option("auto", "--workers", help=WORKERS_HELP)) -> None:
    """Serve Slack over HTTP on $PORT: POST /slack/events, OAuth install/redirect, /healthz."""
    _start(workers=workers)


def run_slack(
    socket_mode: bool = typer.Option(
        False, "--socket-mode", help="Connect over Socket Mode (SLACK_APP_TOKEN) instead of HTTP."
    ),
    worker: bool = typer.Option(
        False, "--worker", help="Only answer work queued by `supportbot serve --workers`."
    ),
) -> None:
    """Run the Slack bot (HTTP like `serve`, Socket Mode, or a ledger worker)."""
    _start(socket_mode=socket_mode, worker=worker)


@slack_app.command("manifest")
def manifest(
    url: str = typer.Option(..., "--url", help="The public base URL, e.g. https://bot.example.com"),
    output: ManifestFormat = typer.Option(ManifestFormat.json, "--format", help="json or yaml."),
    socket_mode: bool = typer.Option(False, "--socket-mode", help="A Socket Mode manifest."),
) -> None:
    """Print the Slack app manifest (scopes, events, /ask, /forget, interactivity) for URL."""
    from adapters.slack.manifest import build_manifest, to_yaml

    data = build_manifest(url, socket_mode=socket_mode)
    typer.echo(json.dumps(data, indent=2) if output is ManifestFormat.json else to_yaml(data))
