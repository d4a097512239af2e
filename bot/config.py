"""Settings from the environment and ``.env`` (pydantic-settings).

Nothing here reads the environment at import time: call :func:`load_settings`. Conventional
variable names are used as they are (``DATABASE_URL``, ``SLACK_BOT_TOKEN``, ...); the rest are
``SUPPORTBOT_*``. Every problem surfaces as one :class:`ConfigError` line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.doc_links import DocsLinks, parse_docs_styles, parse_docs_urls
from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///supportbot.db"
DEFAULT_KB_URI = "supportbot_kb"

EmbedderName = Literal["auto", "openai", "local", "none"]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def normalize_database_url(url: str) -> str:
    """Map the URLs PaaS providers hand out to the async drivers SQLAlchemy needs."""
    url = url.strip()
    if not url:
        raise ValueError("is empty")
    if url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    elif url.startswith("postgresql+psycopg2://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql+psycopg2://")
    elif url.startswith("sqlite:///") or url == "sqlite://":
        url = "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
        raise ValueError("must be a postgres:// or sqlite:/// URL")
    from sqlalchemy.engine import make_url  # here: `supportbot --help` needs no SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)  # catches what the scheme check cannot, e.g. a port that is not a number
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"is not a valid database URL ({exc})") from None
    return url


def mask_url_password(url: str) -> str:
    """The URL with its password replaced by ***, for logs and reprs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=_env("DATABASE_URL"))
    kb_uri: str = Field(DEFAULT_KB_URI, validation_alias=_env("SUPPORTBOT_KB_URI"))
    # Approved answers learned from resolved hand-offs are written here (then ingested).
    learned_dir: str = Field("learned_docs", validation_alias=_env("SUPPORTBOT_LEARNED_DIR"))
    # Where the ingested docs folder is published, so citations link to its pages
    # (bot/doc_links.py): "https://docs.example.com/" or "FOLDER=URL,..." pairs, and the
    # generator's page naming: auto (default), mkdocs, sphinx, clean, file (or FOLDER=STYLE).
    docs_url: str = Field("", validation_alias=_env("SUPPORTBOT_DOCS_URL"))
    docs_url_style: str = Field("", validation_alias=_env("SUPPORTBOT_DOCS_URL_STYLE"))
    admin_token: SecretStr | None = Field(None, validation_alias=_env("SUPPORTBOT_ADMIN_TOKEN"))
    embedder: EmbedderName = Field("auto", validation_alias=_env("SUPPORTBOT_EMBEDDER"))
    log_level: str = Field("INFO", validation_alias=_env("SUPPORTBOT_LOG_LEVEL"))
    # Benchmarks: append every event-loop lag sample to this file (see bot/looplag.py).
    loop_lag_log: str | None = Field(None, validation_alias=_env("SUPPORTBOT_LOOP_LAG_LOG"))

    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    openai_model: str = Field("gpt-4o-mini", validation_alias=_env("OPENAI_MODEL"))
    openai_embedding_model: str = Field(
        "text-embedding-3-small", validation_alias=_env("SUPPORTBOT_OPENAI_EMBEDDING_MODEL")
    )
    openai_timeout: float = Field(30.0, gt=0, validation_alias=_env("SUPPORTBOT_OPENAI_TIMEOUT"))
    openai_max_retries: int = Field(3, ge=0, validation_alias=_env("SUPPORTBOT_OPENAI_RETRIES"))
    # A rate-limited model asking us to wait longer than this gets the apology at once.
    openai_max_retry_wait: float = Field(
        20.0, ge=0, validation_alias=_env("SUPPORTBOT_OPENAI_MAX_RETRY_WAIT")
    )

    # An answer that has shown nothing after this many seconds is "slow": the asker sees
    # progress (Slack: the answer's message begins; Discord: the typing indicator). Decided
    # once, in the core (bot/progress.py); a fast answer costs no extra platform call.
    progress_after: float = Field(2.0, ge=0, validation_alias=_env("SUPPORTBOT_PROGRESS_AFTER"))

    memory_turns: int = Field(10, ge=1, validation_alias=_env("SUPPORTBOT_MEMORY_TURNS"))
    max_question_chars: int = Field(
        4000, ge=100, validation_alias=_env("SUPPORTBOT_MAX_QUESTION_CHARS")
    )

    # The inbox (bot/inbox.py): how long a claimed question is reserved for its process without a
    # heartbeat, how often expired rows are looked for, how long finished rows are kept.
    lease_seconds: float = Field(15.0, gt=0, validation_alias=_env("SUPPORTBOT_LEASE_SECONDS"))
    recover_every: float = Field(2.0, gt=0, validation_alias=_env("SUPPORTBOT_RECOVER_EVERY"))
    ledger_retention_days: float = Field(
        7.0, gt=0, validation_alias=_env("SUPPORTBOT_LEDGER_RETENTION")
    )
    answer_slots: int | None = Field(None, ge=1, validation_alias=_env("SUPPORTBOT_ANSWER_SLOTS"))

    host: str = Field("0.0.0.0", validation_alias=_env("HOST"))
    port: int = Field(3000, ge=1, le=65535, validation_alias=_env("PORT"))

    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_SIGNING_SECRET")
    )
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_client_id: str | None = Field(None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_CLIENT_SECRET")
    )
    slack_state_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_STATE_SECRET"))
    slack_api_url: str | None = Field(None, validation_alias=_env("SLACK_API_URL"))
    slack_escalation_target: str | None = Field(
        None, validation_alias=_env("SUPPORTBOT_SLACK_ESCALATION_CHANNEL")
    )
    # Per workspace (OAuth installs): "T1=C123,T2=C456+S789"; the channel's own setting wins.
    slack_escalation_targets: str = Field(
        "", validation_alias=_env("SUPPORTBOT_SLACK_ESCALATION_TARGETS")
    )
    escalation_resolvers: Literal["team_or_asker", "team", "anyone"] = Field(
        "team_or_asker", validation_alias=_env("SUPPORTBOT_ESCALATION_RESOLVERS")
    )

    discord_token: SecretStr | None = Field(None, validation_alias=_env("DISCORD_TOKEN"))
    discord_api_url: str | None = Field(None, validation_alias=_env("DISCORD_API_URL"))
    # Needed for thread follow-ups and forum posts; if the portal has it off, Discord closes
    # with 4014 and the bot reconnects without it.
    discord_message_content: bool = Field(
        True, validation_alias=_env("SUPPORTBOT_DISCORD_MESSAGE_CONTENT")
    )
    discord_shard_count: int | None = Field(
        None, ge=1, validation_alias=_env("SUPPORTBOT_DISCORD_SHARD_COUNT")
    )
    discord_forum_channels: str = Field(
        "", validation_alias=_env("SUPPORTBOT_DISCORD_FORUM_CHANNELS")
    )
    discord_escalation_channel: str | None = Field(
        None, validation_alias=_env("SUPPORTBOT_DISCORD_ESCALATION_CHANNEL")
    )
    discord_escalation_targets: str = Field(
        "", validation_alias=_env("SUPPORTBOT_DISCORD_ESCALATION_TARGETS")
    )
    # On (re)connecting, messages posted up to this long ago in the channels people talk to the
    # bot in are read back and answered if nobody did (adapters/discord/catch_up.py); 0: off.
    discord_catch_up_minutes: int = Field(
        15, ge=0, le=24 * 60, validation_alias=_env("SUPPORTBOT_DISCORD_CATCH_UP_MINUTES")
    )
    # Members with this role may resolve hand-offs (without it: Manage Messages permission).
    discord_support_role: str | None = Field(
        None, validation_alias=_env("SUPPORTBOT_DISCORD_SUPPORT_ROLE")
    )

    @field_validator("slack_escalation_targets", "discord_escalation_targets")
    @classmethod
    def _check_targets(cls, value: str) -> str:
        parse_workspace_targets(value)
        return value

    @field_validator("docs_url")
    @classmethod
    def _check_docs_url(cls, value: str) -> str:
        parse_docs_urls(value)
        return value

    @field_validator("docs_url_style")
    @classmethod
    def _check_docs_url_style(cls, value: str, info: ValidationInfo) -> str:
        urls = info.data.get("docs_url")  # absent when SUPPORTBOT_DOCS_URL itself was refused
        parse_docs_styles(value, prefixes=None if urls is None else set(parse_docs_urls(urls)))
        return value

    @property
    def docs_links(self) -> DocsLinks:
        """Cited files -> their published pages (empty without SUPPORTBOT_DOCS_URL)."""
        return DocsLinks.parse(self.docs_url, self.docs_url_style)

    @field_validator("openai_base_url", "slack_api_url", "discord_api_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        """A base URL the clients can use, refused at start with its variable's name: a
        malformed one made `run discord` die with a traceback and `serve` fail every request."""
        if value is None or not value.strip():
            return None  # set but empty: the platform's own address
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL (for example https://host/api/)")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _normalize_db(cls, value: str) -> str:
        return normalize_database_url(value)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for SQLite URLs (None for PostgreSQL and in-memory SQLite)."""
        if not self.database_url.startswith("sqlite"):
            return None
        from sqlalchemy.engine import make_url  # here: `supportbot --help` needs no SQLAlchemy

        path = make_url(self.database_url).database  # without a "?timeout=..." query
        return Path(path) if path and path != ":memory:" else None

    def secret(self, name: str) -> str:
        """The plain value of a required secret, or a ConfigError naming its variable."""
        value = getattr(self, name)
        if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
            raise ConfigError(f"{variable_name(name)} is not set; it is required for this command.")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    def require(self, *names: str) -> None:
        """Refuse to start a platform whose credentials are missing (names every missing one)."""
        missing = [variable_name(n) for n in names if not _has_value(getattr(self, n))]
        if missing:
            raise ConfigError(f"missing required environment variable(s): {', '.join(missing)}")

    def __repr_args__(self) -> Any:
        # SecretStr fields mask themselves; a password inside DATABASE_URL must be masked too.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                value = mask_url_password(value)
            yield name, value


def parse_workspace_targets(spec: str | None) -> dict[str, str]:
    """``"T1=C123+S9,T2=U7"`` -> ``{"T1": "C123+S9", "T2": "U7"}`` (malformed entries raise)."""
    targets: dict[str, str] = {}
    for entry in (spec or "").split(","):
        if not entry.strip():
            continue
        workspace, sep, target = entry.partition("=")
        if not sep or not workspace.strip() or not target.strip():
            raise ValueError(f"expected WORKSPACE=TARGET, WORKSPACE=TARGET..., got {entry!r}")
        targets[workspace.strip()] = target.strip()
    return targets


def variable_name(field_name: str) -> str:
    """The environment variable that sets a Settings field (e.g. kb_uri -> SUPPORTBOT_KB_URI)."""
    field = Settings.model_fields.get(field_name)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return field_name.upper()


def _has_value(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value not in (None, "")


def load_settings(**overrides: object) -> Settings:
    """Read settings now; a bad value becomes one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = str(first["loc"][0]) if first.get("loc") else "setting"
        variable = variable_name(field_name)
        message = str(first.get("msg", "is invalid"))
        if message.startswith("Value error, "):  # our validators phrase the rest of the sentence
            message = message.removeprefix("Value error, ")
        else:
            message = f"is invalid: {message}"
        raise ConfigError(f"{variable} {message}") from None
