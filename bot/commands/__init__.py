"""Command groups of the supportbot CLI, one module per group.

Command modules import their heavy dependencies (pydantic-settings, SQLAlchemy, alembic, the
platform SDKs, the knowledge base) inside the commands, so ``supportbot --help`` and every
command load only what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings


def load_settings() -> Settings:
    """The process settings (imports pydantic-settings on first use)."""
    from bot.config import load_settings as load

    return load()
