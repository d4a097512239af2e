"""The secret shapes shared by ingest and logging: every kind is caught, ordinary prose is not."""

from __future__ import annotations

import pytest

from storage.secrets import REDACTED, contains_secret, drop_secret_lines, redact

# Built from parts so that this file itself does not look like it holds credentials.
SAMPLES = {
    "slack-token": "xoxb-" + "1234567890-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx",
    "slack-app-token": "xapp-1-" + "A0123456789-1234567890123-" + "abcdef0123456789",
    "discord-token": "MTA4NzY1NDMyMTA5ODc2NTQzMg" + ".GhIjKl." + "abcdefghijklmnopqrstuvwxyz012345",
    "openai-key": "sk-" + "proj-" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "aws-access-key": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws-secret-key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY",
}
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq83bz\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_shape_is_redacted_and_reported(kind: str) -> None:
    secret = SAMPLES[kind]
    line = f"TOKEN={secret} # keep me"
    assert contains_secret(line)
    assert secret not in redact(line)
    assert REDACTED in redact(line)
    kept, report = drop_secret_lines(f"before\n{line}\nafter\n")
    assert kept == "before\nafter\n"
    assert report.lines == 1 and report.kinds == {kind: 1}
    assert secret not in report.describe()


def test_a_pem_block_is_dropped_whole() -> None:
    kept, report = drop_secret_lines(f"intro\n{PEM}outro\n")
    assert kept == "intro\noutro\n"
    assert report.lines == 4
    assert "MIIEow" not in redact(f"x {PEM} y")


@pytest.mark.parametrize(
    "text",
    [
        "Set SLACK_BOT_TOKEN to the token that starts with xoxb- from the app page.",
        "Install scikit-learn with pip; the sk- prefix marks OpenAI keys.",
        "commit 3f2a9c1e4b5d6a7b8c9d0e1f2a3b4c5d6e7f8a9b fixed the task-scheduler",
        "Use AKIA keys only for testing; prefer roles.",
    ],
)
def test_prose_about_secrets_is_left_alone(text: str) -> None:
    assert not contains_secret(text)
    assert redact(text) == text
    assert drop_secret_lines(text) == (text, drop_secret_lines("")[1])
