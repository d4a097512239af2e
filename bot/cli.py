"""The composition root: the ``supportbot`` command line.

Each command group lives in ``bot/commands/<group>.py`` and registers itself here. Platform
adapters are imported lazily inside the commands that need them, so ``supportbot db upgrade``
never loads slack_bolt or discord.py.
"""

from __future__ import annotations

import logging
import sys

import typer

from bot import logredact, startup
from bot.errors import SupportbotError

app = typer.Typer(
    name="supportbot",
    help="A support agent for Slack and Discord that answers from your team's docs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: formatting it with rich costs more start-up than the rest of `--help`.
    rich_markup_mode=None,
)
run_app = typer.Typer(
    help="Run a platform bot process.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(run_app, name="run")


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Third-party clients log request URLs, headers and bodies at DEBUG: no token gets through.
    logredact.install()
    for noisy in ("httpx", "httpcore", "openai", "urllib3", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _register_commands() -> None:
    from bot.commands import channels, chat, db, discord, kb, learned, report, slack

    for module in (db, kb, chat, slack, discord, channels, report, learned):
        module.register(app, run_app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every SupportbotError becomes one line on stderr and exit code 1."""
    startup.starting()
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except SupportbotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as exc:
        # Usage errors: typer vendors its own click, so match click's exception by its shape.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            raise SystemExit(exit_code) from None
        raise
    finally:
        startup.started()  # a command that never built a runtime (or a test calling main)
