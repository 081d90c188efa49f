"""Production refuses weak secrets; unset credentials come from the generated file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import credentials
from shared.settings import Settings

STRONG = "q7Lr-2vXa9Kd0PzWmT4bYc8HsN1eJ6uF"  # 32 characters, many different


@pytest.fixture
def no_file(tmp_path: Path) -> str:
    return str(tmp_path / "absent.json")


@pytest.mark.parametrize("field", ["secret_key", "admin_password"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "is not set"),
        ("change-me", "is a placeholder"),
        ("x", "is shorter than 32"),
        (STRONG[:31], "is shorter than 32"),
        ("ab" * 16, "repeats too few"),
    ],
)
def test_production_refuses_a_weak_secret(field: str, value: str, why: str, no_file: str) -> None:
    values = {"secret_key": STRONG, "admin_password": STRONG, field: value}
    with pytest.raises(ValidationError, match=f"{field.upper()} {why}"):
        Settings.model_validate(
            {"environment": "production", "credentials_file": no_file, **values}
        )


def test_production_accepts_strong_secrets(no_file: str) -> None:
    settings = Settings(
        environment="production", credentials_file=no_file, secret_key=STRONG, admin_password=STRONG
    )
    assert settings.secret_key == STRONG


def test_outside_production_an_unset_secret_is_random_never_a_known_value(no_file: str) -> None:
    first, second = Settings(credentials_file=no_file), Settings(credentials_file=no_file)
    assert len(first.secret_key) >= 32 and first.secret_key != second.secret_key
    assert first.admin_password != second.admin_password


def test_generated_credentials_fill_what_the_environment_leaves_unset(tmp_path: Path) -> None:
    path = tmp_path / "volume" / "credentials.json"
    generated = credentials.ensure(path, {"api_bootstrap_key": "clk_given"})
    assert set(generated) == {"secret_key", "admin_password"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.ensure(path, {}) == {
        "api_bootstrap_key": json.loads(path.read_text())["api_bootstrap_key"]
    }, "a second start generates only what is still missing"
    settings = Settings(environment="production", credentials_file=str(path), secret_key=STRONG)
    assert settings.secret_key == STRONG, "the environment wins"
    assert settings.admin_password == generated["admin_password"]
    assert settings.api_bootstrap_key and settings.api_bootstrap_key.startswith("clk_")
    assert credentials.ensure(path, {}) == {}


def test_show_credentials_prints_the_stored_ones_or_says_there_are_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("SECRET_KEY", "ADMIN_PASSWORD", "API_BOOTSTRAP_KEY"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "credentials.json"
    monkeypatch.setenv("CREDENTIALS_FILE", str(path))
    assert credentials.main([]) == 1
    assert "no credentials yet" in capsys.readouterr().err
    generated = credentials.ensure(path, {})
    assert credentials.main([]) == 0
    shown = capsys.readouterr().out
    assert generated["api_bootstrap_key"] in shown and generated["admin_password"] in shown
    assert generated["secret_key"] not in shown
