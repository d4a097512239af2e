"""`supportbot` commands of the chat group (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this group's commands to the root app (and to `supportbot run`)."""
