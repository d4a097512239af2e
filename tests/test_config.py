"""Settings: URL mapping, one-line errors naming the variable, required credentials, no leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_DATABASE_URL, Settings, load_settings, normalize_database_url
from bot.errors import ConfigError

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SLACK_APP_TOKEN": "xapp-secret-app-token",
    "SLACK_CLIENT_SECRET": "client-secret-value",
    "SLACK_STATE_SECRET": "state-secret-value",
    "DISCORD_TOKEN": "discord-secret-token",
    "OPENAI_API_KEY": "sk-secret-openai-key",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env from the working tree and none of the variables under test from the caller."""
    monkeypatch.chdir(tmp_path)
    for name in [*SECRETS, "DATABASE_URL", "PORT", "SUPPORTBOT_EMBEDDER", "SUPPORTBOT_KB_URI"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@db.example.com:5432/app",
            "postgresql+asyncpg://u:p@db.example.com:5432/app",
        ),
        ("postgresql://u@localhost/app", "postgresql+asyncpg://u@localhost/app"),
        ("postgresql+asyncpg://u@localhost/app", "postgresql+asyncpg://u@localhost/app"),
        ("sqlite:///data/bot.db", "sqlite+aiosqlite:///data/bot.db"),
        ("sqlite+aiosqlite:////abs/bot.db", "sqlite+aiosqlite:////abs/bot.db"),
    ],
)
def test_database_urls_map_to_the_async_drivers(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    assert normalize_database_url(given) == expected
    monkeypatch.setenv("DATABASE_URL", given)
    assert load_settings().database_url == expected


def test_default_database_is_a_sqlite_file_in_the_working_directory() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.sqlite_path == Path("supportbot.db")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL must be a postgres:// or sqlite:/// URL"),
        ("DATABASE_URL", "", "DATABASE_URL is empty"),
        ("DATABASE_URL", "postgres://u@h:port/db", "DATABASE_URL is not a valid database URL"),
        ("PORT", "eighty", "PORT is invalid"),
        ("PORT", "70000", "PORT is invalid"),
        ("SUPPORTBOT_EMBEDDER", "magic", "SUPPORTBOT_EMBEDDER is invalid"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_require_names_every_missing_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "set")
    settings = load_settings()
    with pytest.raises(ConfigError) as caught:
        settings.require("slack_bot_token", "slack_signing_secret", "slack_app_token")
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN" in message and "SLACK_APP_TOKEN" in message
    assert "SLACK_SIGNING_SECRET" not in message
    settings.require("slack_signing_secret")  # present: no error
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        settings.secret("discord_token")
    assert settings.secret("slack_signing_secret") == "set"


def test_require_names_the_variable_not_the_field() -> None:
    with pytest.raises(ConfigError, match="SUPPORTBOT_SLACK_ESCALATION_CHANNEL"):
        load_settings().require("slack_escalation_target")


def test_secrets_never_appear_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", "postgres://bot:db-password-value@db.internal:5432/app")
    settings = load_settings()
    assert settings.secret("openai_api_key") == SECRETS["OPENAI_API_KEY"]
    shown = repr(settings) + str(settings) + f"{settings}"
    for value in [*SECRETS.values(), "db-password-value"]:
        assert value not in shown
    assert "db.internal" in shown  # the rest of the URL is still there to debug with


def test_lower_case_variables_and_dotenv_work(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPPORTBOT_KB_URI=/srv/kb\nport=8080\n")
    settings = Settings()
    assert settings.kb_uri == "/srv/kb" and settings.port == 8080
