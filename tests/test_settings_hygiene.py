"""Settings hygiene: no password echoed, no inline passwords, safe {file:} references, scrubbing
by field (a one-letter password must not mangle ordinary words)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.settings import SettingsError, load_settings
from tools.scrub import scrub, scrub_values


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OPSCOPILOT_"):
            monkeypatch.delenv(name)


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    return str(info.value)


def test_a_bad_checkpoint_url_is_not_echoed_with_its_password(tmp_path: Path) -> None:
    msg = _load(tmp_path, "checkpoint_url: mysql://admin:hunter2@db/x\n")
    assert "hunter2" not in msg


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("checkpoint_url: postgresql://admin:hunter2@db/x\n", "checkpoint_url"),
        ("service:\n  store_url: postgresql://admin:hunter2@db/x\n", "service.store_url"),
        ("service:\n  redis_url: redis://:hunter2@127.0.0.1:6379/0\n", "service.redis_url"),
        (
            "estate:\n  sql:\n    - name: a\n      engine: mssql\n"
            "      connection_string: DRIVER={ODBC Driver 18 for SQL Server};SERVER=h;UID=u;PWD=hunter2\n",
            "connection_string",
        ),
        (
            "estate:\n  sql:\n    - name: a\n      engine: mssql\n      driver: d\n      host: h\n"
            "      odbc_options: {Pwd: hunter2}\n",
            "odbc_options.Pwd",
        ),
        ("estate:\n  elastic:\n    - name: e\n      url: https://elastic:hunter2@es:9200\n", "url"),
    ],
)
def test_inline_passwords_are_refused_like_literal_secrets(tmp_path: Path, text: str, where: str) -> None:
    msg = _load(tmp_path, text)
    assert where in msg and "hunter2" not in msg and "{env: VARIABLE}" in msg


def test_a_url_with_its_password_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORE_URL", "postgresql://svc:hunter2@db/ops")
    path = tmp_path / "settings.yaml"
    path.write_text("service:\n  store_url: {env: STORE_URL}\n")
    assert load_settings(path).service.store_url == "postgresql://svc:hunter2@db/ops"


def _secret_ref(tmp_path: Path, ref: str) -> str:
    return _load(tmp_path, f"service:\n  webhooks:\n    generic: {{bearer_token: {{file: {ref}}}}}\n")


def test_file_references_are_restricted(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value")
    os.chmod(secret, 0o644)
    assert "readable or writable by others" in _secret_ref(tmp_path, str(secret))
    os.chmod(secret, 0o600)
    link = tmp_path / "link"
    link.symlink_to(secret)
    assert "symbolic link" in _secret_ref(tmp_path, str(link))
    assert "`..`" in _secret_ref(tmp_path, str(tmp_path / "sub" / ".." / "secret"))
    assert "/proc" in _secret_ref(tmp_path, "/proc/self/environ")
    good = tmp_path / "settings-ok.yaml"
    good.write_text(f"service:\n  webhooks:\n    generic: {{bearer_token: {{file: {secret}}}}}\n")
    assert load_settings(good).service.webhooks["generic"].bearer_token == "s3cret-value"


def test_scrubbing_is_by_field_and_whole_token_never_a_bare_substring() -> None:
    assert scrub_values("or fix the password reference", ["x"]) == "or fix the password reference"
    assert scrub_values("index x of table", ["x"]) == "index x of table"
    assert (
        scrub_values("login failed for svc with hunter22 here", ["hunter22"])
        == "login failed for svc with *** here"
    )
    assert scrub("DSN=a;PWD={p;w}}d};UID=u") == "DSN=a;PWD=***;UID=u"
    assert scrub("redis://:topsecret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
