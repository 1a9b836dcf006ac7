"""The estate section of the settings: live sources, and secrets that are references, never values."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the shell running the tests exports, these tests read only their own file."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("OPSCOPILOT_"):
            monkeypatch.delenv(name)


PG = """
estate:
  sql:
    - name: pg-orders-01
      engine: postgresql
      driver: PostgreSQL Unicode
      host: 127.0.0.1
      port: 5432
      database: test
      username: opscopilot_ro
      password: {secret}
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(text)
    return load_settings(cfg)


def test_secret_from_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_RO_PASSWORD", "s3cret-value")
    settings = _load(tmp_path, PG.format(secret="{env: PG_RO_PASSWORD}"))
    inst = settings.estate.sql[0]
    assert inst.password is not None and inst.password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings.model_dump())


def test_secret_from_a_secrets_file_key(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("pg-orders-01: from-file\n")
    secrets.chmod(0o600)  # a secrets file readable by others is refused
    settings = _load(tmp_path, PG.format(secret=f"{{file: {secrets}, key: pg-orders-01}}"))
    assert settings.estate.sql[0].password.get_secret_value() == "from-file"  # type: ignore[union-attr]


def test_a_secret_written_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        _load(tmp_path, PG.format(secret="hunter2"))
    assert "estate.sql[0].password" in str(err.value) and "{env: VARIABLE}" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_missing_environment_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(SettingsError, match="NOT_SET_ANYWHERE is not set"):
        _load(tmp_path, PG.format(secret="{env: NOT_SET_ANYWHERE}"))


def test_an_instance_without_a_way_to_connect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="connection_string, or driver and host"):
        _load(tmp_path, "estate:\n  sql:\n    - {name: x, engine: mysql}\n")


def test_more_than_two_connections_per_instance_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_RO_PASSWORD", "x")
    text = PG.format(secret="{env: PG_RO_PASSWORD}") + "      max_connections: 5\n"
    with pytest.raises(SettingsError, match=r"estate.sql.0.max_connections"):
        _load(tmp_path, text)
